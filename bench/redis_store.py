"""Figure 11, the Redis store: the standalone server on Redis (``--store redis://...``) side by side with
the in-memory one, in one run.

a. single update throughput and p99: one in-memory process vs ``--workers 2`` on Redis (and
   ``--workers 1``, to show what the second worker adds), same load
   generator (wrk when present), median of alternating runs; and where the CPU went over the Redis
   runs (the workers, redis-server, the load generator), read from ``/proc/<pid>/stat``;
b. a 500,000-row v2 batch end to end (upload, poll until complete, apply) through Redis vs in memory,
   a fresh server each run, and the peak RSS of each worker;
c. what one Redis round trip costs: a PING through redis-py in this process, and the single-update
   latency, one worker and one connection, memory vs Redis.

Needs ``redis-server`` on PATH (Debian: ``apt-get install redis-server``) and the ``redis`` package;
the script starts its own redis-server on a free loopback port (no persistence) and stops it after.
(Not named ``redis.py``: this folder is on ``sys.path`` when the scripts run, and would shadow redis-py.)

Run: ``.venv/bin/python bench/redis_store.py [--duration S] [--rounds N] [--rows N] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the suite's redis-server starter
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bulk import follow
from common import (
    LoadResult,
    MiB,
    ServerProcess,
    alternate,
    ensure_wrk,
    fmt_mib,
    heading,
    load,
    make_batch,
    median,
    mock_server,
    peak_rss,
    python_load,
    report,
)
from redis_server import RedisServer, redis_server_path
from single import TENANT, UPDATE, _seed

_TICK = os.sysconf("SC_CLK_TCK")
#: Seconds each request of the bulk run on Redis may take (the poll that applies the rows is the long one).
REDIS_TIMEOUT = 900.0


# --- redis-server and the processes' CPU -------------------------------------------------------------
@contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    """A redis-server of this run on a free loopback port, without persistence; (URL without db, pid)."""
    executable = redis_server_path()
    if executable is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisServer(executable)
    try:
        assert server.proc is not None
        yield f"redis://127.0.0.1:{server.port}", server.proc.pid
    finally:
        server.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15)


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine so far, all cores (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _TICK, (idle + iowait) / _TICK


def own_cpu() -> float:
    """CPU of this process and of its finished children (the load generator: wrk, or Python threads)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def workers_of(srv: ServerProcess) -> list[int]:
    """The pids of a pre-forked server's workers (its children), or the server itself."""
    try:
        kids = Path(f"/proc/{srv.pid}/task/{srv.pid}/children").read_text().split()
    except OSError:
        kids = []
    return [int(k) for k in kids] or [srv.pid]


def redis_server_of(url: str, db: int, prefix: str, *extra: str) -> ServerProcess:
    return mock_server("--client-code", TENANT, "--store", f"{url}/{db}", "--store-prefix", prefix, *extra)


def flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushall()


# --- a. throughput ----------------------------------------------------------------------------------
def _fmt(r: LoadResult) -> str:
    return f"{r.rps:,.0f} req/s  p99 {r.p99_ms:.2f} ms"


