"""Figure 10, the Delivery API on the standalone server: a returning visitor's visit (a known tntId, one
mbox, two profile parameters written) against a bare Flask route returning a body of the same shape on
the same WSGI server, with the same load generator, 4 keep-alive connections; then the same visit with
10,000 and 100,000 profiles in the tenant, to show the identity lookup does not grow with their number.

Run: ``.venv/bin/python bench/delivery.py [--duration S] [--rounds N] [--quick]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    LoadResult,
    _wrk_ms,
    alternate,
    bare_server,
    control,
    ensure_wrk,
    have_wrk,
    heading,
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
    """POST ``body`` over keep-alive connections for ``duration`` seconds (wrk with a Lua script, or Python)."""
    if use_wrk and have_wrk():
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode())}\n'
                    'wrk.headers["Content-Type"] = "application/json"\n')
            script = f.name
        try:
            out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
                                  "-s", script, url], capture_output=True, text=True, check=True).stdout
        finally:
            os.unlink(script)
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", out, re.M))
        total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return LoadResult(rps, _wrk_ms(pct["50"]), _wrk_ms(pct["99"]), total, int(m.group(1)) if m else 0, "wrk")
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    stop_at = time.perf_counter() + duration

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                conn.request("POST", target, body=body, headers=HEADERS)
                resp = conn.getresponse()
                resp.read()
                latencies[i].append(time.perf_counter() - t)
                if resp.status >= 300:
                    errors[i] += 1
        finally:
            conn.close()

    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    flat = sorted(x for lat in latencies for x in lat)
    n = len(flat)
    if not n:
        return LoadResult(0.0, 0.0, 0.0, 0, sum(errors), "python")
    return LoadResult(n / (time.perf_counter() - t0), flat[n // 2] * 1000, flat[min(n - 1, int(n * 0.99))] * 1000,
                      n, sum(errors), "python")


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
