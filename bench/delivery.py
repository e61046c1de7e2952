"""Figure 10, the Delivery API on the standalone server: a returning visitor's visit (a known tntId, one
mbox, two profile parameters written) against a bare Flask route returning a body of the same shape on
the same WSGI server, with the same load generator, 4 keep-alive connections; then the same visit with
10,000 and 100,000 profiles in the tenant, to show the identity lookup does not grow with their number.

Run: ``.venv/bin/python bench/delivery.py [--duration S] [--rounds N] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    LoadResult,
    alternate,
    bare_server,
    control,
    ensure_wrk,
    heading,
    load,
    median,
    mock_server,
    report,
    request,
)

TENANT = "bench"
TNT = "e3e70682c2094cac629f6fbed82c07cd.28_0"
PATH = f"/rest/v1/delivery?client={TENANT}&sessionId=bench-session"
BODY = json.dumps({"context": {"channel": "web"}, "id": {"tntId": TNT},
                   "execute": {"mboxes": [{"index": 1, "name": "home",
                                           "profileParameters": {"tier": "gold", "city": "Berlin"}}]}}).encode()
HEADERS = {"Content-Type": "application/json"}


def post_load(url: str, body: bytes, *, connections: int, duration: float, use_wrk: bool) -> LoadResult:
    """POST ``body`` as JSON over keep-alive connections for ``duration`` seconds (wrk, or Python threads)."""
    return load(url, connections=connections, duration=duration, use_wrk=use_wrk, body=body, headers=HEADERS)


def _seed(base: str, profiles: int) -> None:
    control(base, "PUT", "/settings", {"journal_size": 1000})
    status, body = request(base + PATH, "POST", BODY, HEADERS)
    if status != 200 or json.loads(body)["id"]["tntId"] != TNT:
        raise RuntimeError(f"the visit failed ({status}): {body[:300]!r}")
    if profiles:
        rows = "\n".join(f"{i:032x}.28_0,v" for i in range(1, profiles + 1))
        status, body = request(f"{base}/m2/{TENANT}/v2/profile/batchUpdate", "POST",
                               f"batch=pcId,tier\n{rows}\n".encode(),
                               {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise RuntimeError(f"seeding {profiles:,} profiles failed ({status}): {body[:300]!r}")
        control(base, "POST", "/clock", {"advance": 5})
        n = len(control(base, "GET", f"/tenants/{TENANT}/profiles"))  # type: ignore[arg-type]
        if n != profiles + 1:
            raise RuntimeError(f"expected {profiles + 1:,} profiles, found {n:,}")


def figure_10(duration: float, rounds: int, connections: int, use_wrk: bool, sizes: tuple[int, ...]) -> None:
    heading(f"Figure 10: Delivery API visit vs a bare Flask route on waitress, {connections} keep-alive "
            f"connections, {rounds} alternating rounds of {duration:g} s")
    with mock_server("--client-code", TENANT) as proj, bare_server() as bare:
        _seed(proj.url, 0)
        results: dict[str, list[LoadResult]] = {"project": [], "bare": []}

        def run(which: str, base: str) -> float:
            r = post_load(base + PATH, BODY, connections=connections, duration=duration, use_wrk=use_wrk)
            if r.errors:
                raise RuntimeError(f"{which}: {r.errors} failed requests")
            results[which].append(r)
            return r.rps

        warm = min(1.0, duration)
        post_load(proj.url + PATH, BODY, connections=connections, duration=warm, use_wrk=use_wrk)
        post_load(bare.url + PATH, BODY, connections=connections, duration=warm, use_wrk=use_wrk)
        rps = alternate(rounds, {"project": lambda: run("project", proj.url), "bare": lambda: run("bare", bare.url)})
        tool = results["project"][0].tool
        proj_rps, bare_rps = median(rps["project"]), median(rps["bare"])
        report(f"visit: bare Flask route ({tool})",
               f"{bare_rps:,.0f} req/s  p99 {median([r.p99_ms for r in results['bare']]):.2f} ms")
        report(f"visit: target-profile-mock ({tool})",
               f"{proj_rps:,.0f} req/s  p99 {median([r.p99_ms for r in results['project']]):.2f} ms")
        ratio = proj_rps / bare_rps
        report("visit: throughput vs bare route", f"{ratio:.2f}x", ">= 0.80x", ratio >= 0.8)
    base_rps = None
    for n in sizes:
        with mock_server("--client-code", TENANT) as proj:
            _seed(proj.url, n)
            r = median([post_load(proj.url + PATH, BODY, connections=connections, duration=duration,
                                  use_wrk=use_wrk).rps for _ in range(max(1, rounds // 2))])
            base_rps = base_rps or r
            report(f"visit with {n + 1:,} profiles in the tenant", f"{r:,.0f} req/s ({r / base_rps:.2f}x of the "
                   f"{sizes[0] + 1:,}-profile run)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=3.0, help="seconds per load run (default 3)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--python-client", action="store_true", help="use the Python load generator even if wrk exists")
    p.add_argument("--quick", action="store_true", help="tiny runs (a smoke run)")
    args = p.parse_args(argv)
    sizes: tuple[int, ...] = (0, 10_000, 100_000)
    if args.quick:
        args.duration, args.rounds, sizes = 0.2, 1, (0, 100)
    use_wrk = not args.python_client and ensure_wrk(install=not args.quick)
    if not use_wrk:
        print("note: wrk not found; using the Python keep-alive client for both sides")
    figure_10(args.duration, args.rounds, args.connections, use_wrk, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