def figure_a(url: str, redis_pid: int, duration: float, rounds: int, connections: int, use_wrk: bool) -> None:
    heading(f"11a. Single update: one in-memory process vs --workers 2 (and 1) on Redis, {connections} keep-alive "
            f"connections, {rounds} alternating rounds of {duration:g} s")
    with mock_server("--client-code", TENANT) as memory, \
            redis_server_of(url, 0, "bench-a", "--workers", "2") as shared, \
            redis_server_of(url, 3, "bench-a1") as single:
        workers = workers_of(shared)
        for srv in (memory, shared, single):
            _seed(srv.url)
            load(srv.url + UPDATE, connections=connections, duration=min(1.0, duration), use_wrk=use_wrk)
        results: dict[str, list[LoadResult]] = {"memory": [], "redis": [], "redis, 1 worker": []}
        cpu: dict[str, float] = {"workers": 0.0, "redis-server": 0.0, "load": 0.0, "wall": 0.0, "busy": 0.0,
                                 "idle": 0.0}
        per_worker = {pid: 0.0 for pid in workers}
        served = {"memory": 0, "redis": 0}  # requests answered over the runs whose CPU is counted
        memory_cpu = 0.0

        def run(which: str, srv: ServerProcess) -> float:
            nonlocal memory_cpu
            before = {pid: cpu_seconds(pid) for pid in [*workers, redis_pid, memory.pid]}
            mine, t, (busy, idle) = own_cpu(), time.perf_counter(), machine_cpu()
            r = load(srv.url + UPDATE, connections=connections, duration=duration, use_wrk=use_wrk)
            if r.errors:
                raise RuntimeError(f"{which}: {r.errors} failed requests")
            if which in served:
                served[which] += r.requests
            if which == "memory":
                memory_cpu += cpu_seconds(memory.pid) - before[memory.pid]
            if which == "redis":
                cpu["wall"] += time.perf_counter() - t
                now_busy, now_idle = machine_cpu()
                cpu["busy"] += now_busy - busy
                cpu["idle"] += now_idle - idle
                cpu["load"] += own_cpu() - mine
                cpu["redis-server"] += cpu_seconds(redis_pid) - before[redis_pid]
                for pid in workers:
                    used = cpu_seconds(pid) - before[pid]
                    per_worker[pid] += used
                    cpu["workers"] += used
            results[which].append(r)
            return r.rps

        rps = alternate(rounds, {"memory": lambda: run("memory", memory), "redis": lambda: run("redis", shared),
                                 "redis, 1 worker": lambda: run("redis, 1 worker", single)})
        tool = results["memory"][0].tool
        mem_rps, red_rps = median(rps["memory"]), median(rps["redis"])
        mem_p99 = median([r.p99_ms for r in results["memory"]])
        red_p99 = median([r.p99_ms for r in results["redis"]])
        report(f"single update: 1 process, memory ({tool})", f"{mem_rps:,.0f} req/s  p99 {mem_p99:.2f} ms")
        report(f"single update: --workers 2, Redis ({tool})", f"{red_rps:,.0f} req/s  p99 {red_p99:.2f} ms")
        one_rps = median(rps["redis, 1 worker"])
        one_p99 = median([r.p99_ms for r in results["redis, 1 worker"]])
        report(f"single update: --workers 1, Redis ({tool})", f"{one_rps:,.0f} req/s  p99 {one_p99:.2f} ms")
        ratio = red_rps / mem_rps
        report("single update: throughput, 2 workers on Redis vs memory", f"{ratio:.2f}x", ">= 1.30x", ratio >= 1.3)
        report("single update: throughput, 2 workers vs 1 on Redis", f"{red_rps / one_rps:.2f}x")
        wall = cpu["wall"]
        report("CPU over the Redis runs (2 cores = 200%): workers",
               f"{cpu['workers']:.1f} s ({100 * cpu['workers'] / wall:.0f}%), split "
               + " / ".join(f"{100 * v / wall:.0f}%" for v in per_worker.values()))
        report("CPU over the Redis runs: redis-server",
               f"{cpu['redis-server']:.1f} s ({100 * cpu['redis-server'] / wall:.0f}%)")
        report(f"CPU over the Redis runs: load generator ({tool}) and this script",
               f"{cpu['load']:.1f} s ({100 * cpu['load'] / wall:.0f}%)")
        others = cpu["busy"] - cpu["workers"] - cpu["redis-server"] - cpu["load"]
        report("CPU over the Redis runs: other processes on the machine",
               f"{max(0.0, others):.1f} s ({100 * max(0.0, others) / wall:.0f}%)")
        report("CPU over the Redis runs: idle", f"{cpu['idle']:.1f} s ({100 * cpu['idle'] / wall:.0f}%)")
        per_memory = memory_cpu / max(1, served["memory"])
        per_redis = cpu["workers"] / max(1, served["redis"])
        report("server CPU per single update: memory process / Redis workers",
               f"{per_memory * 1e3:.2f} ms / {per_redis * 1e3:.2f} ms ({per_redis / per_memory:.2f}x)")


