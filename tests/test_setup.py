"""Set-up: the lock that lets ``make serve`` and ``make test`` run at the same time on a fresh clone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCKED = ROOT / "tools" / "locked.py"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks")

# a recipe: log its start, create a virtual environment (what the first make target does), log its end
RECIPE = """
import subprocess, sys, time
log, name, venv = sys.argv[1:4]
with open(log, "a") as f:
    f.write(f"start {name}\\n")
subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
time.sleep(0.3)
with open(log, "a") as f:
    f.write(f"end {name}\\n")
"""


def _locked(tmp: Path, target: str, name: str, *prerequisites: Path, recipe: str = RECIPE) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(LOCKED), str(tmp / "venv" / ".lock"), str(tmp / target), *map(str, prerequisites),
           "--", sys.executable, "-c", recipe, str(tmp / "log"), name, str(tmp / "venv")]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)


def _log(tmp: Path) -> list[str]:
    path = tmp / "log"
    return path.read_text().splitlines() if path.exists() else []


def _wait_for(tmp: Path, line: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while line not in _log(tmp):
        assert proc.poll() is None or line in _log(tmp), proc.communicate()
        assert time.monotonic() < deadline, f"no {line!r} in {_log(tmp)}"
        time.sleep(0.01)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@pytest.mark.slow
def test_the_second_make_waits_and_finds_the_venv_made(tmp_path: Path) -> None:
    first = _locked(tmp_path, "venv/.created", "first")
    _wait_for(tmp_path, "start first", first)  # the first holds the lock now
    second = _locked(tmp_path, "venv/.created", "second")
    rc1, out1, _ = _finish(first)
    rc2, out2, err2 = _finish(second)
    assert (rc1, rc2) == (0, 0)
    assert _log(tmp_path) == ["start first", "end first"]  # made once, never twice at once
    assert "waiting for another make to finish with" in err2
    assert sys.executable in out1 and out2 == ""  # the command is echoed only by the make that ran it
    assert (tmp_path / "venv" / ".created").exists() and (tmp_path / "venv" / "pyvenv.cfg").exists()


@pytest.mark.slow
def test_different_targets_take_turns(tmp_path: Path) -> None:
    first = _locked(tmp_path, "venv/.installed", "install")
    _wait_for(tmp_path, "start install", first)
    second = _locked(tmp_path, "venv/.installed-test", "install-test")
    assert _finish(first)[0] == 0 and _finish(second)[0] == 0
    assert _log(tmp_path) == ["start install", "end install", "start install-test", "end install-test"]


def test_a_target_older_than_a_prerequisite_is_made_again(tmp_path: Path) -> None:
    prerequisite = tmp_path / "pyproject.toml"
    prerequisite.write_text("")
    target = tmp_path / "venv" / ".installed"
    target.parent.mkdir()
    target.write_text("")
    os.utime(target, (time.time() - 100, time.time() - 100))
    recipe = "import sys; open(sys.argv[1], 'a').write('ran\\n')"
    assert _finish(_locked(tmp_path, "venv/.installed", "x", prerequisite, recipe=recipe))[0] == 0
    assert _log(tmp_path) == ["ran"] and target.stat().st_mtime >= prerequisite.stat().st_mtime
    # now up to date: nothing runs
    assert _finish(_locked(tmp_path, "venv/.installed", "x", prerequisite, recipe=recipe))[0] == 0
    assert _log(tmp_path) == ["ran"]


def test_a_failed_recipe_passes_its_status_on_and_leaves_the_target_unmade(tmp_path: Path) -> None:
    code, _, _ = _finish(_locked(tmp_path, "venv/.installed", "x", recipe="raise SystemExit(3)"))
    assert code == 3 and not (tmp_path / "venv" / ".installed").exists()


def test_usage_without_a_command() -> None:
    proc = subprocess.run([sys.executable, str(LOCKED), "lock", "target"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stderr.startswith("usage: python tools/locked.py")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_every_makefile_recipe_that_changes_the_venv_holds_the_lock(tmp_path: Path) -> None:
    # what make would run, from scratch, for both README commands (-n: print, run nothing)
    venv = tmp_path / "venv"
    proc = subprocess.run(["make", "-n", "-B", f"VENV={venv}", "serve", "test"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    writes = [line for line in lines if "pip install" in line or " -m venv " in line]
    assert len(writes) == 3, lines  # the venv, the package, the test extra
    for line in writes:
        assert line.split()[1:3] == ["tools/locked.py", f"{venv}/.lock"], line
    # the test extra's requirements are installed without the package itself ("." or ".[test]")
    assert not any(word in (".", '".[test]"', "'.[test]'") for word in writes[-1].split()), writes[-1]
    assert "'pytest-xdist>=3.5'" in writes[-1]
