"""Run a make recipe under a lock, unless another make has meanwhile brought its target up to date.

    python tools/locked.py LOCKFILE TARGET [PREREQUISITE ...] -- COMMAND [ARG ...]

Make decides a target is out of date before it runs the recipe. Two makes started together (``make serve``
and ``make test`` on a fresh clone) both decide so, and would build the same virtual environment at once.
Here the second waits for the lock, then looks again: when TARGET is by then at least as new as every
PREREQUISITE it does nothing, else it prints and runs COMMAND and touches TARGET (still holding the lock,
so the next one sees it). The lock is an ``fcntl`` lock, released by the system even if make is killed. Exits
with COMMAND's status.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: recipes run without the lock
    fcntl = None  # type: ignore[assignment]

USAGE = "usage: python tools/locked.py LOCKFILE TARGET [PREREQUISITE ...] -- COMMAND [ARG ...]"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing), saying so when another holds it first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"waiting for another make to finish with {path.parent} ...", file=sys.stderr, flush=True)
                fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # the lock goes with the file's closing


def up_to_date(target: Path, prerequisites: Sequence[Path]) -> bool:
    """What make asks, asked again: TARGET exists and no PREREQUISITE is newer."""
    try:
        built = target.stat().st_mtime_ns
    except FileNotFoundError:
        return False
    return all(p.exists() and p.stat().st_mtime_ns <= built for p in prerequisites)


def main(argv: Sequence[str]) -> int:
    if "--" not in argv or argv.index("--") < 2 or argv.index("--") == len(argv) - 1:
        print(USAGE, file=sys.stderr)
        return 2
    split = argv.index("--")
    lock, target, *prerequisites = map(Path, argv[:split])
    command = list(argv[split + 1:])
    with locked(lock):
        if up_to_date(target, prerequisites):
            return 0
        print(shlex.join(command), flush=True)  # what make would have echoed (the recipes are silent)
        try:
            status = subprocess.call(command)
        except OSError as exc:
            print(f"tools/locked.py: cannot run {command[0]}: {exc.strerror or exc}", file=sys.stderr)
            return 127
        if status == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        return status


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # Ctrl-C reaches make and its recipe too; they report it
        sys.exit(130)
