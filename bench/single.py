"""Figure 1, the standalone server: single update and profile fetch against a bare Flask route that
returns the same body on the same WSGI server (waitress, 8 threads), with the same load generator
(wrk when present) at 4 keep-alive connections; then p99 latency as the request journal fills.

Run: ``.venv/bin/python bench/single.py [--duration S] [--rounds N]``.
"""

from __future__ import annotations

import argparse
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
TNT = "1368007744041-575948.01_00"
UPDATE = f"/m2/{TENANT}/profile/update?mboxPC={TNT}&profile.loyaltyTier=gold&profile.city=Berlin&profile.points=1200"
FETCH = f"/rest/v1/profiles/{TNT}?client={TENANT}"


def _seed(base: str) -> None:
    control(base, "PUT", "/settings", {"single_updates_per_day": None})
    control(base, "POST", f"/tenants/{TENANT}/profiles",
            {"tntId": TNT, "attributes": {"loyaltyTier": "silver", "city": "Paris", "points": "100"}})
    status, body = request(base + UPDATE)
    if status != 200 or b"<success>true</success>" not in body:
        raise RuntimeError(f"the single update failed ({status}): {body[:300]!r}")
    status, body = request(base + FETCH)
    if status != 200 or b'"loyaltyTier"' not in body:
        raise RuntimeError(f"the fetch failed ({status}): {body[:300]!r}")


def _fmt(r: LoadResult) -> str:
    return f"{r.rps:,.0f} req/s  p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms"


def figure_1(duration: float, rounds: int, connections: int, use_wrk: bool) -> None:
    heading(f"Figure 1: standalone server vs a bare Flask route on waitress, {connections} keep-alive "
            f"connections, {rounds} alternating rounds of {duration:g} s")
    with mock_server("--client-code", TENANT) as proj, bare_server() as bare:
        _seed(proj.url)
        for name, path in (("single update", UPDATE), ("fetch", FETCH)):
            results: dict[str, list[LoadResult]] = {"project": [], "bare": []}

            def run(which: str, base: str, path: str = path, name: str = name,
                    results: dict[str, list[LoadResult]] = results) -> float:
                r = load(base + path, connections=connections, duration=duration, use_wrk=use_wrk)
                if r.errors:
                    raise RuntimeError(f"{which} {name}: {r.errors} failed requests")
                results[which].append(r)
                return r.rps

            # warm both up first: the first requests pay for lazy imports and the JIT-less caches
            warm = min(1.0, duration)
            load(proj.url + path, connections=connections, duration=warm, use_wrk=use_wrk)
            load(bare.url + path, connections=connections, duration=warm, use_wrk=use_wrk)
            rps = alternate(rounds, {"project": lambda: run("project", proj.url),
                                     "bare": lambda: run("bare", bare.url)})
            p99 = median([r.p99_ms for r in results["project"]])
            bare_p99 = median([r.p99_ms for r in results["bare"]])
            proj_rps, bare_rps = median(rps["project"]), median(rps["bare"])
            tool = results["project"][0].tool
            report(f"{name}: bare Flask route ({tool})", f"{bare_rps:,.0f} req/s  p99 {bare_p99:.2f} ms")
            report(f"{name}: target-profile-mock ({tool})", f"{proj_rps:,.0f} req/s  p99 {p99:.2f} ms")
            ratio = proj_rps / bare_rps
            report(f"{name}: throughput vs bare route", f"{ratio:.2f}x", ">= 0.80x", ratio >= 0.8)
            report(f"{name}: p99 latency", f"{p99:.2f} ms", "<= 5 ms", p99 <= 5.0)


def journal_growth(duration: float, phases: int, connections: int, use_wrk: bool, journal: int) -> None:
    heading(f"Latency as the journal fills: single updates in {phases} phases of {duration:g} s, "
            f"journal bounded at {journal:,} entries")
    with mock_server("--client-code", TENANT, "--journal-size", str(journal)) as proj:
        _seed(proj.url)
        sent = 0
        first: LoadResult | None = None
        last: LoadResult | None = None
        rss0 = proj.rss()
        for i in range(phases):
            r = load(proj.url + UPDATE, connections=connections, duration=duration, use_wrk=use_wrk)
            sent += r.requests
            report(f"phase {i + 1}: after {sent:,} requests", _fmt(r))
            first = first or r
            last = r
        assert first is not None and last is not None
        climb = last.p99_ms - first.p99_ms
        # noise on a shared machine is a few tenths of a millisecond; growth with the journal would be far more
        report("p99 change, last phase vs first", f"{climb:+.2f} ms ({last.p99_ms / first.p99_ms:.2f}x)",
               "no climb", last.p99_ms <= max(first.p99_ms * 1.5, first.p99_ms + 1.0))
        report("server RSS growth over the phases", f"{(proj.rss() - rss0) / 2**20:.1f} MiB")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=3.0, help="seconds per load run (default 3)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per figure (default 5)")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--phases", type=int, default=6, help="journal phases (default 6)")
    p.add_argument("--journal-size", type=int, default=10_000)
    p.add_argument("--python-client", action="store_true", help="use the Python load generator even if wrk exists")
    p.add_argument("--quick", action="store_true", help="tiny runs (a smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.phases, args.journal_size = 0.2, 1, 2, 50
    use_wrk = not args.python_client and (args.quick or ensure_wrk())
    if not use_wrk or not ensure_wrk(install=False):
        use_wrk = False
        print("note: wrk not found; using the Python keep-alive client, which is slower than the server under "
              "test: both sides are measured with it, but the throughput figures understate both "
              "(install wrk: apt-get install wrk)")
    figure_1(args.duration, args.rounds, args.connections, use_wrk)
    journal_growth(args.duration, args.phases, args.connections, use_wrk, args.journal_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
