"""Packaging: a plain (non-editable) install ships the packages, their data and the console script."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("contracts", "mockserver", "plugin")  # folders of the repository, installed under NAMESPACE
NAMESPACE = "target_profile_mock"
#: what an install carries: modules, py.typed, data files, and the dashboard's templates, script and stylesheet
SUFFIXES = (".py", ".typed", ".json", ".html", ".js", ".css")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pyproject_declares_the_distribution_and_console_script() -> None:
    project = PROJECT["project"]
    assert project["name"] == "target-profile-mock"
    assert project["requires-python"] == ">=3.11"
    assert project["scripts"]["target-profile-mock"] == "target_profile_mock.mockserver.cli:main"
    assert "license" in project and isinstance(project["license"], str), "an SPDX expression, not a TOML table"
    assert {"flask", "waitress"} <= {d.split(">")[0].split("=")[0].strip().lower() for d in project["dependencies"]}


def test_console_script_target_exists() -> None:
    from target_profile_mock.mockserver.cli import main

    assert callable(main)
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0


def _shipped_sources() -> set[str]:
    """The files of the packages that an install must carry: modules, py.typed and data files."""
    out = set()
    for pkg in (*PACKAGES, NAMESPACE):
        for path in (ROOT / pkg).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in SUFFIXES:
                rel = path.relative_to(ROOT).as_posix()
                out.add(rel if pkg == NAMESPACE else f"{NAMESPACE}/{rel}")
    return out


def _can_build_wheels() -> str | None:
    """None when this interpreter can build a wheel offline, else why not."""
    try:
        version = importlib.metadata.version("setuptools")  # not imported: it patches distutils on import
    except importlib.metadata.PackageNotFoundError:
        return "setuptools is not installed in this environment"
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) < (70, 1) and importlib.util.find_spec("wheel") is None:
        return f"setuptools {version} needs the 'wheel' package for bdist_wheel (pip install wheel)"
    if importlib.util.find_spec("pip") is None:
        return "pip is not installed in this environment"
    return None


@pytest.mark.slow
def test_wheel_ships_packages_package_data_and_entry_point(tmp_path: Path) -> None:
    reason = _can_build_wheels()
    if reason:
        pytest.skip(reason)
    # build from a copy: a build in the checkout would leave build/ and *.egg-info behind
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    for pkg in (*PACKAGES, NAMESPACE):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-v",
         "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # setuptools' warnings (such as "`project.license` as a TOML table is deprecated") show only with -v
    deprecated = [line for line in (proc.stdout + proc.stderr).splitlines() if "deprecat" in line.lower()]
    assert deprecated == [], deprecated
    wheels = list(out.glob("target_profile_mock-*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    with zipfile.ZipFile(wheels[0]) as whl:
        names = set(whl.namelist())
        entry_points = next(whl.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    for pkg in PACKAGES:
        assert f"{NAMESPACE}/{pkg}/__init__.py" in names
        assert f"{NAMESPACE}/{pkg}/py.typed" in names
    missing = _shipped_sources() - names
    assert not missing, f"the wheel lacks {sorted(missing)}"
    # one import package and nothing else at the top level of site-packages
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {NAMESPACE}
    assert "target-profile-mock = target_profile_mock.mockserver.cli:main" in entry_points
    assert "target_profiles = target_profile_mock.plugin.pytest_plugin" in entry_points
    assert "target_profile_mock = target_profile_mock\n" in entry_points  # the package, callable
