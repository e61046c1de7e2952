"""Figures 2 and 4, what the pytest fixtures cost (run on purpose: ``python bench/plugin_overhead.py``).

2. Per call: a single update through the in-process fixture's route (``requests`` -> ``responses``
   callback -> the fake's Flask app) against a static ``responses`` stub that returns the same status,
   headers and body. Target: at most 1.25x the stub's time per call.
4. Per test: pytest runs, in one session and interleaved, tests that each make that one call
   (a) through the ``target_profiles`` fixture and through a bare ``@responses.activate`` stub, and
   (b) through the ``target_profile_server`` live-server fixture and through pytest-httpserver's
   ``httpserver`` fixture answering the same body. Each test's time covers its setup, call and
   teardown. Targets: the fixtures no slower than their baselines (at most 1.0x).

Timings are medians of interleaved rounds (figure 2) and of several pytest sessions (figure 4), so a busy
machine skews both sides alike; compare the ratios. Figure 4b needs pytest-httpserver
(``pip install pytest-httpserver``); without it, it is skipped and says so.
"""

from __future__ import annotations

import argparse
import importlib.util
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
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402
import responses  # noqa: E402
from common import heading, paired, report  # noqa: E402

TENANT = "acme"
QUERY = "mbox3rdPartyId=c-1&profile.tier=gold&profile.city=Paris"
URL = f"https://{TENANT}.tt.omtrdc.net/m2/{TENANT}/profile/update?{QUERY}"

# --- figure 2: per call ----------------------------------------------------------------------------


def per_call(rounds: int, calls: int, module_level: bool) -> tuple[float, float, float]:
    """Median seconds per call through the fixture's route and to a static stub with the same answer, and
    the median of the rounds' ratios (each round times both back to back, under the same machine load)."""
    from target_profile_mock.plugin.fake import SessionFake
    from target_profile_mock.plugin.intercept import RequestsInterceptor
    from target_profile_mock.plugin.options import Settings

    fake = SessionFake.build()
    fake.prepare(Settings(client_code=TENANT))
    fake.backend.seed_profile(TENANT, third_party_id="c-1", attributes={"tier": "silver"})
    status, headers, body = fake.bridge.call("POST", URL, [], b"")
    fake.backend.journal.clear()
    static = responses.RequestsMock(assert_all_requests_are_fired=False)
    ctype = dict(headers).pop("Content-Type", None)
    static.add(responses.POST, URL, body=body, status=status, content_type=ctype,
               headers={k: v for k, v in headers if k != "Content-Type"})
    through = RequestsInterceptor(fake.bridge, block=False)
    session = requests.Session()
    send = requests.post if module_level else session.post

    def run(mock: responses.RequestsMock | RequestsInterceptor) -> float:
        mock.start()
        try:
            t = time.perf_counter()
            for _ in range(calls):
                r = send(URL)
            elapsed = (time.perf_counter() - t) / calls
        finally:
            mock.stop() if isinstance(mock, RequestsInterceptor) else mock.stop(allow_assert=False)
        assert r.status_code == 200 and r.content == body, r.text
        return elapsed

    def run_through() -> float:
        elapsed = run(through)
        fake.backend.journal.clear()  # keep the journal from growing over the rounds
        return elapsed

    run(static), run(through)  # warm up
    return paired(rounds, run_through, lambda: run(static))


# --- figure 4: per test ----------------------------------------------------------------------------
CONFTEST = textwrap.dedent('''
    import time, pytest
    TIMES = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        t = time.perf_counter()
        result = yield
        if not item.name.endswith("_warm"):
            TIMES.setdefault(item.name.split("_")[1], []).append(time.perf_counter() - t)
        return result

    def pytest_sessionfinish(session):
        import statistics
        print("\\nRESULT", *(f"{g}={statistics.median(v)}" for g, v in TIMES.items()))
''')

HEADER = textwrap.dedent(f'''
    import requests, responses
    URL = {URL.replace(TENANT, "demo")!r}  # the fixture's default client code: a request to another is noted
    PATH = "/m2/demo/profile/update?{QUERY}"
    BODY = b"<response><success>true</success></response>"
    XML = "application/xml;charset=UTF-8"
''')

