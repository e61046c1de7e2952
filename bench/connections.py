"""Figure 6: the standalone server with many idle or slow connections open.

Opens N connections to a server in its own process (a third idle, a third stopped half-way through
their headers, a third half-way through a body) and, while they stay open, times ``/_mock/health``
and a single update on fresh connections. Side by side: waitress' own connection settings
(``--connection-limit 100 --channel-timeout 120``) and the server's defaults. Target: both answer
within 1 s with 500 such connections open.

Usage: ``.venv/bin/python bench/connections.py [--connections 500] [--rounds 5] [--quick]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, QUICK_ENV, ServerProcess, heading, machine, median, report

TIMEOUT = 5.0  # what a client would wait; an answer later than this counts as none
TARGET = 1.0
CONFIGS = {
    "waitress defaults (100 connections, 120 s)": ["--connection-limit", "100", "--channel-timeout", "120"],
    "target-profile-mock defaults": [],
}


def _raise_open_files(n: int) -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))


def hold(host: str, port: int, n: int) -> list[socket.socket]:
    """``n`` open connections, none of them ever finishing a request."""
    held = []
    for i in range(n):
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
        if i % 3 == 1:  # slowloris: headers never end
            sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        elif i % 3 == 2:  # a slow upload: the body never ends
            sock.sendall(b"POST /m2/demo/profile/batchUpdate HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\n\r\nbatch=thirdPartyId,a\n")
        held.append(sock)
    return held


def timed(host: str, port: int, method: str, path: str, body: bytes | None = None) -> float | None:
    """Seconds to a full answer on a fresh connection, or None when none came within TIMEOUT."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        resp = conn.getresponse()
        resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}")
    except (TimeoutError, ConnectionError):
        return None
    finally:
        conn.close()
    return time.perf_counter() - start


def _show(values: list[float | None]) -> tuple[str, bool]:
    answered = [v for v in values if v is not None]
    if len(answered) < len(values):
        return f"{len(values) - len(answered)}/{len(values)} got no answer in {TIMEOUT:g} s", False
    return f"median {median(answered) * 1000:.1f} ms, max {max(answered) * 1000:.1f} ms", max(answered) < TARGET


def run(name: str, extra: list[str], connections: int, rounds: int) -> None:
    heading(f"{name}: {connections} idle or slow connections open")
    with ServerProcess([PYTHON, "-m", "target_profile_mock", "serve", "--port", "0", *extra]) as server:
        host, port = server.hostport
        seeded = timed(host, port, "POST", "/_mock/tenants/demo/profiles",
                       json.dumps({"thirdPartyId": "u1", "attributes": {"a": "0"}}).encode())
        assert seeded is not None, "the server did not answer before any connection was held"
        held = hold(host, port, connections)
        try:
            health, update = [], []
            for i in range(rounds):
                health.append(timed(host, port, "GET", "/_mock/health"))
                update.append(timed(host, port, "GET", f"/m2/demo/profile/update?mbox3rdPartyId=u1&profile.a={i}"))
                if None in health or None in update:
                    break  # shut out: more rounds would only wait out more timeouts
        finally:
            for sock in held:
                sock.close()
        for label, values in (("health", health), ("single update", update)):
            shown, met = _show(values)
            report(f"6. {label}, {name}", shown, f"< {TARGET:g} s", met if not extra else None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--connections", type=int, default=500)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="tiny inputs: checks the script runs")
    args = p.parse_args()
    if args.quick or os.environ.get(QUICK_ENV):
        args.connections, args.rounds = 12, 1
    _raise_open_files(args.connections)
    print(machine())
    for name, extra in CONFIGS.items():
        run(name, extra, args.connections, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
