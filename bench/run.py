"""Run every benchmark script in one go and print a summary of their figures (``make bench``).

Each script runs in its own process and prints its own figures; figures a script records through
``common.report`` are collected into the summary, and for any other script the summary keeps the lines
of its output that name a target. ``--quick`` runs everything on tiny inputs (a smoke run, not figures).

Usage: ``.venv/bin/python bench/run.py [--quick] [--only NAME[,NAME...]] [-- ARGS for every script]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, PYTHON, QUICK_ENV, ROOT, SUMMARY_ENV, ensure_wrk, machine, split_at_dashes

#: In the order they run; a script that does not exist (yet) is skipped with a note.
SCRIPTS = ("single.py", "plugin_overhead.py", "bulk.py", "strategies.py", "connections.py", "runners.py",
           "memory.py", "delivery.py", "redis_store.py")


def _accepts_quick(path: Path) -> bool:
    return "--quick" in path.read_text(encoding="utf-8")


def run_script(path: Path, quick: bool, extra: list[str], summary: Path) -> tuple[int, float, list[str]]:
    """Run one script, streaming its output; (exit code, seconds, its lines that mention a target)."""
    argv = [PYTHON, str(path), *(["--quick"] if quick and _accepts_quick(path) else []), *extra]
    env = dict(os.environ, **{SUMMARY_ENV: str(summary)},
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if quick:
        env[QUICK_ENV] = "1"
    t = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    mentions: list[str] = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        low = line.lower()
        if "target" in low or "missed" in low or "≥" in line or "≤" in line:
            mentions.append(line.rstrip())
    return proc.wait(), time.perf_counter() - t, mentions


def main(argv: list[str] | None = None) -> int:
    argv, extra = split_at_dashes(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description="Run the benchmarks in bench/ and summarise them.")
    p.add_argument("--quick", action="store_true", help="tiny inputs: checks the scripts run, measures nothing")
    p.add_argument("--only", default="", help="comma-separated script names (e.g. bulk,single)")
    args = p.parse_args(argv)
    wanted = {n.strip().removesuffix(".py") for n in args.only.split(",") if n.strip()}
    scripts = [s for s in SCRIPTS if not wanted or s.removesuffix(".py") in wanted]
    print(f"Machine: {machine()}")
    if not args.quick and not ensure_wrk():
        print("note: wrk is not installed and could not be installed; the HTTP figures use a Python client")
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.jsonl"
        summary.touch()
        results: list[tuple[str, int, float, list[str]]] = []
        for name in scripts:
            path = BENCH / name
            if not path.exists():
                print(f"\n-- {name}: not present, skipped")
                continue
            print(f"\n-- {name}", flush=True)
            code, seconds, mentions = run_script(path, args.quick, extra, summary)
            results.append((name, code, seconds, mentions))
            failed += code != 0
        recorded: dict[str, list[dict[str, object]]] = {}
        for line in summary.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            recorded.setdefault(str(item["script"]), []).append(item)
    print("\n== Summary" + (" (quick run: the figures mean nothing)" if args.quick else ""))
    missed = 0
    for name, code, seconds, mentions in results:
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"{name}: {status}, {seconds:.1f} s")
        items = recorded.get(name)
        if items:
            for item in items:
                if item["target"]:
                    verdict = "met" if item["met"] else "MISSED"
                    missed += not item["met"]
                    print(f"  {item['figure']}: {item['value']} (target {item['target']}: {verdict})")
        else:
            for line in mentions:
                print(f"  {line.strip()}")
    if not args.quick:
        print(f"\n{missed} target(s) missed" if missed else "\nevery recorded target met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
