"""Memory under attack: what clients can make the standalone server hold, with its default settings.

Each attack runs against a fresh server in its own process, and the figure is that process's peak
resident set (VmHWM) over the attack:

1. status polls: a 100,000-row v2 batch whose rows have no id (each poll answers a list of 100,000 failed
   rows, about 7.9 MB), polled 100 times;
2. large headers: 1,000 single updates with a 200 KB header each;
3. journal read: 2,000 large requests (a 60 KB body and a 120 KB header each), then ``GET /_mock/journal``
   read whole;
4. batches: eight ~49 MB v1 batches (500,000 rows each), back to back, each to its own client code, never
   polled;
5. fetches: 50,000 profile fetches, each with its own client code.

Target: every peak under 400 MiB. ``--compare DIR`` runs the same attacks against the server of another
source tree too (e.g. ``git worktree add /tmp/before <commit>``) and prints both side by side.

Run: ``.venv/bin/python bench/memory.py [--compare DIR] [--only polls,headers,...] [--quick]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, MiB, ServerProcess, fmt_mib, heading, make_batch, mock_server, report, request

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TARGET = 400 * MiB


class Sizes:
    """How big each attack is (the issue's figures; ``--quick`` shrinks them to a smoke run)."""

    def __init__(self, quick: bool) -> None:
        self.poll_rows, self.polls = (2_000, 3) if quick else (100_000, 100)
        self.header_requests, self.header_bytes = (20, 20_000) if quick else (1_000, 200_000)
        self.journal_entries, self.journal_body, self.journal_header = (20, 6_000, 12_000) if quick else (
            2_000, 60_000, 120_000)
        self.batches, self.batch_rows = (2, 2_000) if quick else (8, 500_000)
        self.fetches = 200 if quick else 50_000


def _conn(srv: ServerProcess) -> http.client.HTTPConnection:
    host, port = srv.hostport
    return http.client.HTTPConnection(host, port, timeout=300)


def _get(conn: http.client.HTTPConnection, target: str, headers: dict[str, str] | None = None,
         body: bytes | None = None, method: str = "GET") -> tuple[int, int]:
    """One request on a keep-alive connection; (status, bytes of the answer), read in pieces."""
    conn.request(method, target, body=body, headers=headers or {})
    resp = conn.getresponse()
    size = 0
    while chunk := resp.read(1 << 20):
        size += len(chunk)
    return resp.status, size


def attack_polls(srv: ServerProcess, n: Sizes) -> str:
    body = b"batch=pcId,tier\n" + b",gold\n" * n.poll_rows
    status, answer = request(srv.url + "/m2/polls/v2/profile/batchUpdate", "POST", body, FORM)
    if status != 200:
        raise RuntimeError(f"the batch was refused ({status}): {answer[:300]!r}")
    m = re.search(rb"<batchStatus>(.*?)</batchStatus>", answer)
    assert m, answer
    parts = urlsplit(m.group(1).decode().replace("&amp;", "&"))
    target = f"{parts.path}?{parts.query}"
    conn = _conn(srv)
    sizes = []
    try:
        deadline = time.monotonic() + 30
        while True:  # the default lifecycle ends a batch 2 s after submission
            status, size = _get(conn, target)
            if size > n.poll_rows * 40 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for _ in range(n.polls):
            status, size = _get(conn, target)
            sizes.append(size)
    finally:
        conn.close()
    return f"{n.polls} polls answering {max(sizes) / 1e6:.1f} MB"


def attack_headers(srv: ServerProcess, n: Sizes) -> str:
    big = {"X-Padding": "h" * n.header_bytes}
    conn = _conn(srv)
    statuses: dict[int, int] = {}
    try:
        for i in range(n.header_requests):
            status, _ = _get(conn, f"/m2/headers/profile/update?mbox3rdPartyId=u{i}&profile.x=1", big)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        conn.close()
    return f"statuses {statuses}"


def attack_journal(srv: ServerProcess, n: Sizes) -> str:
    headers = {"X-Padding": "h" * n.journal_header, **FORM}
    body = b"mbox3rdPartyId=u&profile.note=" + b"n" * (n.journal_body - 30)
    conn = _conn(srv)
    try:
        for _ in range(n.journal_entries):
            _get(conn, "/m2/journal/profile/update", headers, body, "POST")
        t = time.perf_counter()
        status, size = _get(conn, "/_mock/journal")
        took = time.perf_counter() - t
    finally:
        conn.close()
    if status != 200:
        raise RuntimeError(f"GET /_mock/journal -> {status}")
    return f"journal read: {size / 1e6:.0f} MB of JSON in {took:.1f} s"


def attack_batches(srv: ServerProcess, n: Sizes) -> str:
    data = make_batch(n.batch_rows, min_bytes=n.batch_rows * 99)
    statuses = []
    for i in range(n.batches):
        status, _ = request(srv.url + f"/m2/batches{i}/profile/batchUpdate", "POST", data, FORM, timeout=300)
        statuses.append(status)
    accepted = statuses.count(200)
    return (f"{n.batches} x {len(data) / 1e6:.1f} MB: {accepted} accepted"
            + (f", {len(statuses) - accepted} refused ({sorted(set(statuses) - {200})})" if accepted < len(statuses)
               else ""))


def attack_fetches(srv: ServerProcess, n: Sizes) -> str:
    per = n.fetches // 4
    counts = [0] * 4

    def worker(k: int) -> None:
        conn = _conn(srv)
        try:
            for i in range(k * per, (k + 1) * per):
                status, _ = _get(conn, f"/rest/v1/profiles/thirdPartyId/u?client=c{i}")
                counts[k] += status == 404
        finally:
            conn.close()

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    status, tenants = request(srv.url + "/_mock/tenants")
    held = len(json.loads(tenants)) if status == 200 else "?"
    return f"{sum(counts):,} fetches answered 404; tenants held after: {held}"


ATTACKS: dict[str, tuple[str, Callable[[ServerProcess, Sizes], str]]] = {
    "polls": ("100 polls of a 100,000-row batch without ids", attack_polls),
    "headers": ("1,000 requests with a 200 KB header", attack_headers),
    "journal": ("journal read with 2,000 large entries", attack_journal),
    "batches": ("eight ~49 MB batches", attack_batches),
    "fetches": ("50,000 fetches with distinct client codes", attack_fetches),
}


def run(name: str, root: Path, n: Sizes) -> tuple[int, int, str]:
    """One attack on a fresh server from ``root``: (resident before, peak, what happened)."""
    with mock_server(root=root) as srv:
        request(srv.url + "/_mock/health")  # lazy imports of the first request are not the attack's
        before = srv.rss()
        t = time.perf_counter()
        what = ATTACKS[name][1](srv, n)
        took = time.perf_counter() - t
        peak = srv.peak_rss()
    return before, peak, f"{what}; {took:.0f} s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--compare", type=Path, metavar="DIR",
                   help="also attack the server of this source tree (e.g. a worktree of the code before)")
    p.add_argument("--only", default="", help=f"comma-separated attacks: {', '.join(ATTACKS)}")
    p.add_argument("--quick", action="store_true", help="tiny inputs (a smoke run; the figures mean nothing)")
    args = p.parse_args(argv)
    n = Sizes(args.quick)
    names = [x.strip() for x in args.only.split(",") if x.strip()] or list(ATTACKS)
    unknown = [x for x in names if x not in ATTACKS]
    if unknown:
        p.error(f"unknown attack(s) {unknown}; choose from {', '.join(ATTACKS)}")
    trees = [("this tree", ROOT)] + ([("compared", args.compare.resolve())] if args.compare else [])
    heading("Memory under attack: the standalone server's peak RSS with default settings, a fresh server each")
    for name in names:
        label = ATTACKS[name][0]
        peaks = []
        for which, root in trees:
            before, peak, what = run(name, root, n)
            peaks.append(peak)
            print(f"    [{which}] {what}; resident before {fmt_mib(before)}", flush=True)
        if len(peaks) == 2:
            report(f"{label}: peak RSS", f"{fmt_mib(peaks[0])} (compared: {fmt_mib(peaks[1])})", "<= 400 MiB",
                   peaks[0] <= TARGET)
        else:
            report(f"{label}: peak RSS", fmt_mib(peaks[0]), "<= 400 MiB", peaks[0] <= TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
