"""Shared pieces of the benchmark scripts: servers in their own process, RSS, load generation, data.

Every figure is a ratio against a bare baseline measured on the same machine in the same run, so
the scripts alternate project and baseline runs and report medians.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
#: When set (by bench/run.py), every ``report`` call also appends one JSON line here.
SUMMARY_ENV = "BENCH_SUMMARY"
QUICK_ENV = "BENCH_QUICK"

MiB = 1024 * 1024


# --- reporting -----------------------------------------------------------------------------------
def report(figure: str, value: str, target: str = "", met: bool | None = None) -> None:
    """Print one figure (and record it for the harness summary)."""
    verdict = "" if met is None else ("met" if met else "MISSED")
    print(f"  {figure:<58} {value:<34} {target:<18} {verdict}", flush=True)
    path = os.environ.get(SUMMARY_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"script": Path(sys.argv[0]).name, "figure": figure, "value": value,
                                 "target": target, "met": met}) + "\n")


def split_at_dashes(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """A harness's own arguments, and those after ``--``, which go to every script it runs."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    """A one-line description of the machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f", {int(line.split()[1]) // 1024 // 1024 + 1} GiB RAM"
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}")


# --- processes and memory ------------------------------------------------------------------------
def _proc_status(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` memory figure (VmRSS, VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def rss(pid: int) -> int:
    """Resident set size now, in bytes (Linux /proc; psutil elsewhere)."""
    if Path(f"/proc/{pid}/status").exists():
        return _proc_status(pid, "VmRSS")
    import psutil  # only off Linux

    return psutil.Process(pid).memory_info().rss


def peak_rss(pid: int) -> int:
    """The process's peak resident set size so far, in bytes (VmHWM)."""
    if Path(f"/proc/{pid}/status").exists():
        return _proc_status(pid, "VmHWM")
    import psutil

    info = psutil.Process(pid).memory_info()
    return getattr(info, "peak_wset", info.rss)


_URL_RE = re.compile(r"(http://\S+?:\d+)")


class ServerProcess:
    """A server in its own process, so its memory is measured alone; ``url`` once it listens.

    The command must print a line containing its ``http://host:port`` URL when it is ready.
    """

    def __init__(self, argv: Sequence[str], *, ready_timeout: float = 30.0, root: Path = ROOT) -> None:
        self.argv = list(argv)
        self.ready_timeout = ready_timeout
        self.root = root  #: the source tree the server's code comes from
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> ServerProcess:
        env = dict(os.environ, PYTHONPATH=str(self.root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     cwd=self.root, env=env)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.ready_timeout
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            m = _URL_RE.search(line)
            if m:
                self.url = m.group(1)
                # keep draining output so the server never blocks on a full pipe
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                return self
        self.stop()
        raise RuntimeError(f"server {self.argv} did not start:\n{''.join(seen)}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def hostport(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 80

    def rss(self) -> int:
        return rss(self.pid)

    def peak_rss(self) -> int:
        return peak_rss(self.pid)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def mock_server(*extra: str, threads: int = 8, root: Path = ROOT) -> ServerProcess:
    """The project's standalone server (``python -m target_profile_mock serve``) on a free loopback port, run
    from the source tree ``root`` (this checkout by default; another one to compare with)."""
    return ServerProcess([PYTHON, "-m", "target_profile_mock", "serve", "--host", "127.0.0.1", "--port", "0",
                          "--threads", str(threads), *extra], root=root)


def bare_server(threads: int = 8) -> ServerProcess:
    """The baseline: bare Flask routes returning the same bodies on the same WSGI server."""
    return ServerProcess([PYTHON, str(BENCH / "bare_server.py"), "--threads", str(threads)])


# --- HTTP helpers --------------------------------------------------------------------------------
def request(url: str, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 120.0) -> tuple[int, bytes]:
    """One request on a fresh connection; returns (status, body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def control(base: str, method: str, path: str, payload: object | None = None) -> object:
    """A call to the fake's ``/_mock/`` control API."""
    body = json.dumps(payload).encode() if payload is not None else None
    status, data = request(base + "/_mock" + path, method, body, {"Content-Type": "application/json"})
    if status >= 400:
        raise RuntimeError(f"{method} /_mock{path} -> {status}: {data[:300]!r}")
    return json.loads(data) if data else None


# --- load generation -----------------------------------------------------------------------------
@dataclass
class LoadResult:
    """Throughput and latency of one load run."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    tool: str


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def ensure_wrk(install: bool = True) -> bool:
    """wrk if present; else try ``apt-get install -y wrk`` when running as root (Debian/Ubuntu)."""
    if have_wrk():
        return True
    if install and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        print("  installing wrk with apt-get ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    return have_wrk()


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _WRK_UNITS[m.group(2)]


def wrk(url: str, *, connections: int = 4, duration: float = 3.0, threads: int = 1, body: bytes | None = None,
        headers: Mapping[str, str] | None = None) -> LoadResult:
    """Run wrk against one URL (keep-alive; GET, or POST of ``body`` with ``headers``) and read its
    throughput and latency percentiles."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    script = None
    if body is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode())}\n')
            f.writelines(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items())
        script = f.name
        argv += ["-s", script]
    try:
        out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    finally:
        if script is not None:
            os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", out, re.M))
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return LoadResult(rps, _wrk_ms(pct["50"]), _wrk_ms(pct["99"]), total, errors, "wrk")


def python_load(url: str, *, connections: int = 4, duration: float = 3.0, max_requests: int | None = None,
                body: bytes | None = None, headers: Mapping[str, str] | None = None) -> LoadResult:
    """A keep-alive load generator in Python threads (GET, or POST of ``body`` with ``headers``): the
    fallback when wrk is missing.

    It shares the GIL and the CPUs with nothing but itself, yet it is far slower than wrk, so its
    throughput figures understate both sides; the ratio still compares like with like.
    """
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    stop_at = time.perf_counter() + duration
    per_conn = None if max_requests is None else max(1, max_requests // connections)

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        lat = latencies[i]
        try:
            while time.perf_counter() < stop_at and (per_conn is None or len(lat) < per_conn):
                t = time.perf_counter()
                conn.request("GET" if body is None else "POST", target, body=body, headers=dict(headers or {}))
                resp = conn.getresponse()
                resp.read()
                lat.append(time.perf_counter() - t)
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
    elapsed = time.perf_counter() - t0
    flat = sorted(x for lat in latencies for x in lat)
    n = len(flat)
    if not n:
        return LoadResult(0.0, 0.0, 0.0, 0, sum(errors), "python")
    return LoadResult(n / elapsed, flat[n // 2] * 1000, flat[min(n - 1, int(n * 0.99))] * 1000, n, sum(errors),
                      "python")


def load(url: str, *, connections: int = 4, duration: float = 3.0, use_wrk: bool = True, body: bytes | None = None,
         headers: Mapping[str, str] | None = None) -> LoadResult:
    if use_wrk and have_wrk():
        return wrk(url, connections=connections, duration=duration, body=body, headers=headers)
    return python_load(url, connections=connections, duration=duration, body=body, headers=headers)


def alternate(rounds: int, runs: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run each named measurement once per round, in turn (project, baseline, project, ...)."""
    out: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            out[name].append(fn())
    return out


def paired(rounds: int, project: Callable[[], float], baseline: Callable[[], float]) -> tuple[float, float, float]:
    """Time both back to back each round (under the same machine load): the median of the project's times,
    of the baseline's, and of the rounds' ratios (project / baseline)."""
    ours, base, ratios = [], [], []
    for _ in range(rounds):
        a, b = project(), baseline()
        ours.append(a)
        base.append(b)
        ratios.append(a / b)
    return median(ours), median(base), median(ratios)


# --- data ----------------------------------------------------------------------------------------
_TIERS = ("gold", "silver", "bronze", "platinum")
_CITIES = ("Berlin", "San%20Francisco", "S%C3%A3o%20Paulo", "Z%C3%BCrich", "New%20York", "Paris", "Tokyo",
           "Lyon")


def tnt_id(i: int) -> str:
    """A distinct Target id in the documented shape (``<digits>-<digits>.<hint>``)."""
    return f"{1368007744041 + i}-{575948 + i % 400000:06d}.{i % 90 + 10:02d}_00"


def batch_rows(n: int) -> Iterator[str]:
    """Encoded CSV rows (without line ends): a pcId and six attributes, some cells percent-encoded."""
    for i in range(n):
        yield (f"{tnt_id(i)},{_TIERS[i % 4]},{_CITIES[i % 8]},{(i * 7919) % 100000},"
               f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d},user{i}%40example.com,{'true' if i % 3 else 'false'}")


BATCH_HEADER = "batch=pcId,loyaltyTier,city,points,lastPurchase,email,optIn"


def make_batch(rows: int, *, min_bytes: int = 0) -> bytes:
    """A documented-shape batch file of ``rows`` rows, padded with a note column to ``min_bytes``."""
    lines = list(batch_rows(rows))
    size = len(BATCH_HEADER) + sum(len(x) + 1 for x in lines) + 1
    if size >= min_bytes or not rows:
        return (BATCH_HEADER + "\n" + "\n".join(lines) + "\n").encode("ascii")
    pad = (min_bytes - size) // rows + 1
    note = "x" * max(0, pad - len(","))
    return (BATCH_HEADER + ",note\n" + "\n".join(f"{x},{note}" for x in lines) + "\n").encode("ascii")


def fmt_mib(n: float) -> str:
    return f"{n / MiB:.1f} MiB"


@contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    t = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - t)
