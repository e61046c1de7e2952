"""The benchmark scripts run end to end on tiny inputs (their figures are measured on purpose, not here)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
from target_profile_mock.contracts.batch import parse_batch  # noqa: E402


def _run(*argv: str, timeout: float = 60) -> str:
    proc = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_generated_batch_is_a_valid_file_of_the_requested_size():
    data = common.make_batch(300, min_bytes=40_000)
    assert len(data) >= 40_000
    f = parse_batch(io.BytesIO(data))
    assert f.accepted and f.violations == [] and f.row_count == 300
    assert f.rows[-1][0] == common.tnt_id(299)
    assert f.rows[2][2] == "São Paulo" and f.rows[0][5] == "user0@example.com"


def test_single_script_measures_both_servers_and_the_journal_phases():
    out = _run("bench/single.py", "--quick", "--python-client")
    for line in ("single update: throughput vs bare route", "fetch: throughput vs bare route",
                 "phase 2: after", "p99 change, last phase vs first"):
        assert line in out


def test_python_load_generator_counts_requests_and_failures():
    with common.bare_server(threads=2) as srv:
        ok = common.python_load(srv.url + "/m2/demo/profile/update", connections=2, duration=5, max_requests=40)
        missing = common.python_load(srv.url + "/nowhere", connections=1, duration=5, max_requests=5)
        assert srv.rss() > 0 and srv.peak_rss() >= srv.rss()
    assert ok.requests == 40 and ok.errors == 0 and ok.rps > 0 and 0 < ok.p50_ms <= ok.p99_ms
    assert missing.requests == 5 and missing.errors == 5


def test_wrk_output_is_read():
    if not common.have_wrk():
        pytest.skip("wrk is not installed")
    with common.bare_server(threads=2) as srv:
        r = common.wrk(srv.url + "/m2/demo/profile/update", connections=2, duration=1)
    assert r.requests > 0 and r.errors == 0 and r.p99_ms >= r.p50_ms > 0


def test_harness_runs_the_bulk_script_and_summarises_its_figures():
    out = _run("bench/run.py", "--quick", "--only", "bulk", timeout=90)
    assert "-- bulk.py" in out and "server peak RSS over the run" in out
    summary = out.split("== Summary", 1)[1]
    assert "bulk.py: ok" in summary and "bulk end to end, rate vs csv.reader" in summary


def test_strategies_script_prints_every_rate():
    out = _run("bench/strategies.py", "--quick")
    for line in ("baseline st.integers(), drawn", "valid single updates, drawn", "batch files of 1,000 rows, drawn"):
        assert line in out


def test_plugin_overhead_script_prints_figures_2_and_4():
    out = _run("bench/plugin_overhead.py", "--quick", timeout=120)
    for line in ("per call (requests.post): fixture / stub", "per test: target_profiles / responses stub",
                 "per test: target_profiles fixture and reset over a bare test"):
        assert line in out


def test_connections_script_times_both_configurations():
    out = _run("bench/connections.py", "--quick")
    for line in ("6. health, waitress defaults", "6. single update, waitress defaults",
                 "6. health, target-profile-mock defaults", "6. single update, target-profile-mock defaults"):
        assert line in out
    assert "got no answer" not in out  # a dozen connections shut nobody out


def test_runners_script_prints_figures_7_to_9():
    out = _run("bench/runners.py", "--quick", timeout=120)
    for line in ("7. mock_target block vs a responses block", "8. aiohttp in process vs over loopback to waitress",
                 "9. HTTPS through the front vs plain HTTP to waitress"):
        assert line in out


def test_memory_script_runs_every_attack_and_compares_two_trees():
    out = _run("bench/run.py", "--quick", "--only", "memory", "--", "--compare", str(ROOT), timeout=180)
    for label in ("100 polls of a 100,000-row batch without ids", "1,000 requests with a 200 KB header",
                  "journal read with 2,000 large entries", "eight ~49 MB batches",
                  "50,000 fetches with distinct client codes"):
        assert f"{label}: peak RSS" in out
    assert out.split("== Summary")[0].count("(compared: ") == 5 and "tenants held after: 0" in out
    summary = out.split("== Summary", 1)[1]
    assert "memory.py: ok" in summary and "eight ~49 MB batches: peak RSS" in summary


def test_delivery_script_measures_the_visit_against_the_bare_route():
    out = _run("bench/delivery.py", "--quick", "--python-client", timeout=120)
    for line in ("visit: throughput vs bare route", "visit with 101 profiles in the tenant"):
        assert line in out


def test_side_by_side_runs_both_trees_alternately_and_prints_the_ratios():
    out = _run("bench/side_by_side.py", "--base", str(ROOT), "--only", "strategies", "--rounds", "2", "--quick",
               timeout=120)
    assert f"base: {ROOT} (target_profile_mock from {ROOT / 'target_profile_mock'}" in out
    runs = [line.split(": ", 1)[1].split(",")[0] for line in out.splitlines() if line.startswith("round ")]
    assert runs == ["strategies.py from base", "strategies.py from this tree"] * 2
    table = out.split("== Side by side", 1)[1]
    row = next(line for line in table.splitlines() if line.startswith("strategies: valid single updates, drawn"))
    old, new, ratio, spread = re.findall(r"([\d,.]+ examples/s|[\d.]+–[\d.]+|[\d.]+)(?=\s|$)", row)[-4:]
    assert float(ratio) == pytest.approx(_number(new) / _number(old), rel=0.01)
    assert "–" in spread


def test_side_by_side_refuses_a_base_that_does_not_import_from_itself(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "strategies.py").write_text("")
    proc = subprocess.run([sys.executable, "bench/side_by_side.py", "--base", str(tmp_path), "--only", "strategies",
                           "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    # the installed copy, or none when nothing is installed: either way not the tree asked for
    assert (f"target_profile_mock is imported from outside {tmp_path}" in proc.stderr
            or f"cannot import target_profile_mock from {tmp_path}" in proc.stderr), proc.stderr


def _number(text: str) -> float:
    return float(text.split()[0].replace(",", ""))


def test_redis_store_script_prints_figure_11():
    from redis_server import redis_server_path

    if redis_server_path() is None:  # (tests/test_redis_serving.py fails CI without it)
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    out = _run("bench/redis_store.py", "--quick", "--python-client", timeout=180)
    for line in ("single update: throughput, 2 workers on Redis vs memory", "CPU over the Redis runs: redis-server",
                 "bulk end to end: Redis time vs memory", "peak RSS of each Redis worker",
                 "one PING through redis-py", "single update: what Redis adds",
                 "an empty store transaction", "CPU over the Redis runs: idle",
                 "single update: throughput, 2 workers vs 1 on Redis", "store.refresh() with nothing changed"):
        assert line in out
