"""What the in-process ``target_profiles`` fixture costs (run on purpose: ``python bench/plugin_overhead.py``).

1. Per-test overhead: pytest runs the same number of bare tests and of tests that take the fixture
   (reset, configure, patch requests and httpx, strict check) in one session; the difference of the
   mean per-test times is the fixture's cost. Targets: under 1 ms.
2. Per-call cost: a request through the fixture (into the fake's Flask app) against a static
   ``responses`` stub that returns the same status, headers and body. Target: at most 1.25x.

Timings are the median of interleaved rounds, so a busy machine skews both sides alike.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import responses  # noqa: E402

CONFTEST = textwrap.dedent('''
    import time, pytest
    TIMES = {"bare": [], "fixture": []}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        t = time.perf_counter()
        result = yield
        group = item.name.split("_")[1]
        if group in TIMES and not item.name.endswith("_warm"):
            TIMES[group].append(time.perf_counter() - t)
        return result

    def pytest_sessionfinish(session):
        import statistics
        print("\\nRESULT", *(f"{g}={statistics.median(v)}" for g, v in TIMES.items()))
''')


def per_test_overhead(n: int) -> tuple[float, float]:
    """Median per-test time (s) of bare tests and of tests taking ``target_profiles``."""
    tests = ["def test_fixture_warm(target_profiles):\n    pass\n"]
    for i in range(n):  # interleaved, so drift over the run hits both groups
        tests.append(f"def test_bare_{i}():\n    pass\n")
        tests.append(f"def test_fixture_{i}(target_profiles):\n    pass\n")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "conftest.py").write_text(CONFTEST)
        Path(tmp, "test_overhead.py").write_text("\n\n".join(tests))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                              "test_overhead.py"],
                             cwd=tmp, env=env, capture_output=True, text=True, check=False).stdout
    m = re.search(r"RESULT bare=(\S+) fixture=(\S+)", out)
    if m is None:
        raise SystemExit(f"the pytest run failed:\n{out}")
    return float(m.group(1)), float(m.group(2))


def reset_only(rounds: int) -> float:
    """Median seconds of what the fixture does per test, outside pytest."""
    from plugin.fake import SessionFake
    from plugin.handle import TargetProfiles
    from plugin.intercept import HttpxPatch, RequestsInterceptor
    from plugin.options import Settings

    fake, settings = SessionFake.build(), Settings()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fake.prepare(settings)
        interceptor = RequestsInterceptor(fake.bridge, block=False)
        handle = TargetProfiles(fake.backend, fake.app, settings, bridge=fake.bridge,
                                responses_mock=interceptor.mock)
        patch = HttpxPatch(fake.bridge, block=False)
        interceptor.start()
        patch.install()
        handle.strict_failure()
        interceptor.stop()
        patch.uninstall()
        handle.close()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def per_call(rounds: int, calls: int, module_level: bool) -> tuple[float, float]:
    """Median seconds per call: through the fixture, and to a static stub with the same answer."""
    from plugin.fake import SessionFake
    from plugin.intercept import RequestsInterceptor
    from plugin.options import Settings

    url = "https://acme.tt.omtrdc.net/m2/acme/profile/update?mbox3rdPartyId=c-1&profile.tier=gold&profile.city=Paris"
    fake = SessionFake.build()
    fake.prepare(Settings(client_code="acme"))
    fake.backend.seed_profile("acme", third_party_id="c-1", attributes={"tier": "silver"})
    status, headers, body = fake.bridge.call("POST", url, [], b"")
    fake.backend.journal.clear()
    static = responses.RequestsMock(assert_all_requests_are_fired=False)
    ctype = dict(headers).pop("Content-Type", None)
    static.add(responses.POST, url, body=body, status=status, content_type=ctype,
               headers={k: v for k, v in headers if k != "Content-Type"})
    through = RequestsInterceptor(fake.bridge, block=False)
    session = requests.Session()
    send = requests.post if module_level else session.post

    def run(mock: responses.RequestsMock | RequestsInterceptor) -> float:
        mock.start()
        try:
            t = time.perf_counter()
            for _ in range(calls):
                r = send(url)
            elapsed = (time.perf_counter() - t) / calls
        finally:
            mock.stop() if isinstance(mock, RequestsInterceptor) else mock.stop(allow_assert=False)
        assert r.status_code == 200 and r.content == body, r.text
        return elapsed

    run(static), run(through)  # warm up
    a, b = [], []
    for _ in range(rounds):
        a.append(run(static))
        b.append(run(through))
        fake.backend.journal.clear()  # keep the journal from growing over the rounds
    return statistics.median(b), statistics.median(a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=400, help="bare and fixture tests each [400]")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200, help="calls per round [200]")
    args = parser.parse_args()

    bare, fixture = per_test_overhead(args.tests)
    print(f"per test, bare:                  {bare * 1e3:7.3f} ms")
    print(f"per test, with target_profiles:  {fixture * 1e3:7.3f} ms")
    print(f"fixture overhead per test:       {(fixture - bare) * 1e3:7.3f} ms   (target < 1 ms)")
    print(f"reset+patch+check alone:         {reset_only(2000) * 1e3:7.3f} ms")
    for label, module_level in (("requests.Session().post", False), ("requests.post", True)):
        fake_t, static_t = per_call(args.rounds, args.calls, module_level)
        print(f"per call ({label}): fake {fake_t * 1e6:7.1f} us, static responses stub {static_t * 1e6:7.1f} us, "
              f"ratio {fake_t / static_t:.2f}x   (target <= 1.25x)")


if __name__ == "__main__":
    main()