#: group -> (a test body taking ``i``, whether it needs pytest-httpserver)
GROUPS: dict[str, tuple[str, bool]] = {
    # no fixture and no call: what pytest itself costs per test
    "bare": ("def test_bare_{i}():\n    pass\n", False),
    "stub": ("@responses.activate\n"
             "def test_stub_{i}():\n"
             "    responses.add(responses.POST, URL, body=BODY, status=200, content_type=XML)\n"
             "    assert requests.post(URL).status_code == 200\n", False),
    # the in-process fixture alone (set-up, per-test reset, strict check at teardown), no call
    "reset": ("def test_reset_{i}(target_profiles):\n    pass\n", False),
    "fixture": ("def test_fixture_{i}(target_profiles):\n"
                "    assert requests.post(URL).status_code == 200\n", False),
    "httpserver": ("def test_httpserver_{i}(httpserver):\n"
                   "    route = httpserver.expect_request('/m2/demo/profile/update')\n"
                   "    route.respond_with_data(BODY, content_type=XML)\n"
                   "    assert requests.post(httpserver.url_for(PATH)).status_code == 200\n", True),
    "server": ("def test_server_{i}(target_profile_server):\n"
               "    assert requests.post(target_profile_server.url + PATH).status_code == 200\n", False),
}


def per_test(n: int, with_httpserver: bool) -> dict[str, float]:
    """One pytest session: median seconds per test of each group, the groups interleaved."""
    groups = [g for g, (_, needs) in GROUPS.items() if with_httpserver or not needs]
    # one warm-up test per group first: imports, the session-wide fakes and servers start outside the figures
    tests = [GROUPS[g][0].format(i="warm") for g in groups]
    for i in range(n):  # interleaved, so drift over the run hits every group alike
        tests += [GROUPS[g][0].format(i=i) for g in groups]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "conftest.py").write_text(CONFTEST)
        Path(tmp, "test_overhead.py").write_text(HEADER + "\n\n" + "\n\n".join(tests))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                               "test_overhead.py"], cwd=tmp, env=env, capture_output=True, text=True, check=False)
    m = re.search(r"RESULT (.*)", proc.stdout)
    if proc.returncode != 0 or m is None:
        raise SystemExit(f"the pytest run failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-3000:]}")
    return {k: float(v) for k, v in (item.split("=") for item in m.group(1).split())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=200, help="tests per group in each pytest session [200]")
    parser.add_argument("--sessions", type=int, default=5, help="pytest sessions for figure 4 [5]")
    parser.add_argument("--rounds", type=int, default=21, help="alternating rounds for figure 2 [21]")
    parser.add_argument("--calls", type=int, default=200, help="calls per round for figure 2 [200]")
    parser.add_argument("--quick", action="store_true", help="tiny runs (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.tests, args.sessions, args.rounds, args.calls = 5, 1, 2, 5

    heading(f"Figure 2: a single update in process, through the fixture's route vs a static responses stub, "
            f"{args.rounds} alternating rounds of {args.calls} calls")
    for label, module_level in (("requests.Session().post", False), ("requests.post", True)):
        fake_t, static_t, ratio = per_call(args.rounds, args.calls, module_level)
        report(f"per call ({label}): static responses stub", f"{static_t * 1e6:,.0f} us")
        report(f"per call ({label}): through target_profiles", f"{fake_t * 1e6:,.0f} us")
        report(f"per call ({label}): fixture / stub", f"{ratio:.2f}x", "<= 1.25x", ratio <= 1.25)

    with_httpserver = importlib.util.find_spec("pytest_httpserver") is not None
    heading(f"Figure 4: {args.tests} tests per group, one call each, interleaved in one pytest session; "
            f"median of {args.sessions} sessions")
    if not with_httpserver:
        print("note: pytest-httpserver is not installed (pip install pytest-httpserver); the live-server "
              "comparison is skipped")
    runs = [per_test(args.tests, with_httpserver) for _ in range(args.sessions)]

    def med(group: str) -> float:
        return statistics.median(r[group] for r in runs)

    def ratio(a: str, b: str) -> float:
        return statistics.median(r[a] / r[b] for r in runs)  # within a session: the same machine state

    report("per test: pytest alone (no fixture, no call)", f"{med('bare') * 1e3:.3f} ms")
    report("per test: target_profiles, no call", f"{med('reset') * 1e3:.3f} ms")
    extra = statistics.median(r["reset"] - r["bare"] for r in runs)
    report("per test: target_profiles fixture and reset over a bare test", f"{extra * 1e3:.3f} ms", "< 1 ms",
           extra < 1e-3)
    report("per test: bare @responses.activate stub, one call", f"{med('stub') * 1e3:.3f} ms")
    report("per test: target_profiles, one call", f"{med('fixture') * 1e3:.3f} ms")
    r = ratio("fixture", "stub")
    # three decimals: at this target a rounded 1.00x could be either side of it
    report("per test: target_profiles / responses stub", f"{r:.3f}x", "<= 1.00x", r <= 1.0)
    if with_httpserver:
        report("per test: pytest-httpserver httpserver, one call", f"{med('httpserver') * 1e3:.3f} ms")
        report("per test: target_profile_server, one call", f"{med('server') * 1e3:.3f} ms")
        r = ratio("server", "httpserver")
        report("per test: target_profile_server / httpserver", f"{r:.3f}x", "<= 1.00x", r <= 1.0)


if __name__ == "__main__":
    main()
