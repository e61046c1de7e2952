"""Run benchmark scripts from another source tree and from this one, alternately, and print their figures
side by side with the ratio new/old, so "within noise of before" is one command.

Each round runs every chosen script first from the base tree, then from this tree (A B A B ...), each in
its own process with ``PYTHONPATH`` set to its tree, so ``target_profile_mock`` is imported from that tree
whatever is installed (checked before the first run). Both use this interpreter unless ``--base-python``
names another (e.g. the base checkout's own ``.venv/bin/python``). A figure's value is the median of its
rounds; the ratio is new / old, and with several rounds the spread of the per-round ratios shows the noise.

Usage: ``.venv/bin/python bench/side_by_side.py --base DIR [--only single,plugin_overhead,bulk]
[--rounds N] [--quick] [-- ARGS for every script]``, where DIR is a checkout of another commit
(``git worktree add /tmp/before <commit>``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, QUICK_ENV, ROOT, SUMMARY_ENV, machine, median, split_at_dashes

DEFAULT_SCRIPTS = ("single", "plugin_overhead", "bulk")
#: A number with its unit, e.g. ``1,015 req/s``, ``0.98x``, ``3.37 ms``, ``185 MiB``; the words before it
#: (``p99`` in ``811 req/s  p99 31.1 ms``) name the second and later quantities of a value.
_QUANTITY = re.compile(r"(?P<pre>[A-Za-z][\w ]*?)?\s*(?<![\w.])(?P<num>[-+]?\d[\d,]*(?:\.\d+)?)\s*"
                       r"(?P<unit>[^\s\d(),=]*)")
_PARENS = re.compile(r"\([^()]*\)")
#: A figure a script prints without ``common.report``: ``label:  1,027 examples/s (target >= 1,000)``
_PRINTED = re.compile(r"^\s*(?P<label>[^:\d][^:]*?):\s+(?P<value>[-+]?\d.*)$")
_IMPORT_CHECK = ("import json, target_profile_mock as t, target_profile_mock.contracts as c, "
                 "target_profile_mock.mockserver as m, target_profile_mock.plugin as p; "
                 "print(json.dumps([x.__file__ for x in (t, c, m, p)]))")


@dataclass
class Tree:
    name: str
    root: Path
    python: str
    #: (script, figure key) -> every round's quantities [(name, number, unit), ...]
    values: dict[tuple[str, str], list[list[tuple[str, float, str]]]] = field(default_factory=dict)
    labels: dict[tuple[str, str], str] = field(default_factory=dict)


class Refused(Exception):
    """What to fix before the comparison can run."""


def _env(tree: Tree, pycache: Path, extra: dict[str, str]) -> dict[str, str]:
    # compiled files go to a scratch folder: nothing is written into either tree, and both pay the same
    return dict(os.environ, PYTHONPATH=str(tree.root), PYTHONPYCACHEPREFIX=str(pycache), **extra)


def check_imports(tree: Tree, pycache: Path) -> list[str]:
    """Where ``target_profile_mock`` and its three layers come from when run for ``tree``; refused unless
    every one is inside the tree."""
    proc = subprocess.run([tree.python, "-c", _IMPORT_CHECK], cwd=tree.root, env=_env(tree, pycache, {}),
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise Refused(f"{tree.name}: {tree.python} cannot import target_profile_mock from {tree.root}:\n"
                      f"{proc.stderr.strip()[-2000:]}")
    files = json.loads(proc.stdout.strip().splitlines()[-1])
    outside = [f for f in files if not Path(f).resolve().is_relative_to(tree.root)]
    if outside:
        raise Refused(f"{tree.name}: target_profile_mock is imported from outside {tree.root}: "
                      f"{', '.join(outside)}; is {tree.root} a checkout of this project (with "
                      "target_profile_mock/, contracts/, mockserver/ and plugin/)?")
    return files


def quantities(value: str) -> list[tuple[str, float, str]]:
    """The numbers in a figure's value, each with the words before it and its unit (asides in brackets left out)."""
    out = []
    for m in _QUANTITY.finditer(_PARENS.sub("", value)):
        out.append(((m["pre"] or "").strip(), float(m["num"].replace(",", "")), m["unit"]))
    return out


def _key(script: str, label: str, seen: dict[str, int]) -> tuple[str, str]:
    # numbers in a label may differ between runs ("phase 2: after 3,524 requests"): a figure is known by
    # its label with the numbers taken out, and by how many such labels came before it in the run
    shape = re.sub(r"\d[\d,.]*", "#", label)
    seen[shape] = seen.get(shape, 0) + 1
    return script, f"{shape} [{seen[shape]}]"


