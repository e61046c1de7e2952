"""Figure 3, bulk: a 500,000-row (~50 MB) batch uploaded to the standalone server and followed to
``complete``, against one bare ``csv.reader`` pass over the same bytes; the server's peak RSS; and
its RSS growth while a 51 MB file is refused (with a Content-Length, and chunked without one).

Run: ``.venv/bin/python bench/bulk.py [--rows N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    MiB,
    ServerProcess,
    alternate,
    fmt_mib,
    heading,
    make_batch,
    median,
    mock_server,
    report,
    request,
    tnt_id,
)

TENANT = "bench"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def csv_pass(data: bytes) -> float:
    """The baseline: one csv.reader pass over the bytes (decoding included)."""
    t = time.perf_counter()
    n = 0
    for _ in csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")):
        n += 1
    elapsed = time.perf_counter() - t
    assert n > 0
    return elapsed


def _server() -> ServerProcess:
    return mock_server("--lifecycle", "immediate", "--bulk-rate-limit", "off", "--client-code", TENANT)


def upload_and_follow(data: bytes, rows: int) -> tuple[float, int]:
    """Upload the batch to a fresh server, poll its status until complete; (seconds, peak RSS)."""
    with _server() as srv:
        elapsed = follow(srv, data, rows)
        return elapsed, srv.peak_rss()


def follow(srv: ServerProcess, data: bytes, rows: int, timeout: float = 120.0) -> float:
    """Upload the batch to ``srv`` (lifecycle ``immediate``, no bulk limit), poll its status until
    complete, then check its last row reached the profiles; the seconds until complete (``timeout``:
    at most this long for each request)."""
    t = time.perf_counter()
    status, body = request(srv.url + f"/m2/{TENANT}/v2/profile/batchUpdate", "POST", data, FORM, timeout=timeout)
    if status != 200:
        raise RuntimeError(f"the batch was refused ({status}): {body[:400]!r}")
    m = re.search(rb"<batchStatus>(.*?)</batchStatus>", body)
    if not m:
        raise RuntimeError(f"no batchStatus in {body[:400]!r}")
    status_url = m.group(1).decode().replace("&amp;", "&")
    while True:
        status, body = request(status_url, timeout=timeout)
        if b"<status>complete</status>" in body:
            break
        if status != 200 or b"<status>stuck</status>" in body:
            raise RuntimeError(f"status poll failed ({status}): {body[:400]!r}")
        time.sleep(0.005)
    elapsed = time.perf_counter() - t
    # outside the timing: the last row really reached the profile store
    last = tnt_id(rows - 1)
    status, body = request(srv.url + f"/rest/v1/profiles/{last}?client={TENANT}", timeout=timeout)
    if status != 200 or b"loyaltyTier" not in body:
        raise RuntimeError(f"row {rows} was not applied ({status}): {body[:300]!r}")
    return elapsed


def _chunks(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def refusal_growth(data: bytes, *, chunked: bool) -> tuple[int, int]:
    """RSS growth (peak after minus resident before) while a too-large file is refused; (bytes, status)."""
    with _server() as srv:
        request(srv.url + "/_mock/health")  # the first request's lazy imports are not the file's cost
        before = srv.rss()
        parts = urlsplit(srv.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            path = f"/m2/{TENANT}/v2/profile/batchUpdate"
            if chunked:
                conn.request("POST", path, body=_chunks(data), headers=FORM, encode_chunked=True)
            else:
                conn.request("POST", path, body=data, headers=FORM)
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except (BrokenPipeError, ConnectionResetError):
            status = 0  # the server may answer and close before the body is all sent
        finally:
            conn.close()
        time.sleep(0.05)
        return srv.peak_rss() - before, status


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=500_000)
    p.add_argument("--bytes", type=int, default=None, help="pad the file to this size (default: ~99 bytes a row)")
    p.add_argument("--refuse-bytes", type=int, default=51_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="tiny inputs, one round (a smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.rounds, args.refuse_bytes = 2_000, 1, 0
    size = args.bytes if args.bytes is not None else args.rows * 99
    data = make_batch(args.rows, min_bytes=size)
    heading(f"Figure 3: bulk, {args.rows:,} rows, {len(data) / 1e6:.1f} MB, {args.rounds} alternating rounds")
    peaks: list[int] = []

    def project() -> float:
        elapsed, peak = upload_and_follow(data, args.rows)
        peaks.append(peak)
        return elapsed

    times = alternate(args.rounds, {"project": project, "csv.reader": lambda: csv_pass(data)})
    proj, base = median(times["project"]), median(times["csv.reader"])
    mb = len(data) / 1e6
    report("csv.reader pass (baseline)", f"{base:.3f} s  {mb / base:.0f} MB/s  {args.rows / base:,.0f} rows/s")
    report("upload + parse + accept + poll + apply",
           f"{proj:.3f} s  {mb / proj:.0f} MB/s  {args.rows / proj:,.0f} rows/s")
    ratio = base / proj
    report("bulk end to end, rate vs csv.reader", f"{ratio:.2f}x", ">= 0.30x", ratio >= 0.3)
    peak = max(peaks)
    report("server peak RSS over the run", fmt_mib(peak), "<= 400 MiB", peak <= 400 * MiB)
    if args.refuse_bytes:
        big = make_batch(args.rows, min_bytes=args.refuse_bytes)
        for chunked in (False, True):
            growth, status = refusal_growth(big, chunked=chunked)
            how = "chunked, no Content-Length" if chunked else "with Content-Length"
            report(f"RSS growth refusing {len(big) / 1e6:.0f} MB ({how}) -> {status}", fmt_mib(growth),
                   "< 16 MiB", growth < 16 * MiB and status == 413)
    return 0


if __name__ == "__main__":
    sys.exit(main())