# --- b. bulk ------------------------------------------------------------------------------------------
def figure_b(url: str, rows: int, rounds: int) -> None:
    data = make_batch(rows, min_bytes=rows * 99)
    heading(f"11b. Bulk: {rows:,} rows, {len(data) / 1e6:.1f} MB v2 batch, end to end, Redis (--workers 2) "
            f"vs memory, {rounds} alternating rounds, a fresh server each")
    options = ("--lifecycle", "immediate", "--bulk-rate-limit", "off")
    peaks: list[int] = []
    memory_peaks: list[int] = []
    counter = iter(range(10_000))

    def in_memory() -> float:
        with mock_server("--client-code", TENANT, *options) as srv:
            elapsed = follow(srv, data, rows)
            memory_peaks.append(srv.peak_rss())
        return elapsed

    def on_redis() -> float:
        with redis_server_of(url, 0, f"bench-b{next(counter)}", "--workers", "2", *options) as srv:
            workers = workers_of(srv)
            elapsed = follow(srv, data, rows, timeout=REDIS_TIMEOUT)
            peaks.extend(peak_rss(pid) for pid in workers)
        flush(url)
        return elapsed

    times = alternate(rounds, {"memory": in_memory, "redis": on_redis})
    mem, red = median(times["memory"]), median(times["redis"])
    report("bulk end to end: memory, 1 process", f"{mem:.2f} s  {rows / mem:,.0f} rows/s")
    report("bulk end to end: Redis, --workers 2", f"{red:.2f} s  {rows / red:,.0f} rows/s")
    report("bulk end to end: Redis time vs memory", f"{red / mem:.2f}x", "<= 5.00x", red / mem <= 5)
    report("peak RSS, the in-memory process", fmt_mib(max(memory_peaks)))
    report("peak RSS of each Redis worker (the largest)", fmt_mib(max(peaks)), "< 400 MiB", max(peaks) < 400 * MiB)


# --- c. one round trip -----------------------------------------------------------------------------------
def figure_c(url: str, pings: int, requests: int) -> None:
    import redis

    heading(f"11c. One Redis round trip: {pings:,} PINGs through redis-py; {requests:,} single updates on one "
            "connection, one worker, memory vs Redis")
    client = redis.Redis.from_url(url)
    client.ping()
    times = []
    for _ in range(pings):
        t = time.perf_counter()
        client.ping()
        times.append(time.perf_counter() - t)
    client.close()
    report("one PING through redis-py (median)", f"{median(times) * 1e6:.0f} µs")
    from target_profile_mock.mockserver import MockBackend
    from target_profile_mock.mockserver.store import open_store

    store = open_store(f"{url}/2", prefix="bench-c")
    backend = MockBackend(store=store)
    empty, refresh = [], []
    for _ in range(pings):
        t = time.perf_counter()
        with backend.lock:  # the least an operation costs
            pass
        empty.append(time.perf_counter() - t)
        t = time.perf_counter()
        store.refresh()  # what a server on a shared store does before each request
        refresh.append(time.perf_counter() - t)
    store.close()
    report("an empty store transaction, no other process (median)", f"{median(empty) * 1e6:.0f} µs")
    report("store.refresh() with nothing changed (median)", f"{median(refresh) * 1e6:.0f} µs")
    with mock_server("--client-code", TENANT) as memory, redis_server_of(url, 1, "bench-c") as shared:
        got = {}
        for name, srv in (("memory", memory), ("redis", shared)):
            _seed(srv.url)
            python_load(srv.url + UPDATE, connections=1, duration=30, max_requests=min(50, requests))
            got[name] = python_load(srv.url + UPDATE, connections=1, duration=60, max_requests=requests)
    for name, r in got.items():
        report(f"single update, one connection: {name}", f"p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms")
    report("single update: what Redis adds (p50)", f"{got['redis'].p50_ms - got['memory'].p50_ms:+.2f} ms "
           f"({(got['redis'].p50_ms - got['memory'].p50_ms) / (median(times) * 1e3):.1f} PINGs)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=3.0, help="seconds per load run (default 3)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of 11a (default 5)")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--rows", type=int, default=500_000)
    p.add_argument("--bulk-rounds", type=int, default=1,
                   help="bulk runs each side (default 1: one Redis run takes minutes)")
    p.add_argument("--python-client", action="store_true", help="use the Python load generator even if wrk exists")
    p.add_argument("--quick", action="store_true", help="tiny runs (a smoke run)")
    args = p.parse_args(argv)
    pings, requests = 2_000, 1_000
    if args.quick:
        args.duration, args.rounds, args.rows, args.bulk_rounds, pings, requests = 0.3, 1, 2_000, 1, 50, 30
    use_wrk = not args.python_client and (args.quick or ensure_wrk())
    if not use_wrk or not ensure_wrk(install=False):
        use_wrk = False
        print("note: wrk not found; using the Python keep-alive client (slower than the servers: both sides "
              "are measured with it, but the throughput figures understate both)")
    with redis_server() as (url, redis_pid):
        figure_a(url, redis_pid, args.duration, args.rounds, args.connections, use_wrk)
        figure_b(url, args.rows, args.bulk_rounds)
        figure_c(url, pings, requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