def run_once(tree: Tree, script: str, args: list[str], quick: bool, pycache: Path) -> float:
    """Run one script from ``tree``, keep its figures; the seconds it took."""
    path = tree.root / "bench" / f"{script}.py"
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.jsonl"
        summary.touch()
        accepts_quick = "--quick" in path.read_text(encoding="utf-8")
        argv = [tree.python, str(path), *(["--quick"] if quick and accepts_quick else []), *args]
        env = _env(tree, pycache, {SUMMARY_ENV: str(summary), **({QUICK_ENV: "1"} if quick else {})})
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=tree.root, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise Refused(f"{tree.name}: {script}.py failed (exit {proc.returncode}):\n"
                          f"{(proc.stdout + proc.stderr)[-3000:]}")
        figures = [(item["figure"], item["value"]) for item in map(json.loads, summary.read_text().splitlines())]
    if not figures:  # a script that prints its figures itself
        figures = [(m["label"].strip(), m["value"]) for m in map(_PRINTED.match, proc.stdout.splitlines()) if m]
    seen: dict[str, int] = {}
    for label, value in figures:
        found = quantities(value)
        if found:
            key = _key(script, label, seen)
            tree.values.setdefault(key, []).append(found)
            tree.labels[key] = label
    return seconds


def _fmt(x: float, unit: str) -> str:
    text = f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}" if abs(x) >= 1 else f"{x:.3g}"
    return f"{text}{unit}" if unit in ("x", "×") else f"{text} {unit}".rstrip()


def rows(old: Tree, new: Tree) -> list[tuple[str, str, str, str, str]]:
    """``(figure, old median, new median, new/old, per-round ratio range)`` for every figure of either tree."""
    out = []
    keys = list(new.values) + [k for k in old.values if k not in new.values]
    for key in keys:
        label = new.labels.get(key) or old.labels[key]
        a, b = old.values.get(key, []), new.values.get(key, [])
        width = max((len(r) for r in a + b), default=0)
        for i in range(width):
            olds = [r[i] for r in a if len(r) > i]
            news = [r[i] for r in b if len(r) > i]
            sample = (news or olds)[0]
            name = label if i == 0 else f"{label} [{sample[0] or sample[2]}]"
            o = median([q[1] for q in olds]) if olds else None
            n = median([q[1] for q in news]) if news else None
            ratio = f"{n / o:.2f}" if o and n is not None else "—"
            pairs = [q2[1] / q1[1] for q1, q2 in zip(olds, news, strict=False) if q1[1]]
            spread = f"{min(pairs):.2f}–{max(pairs):.2f}" if len(pairs) > 1 else ""
            out.append((f"{key[0]}: {name}", _fmt(o, sample[2]) if o is not None else "—",
                        _fmt(n, sample[2]) if n is not None else "—", ratio, spread))
    return out


def main(argv: list[str] | None = None) -> int:
    argv, extra = split_at_dashes(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, required=True, metavar="DIR", help="the other source tree (a checkout)")
    p.add_argument("--base-python", default=PYTHON, metavar="PATH",
                   help="the interpreter for the base tree (default: this one, so only the trees differ)")
    p.add_argument("--only", default=",".join(DEFAULT_SCRIPTS),
                   help=f"comma-separated bench scripts (default: {','.join(DEFAULT_SCRIPTS)})")
    p.add_argument("--rounds", type=int, default=3, help="rounds of base then this tree (default 3)")
    p.add_argument("--quick", action="store_true", help="tiny inputs: checks the comparison runs; measures nothing")
    args = p.parse_args(argv)
    scripts = [s.strip().removesuffix(".py") for s in args.only.split(",") if s.strip()]
    if args.rounds < 1:
        p.error(f"--rounds {args.rounds}: at least 1")
    base = args.base.resolve()
    old, new = Tree("base", base, args.base_python), Tree("this tree", ROOT, PYTHON)
    missing = [f"{t.name}: bench/{s}.py" for s in scripts for t in (old, new)
               if not (t.root / "bench" / f"{s}.py").is_file()]
    if missing:
        p.error(f"no such script in {', '.join(missing)}")
    print(f"Machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        pycache = Path(tmp) / "pycache"
        try:
            for tree in (old, new):
                files = check_imports(tree, pycache)
                print(f"{tree.name}: {tree.root} (target_profile_mock from {Path(files[0]).parent}, "
                      f"layers from {Path(files[1]).parent.parent})")
            for r in range(1, args.rounds + 1):
                for script in scripts:
                    for tree in (old, new):
                        seconds = run_once(tree, script, extra, args.quick, pycache)
                        print(f"round {r}/{args.rounds}: {script}.py from {tree.name}, {seconds:.1f} s", flush=True)
        except Refused as exc:
            print(f"side_by_side: {exc}", file=sys.stderr)
            return 1
    table = rows(old, new)
    head = ("figure", "base", "this tree", "new/old", "ratio range" if args.rounds > 1 else "")
    widths = [max(len(r[i]) for r in [head, *table]) for i in range(5)]
    print("\n== Side by side" + (" (quick run: the figures mean nothing)" if args.quick else "")
          + f", median of {args.rounds} round(s)")
    for row in [head, *table]:
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
