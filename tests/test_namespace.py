"""One import package: imports in any order, a user project with its own ``plugin``/``contracts``/``mockserver``,
and ``import hypothesis`` surviving a shadowing or broken ``target_profile_mock``."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "target_profile_mock"
LAYERS = ("contracts", "mockserver", "plugin")
WARNING = "target-profile-mock did not register its Hypothesis strategies"


def _python(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
            python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter (this one has long imported Hypothesis and the package)."""
    return subprocess.run([python, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=env if env is not None else _checkout_env(), stdin=subprocess.DEVNULL)


def _checkout_env() -> dict[str, str]:
    # the working tree's code, as the rest of the suite runs it
    return {**os.environ, "PYTHONPATH": str(ROOT)}


# --- imports in any order, in a fresh interpreter ----------------------------------------------------
@pytest.mark.parametrize("code", [
    "import target_profile_mock.contracts.strategies",
    "import target_profile_mock.contracts.strategies.valid",
    "import target_profile_mock.contracts.stateful",
    "from target_profile_mock.contracts.strategies import single_updates; import hypothesis",
    "import target_profile_mock; import hypothesis; from target_profile_mock import strategies",
])
def test_strategies_import_first_without_a_cycle(code: str) -> None:
    proc = _python("-c", code + "\nimport hypothesis.strategies as st\nassert st.from_type")
    assert proc.returncode == 0, proc.stderr
    assert WARNING not in proc.stderr


def test_short_names_from_the_top_of_the_package() -> None:
    code = textwrap.dedent("""
        from target_profile_mock import MockBackend, create_app, strategies
        import target_profile_mock.contracts.strategies as full
        assert strategies is full
        client = create_app(MockBackend()).test_client()
        assert client.get("/_mock/health").get_json()["status"] == "ok"
        print("ok")
    """)
    proc = _python("-c", code)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


STRATEGIES_FIRST = '''
from target_profile_mock.contracts.strategies import single_updates, third_party_ids
from target_profile_mock import MockBackend, create_app
from hypothesis import given, settings

app = create_app(MockBackend())


@settings(max_examples=25, deadline=None)
@given(third_party_ids())
def test_ids_keep_the_documented_rule(tid):
    assert 1 <= len(tid) <= 256 and "+" not in tid and "/" not in tid


@settings(max_examples=25, deadline=None)
@given(single_updates())
def test_the_fake_accepts_every_valid_single_update(call):
    r = call.request
    answer = app.test_client().open(r.path, method=r.method, query_string=r.query, data=r.body,
                                    headers=dict(r.headers))
    assert answer.status_code == 200 and b"<success>true</success>" in answer.data
'''


def test_a_test_module_importing_the_strategies_before_hypothesis(pytester: pytest.Pytester,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_strategies_first=STRATEGIES_FIRST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)
    # and as a plain script, where nothing has imported Hypothesis before the strategies do
    script = pytester.path / "test_strategies_first.py"
    script.write_text(STRATEGIES_FIRST + "\ntest_ids_keep_the_documented_rule()"
                                         "\ntest_the_fake_accepts_every_valid_single_update()\n")
    proc = _python(str(script), cwd=pytester.path)
    assert proc.returncode == 0, proc.stderr


# --- a user project, with the package installed from a wheel into a fresh venv -----------------------
@dataclass
class Venv:
    python: str
    bin: Path
    site: Path
    env: dict[str, str]


def _deps_view(tmp: Path) -> Path:
    """This environment's installed packages, minus this package: its dependencies, offline."""
    view = tmp / "deps"
    view.mkdir()
    dirs = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    for d in map(Path, dirs):
        if not d.is_dir():
            continue
        for entry in d.iterdir():
            name = entry.name
            if (name.startswith((NAMESPACE, "__editable__", "target_profile_mock-")) or name.endswith(".pth")
                    or name in LAYERS or name == "__pycache__" or (view / name).exists()):
                continue
            (view / name).symlink_to(entry)
    return view


def _wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    for pkg in (*LAYERS, NAMESPACE):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp / "dist"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("target_profile_mock-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    if sys.platform == "win32":
        pytest.skip("symlinks and POSIX venv layout")
    from test_packaging import _can_build_wheels

    if reason := _can_build_wheels():
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("user-venv")
    wheel = _wheel(tmp)
    root = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = str(root / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST", "VIRTUAL_ENV"))}
    purelib = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True, env=env).stdout.strip())
    (purelib / "_deps.pth").write_text(f"{_deps_view(tmp)}\n")
    proc = subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield Venv(python, root / "bin", purelib, env)


USER_TEST = '''
import sys
from pathlib import Path

import contracts
import mockserver
import plugin
import requests
import target_profile_mock
from hypothesis import given, settings
from target_profile_mock import strategies


def test_the_projects_own_modules_and_the_installed_package():
    assert (contracts.OWNER, mockserver.OWNER, plugin.OWNER) == ("contracts.py", "mockserver.py", "plugin/")
    assert Path(target_profile_mock.__file__).is_relative_to(sys.prefix), target_profile_mock.__file__


def test_in_process_fixture(target_profiles):
    target_profiles.seed_profile("cust-1", attributes={"tier": "silver"})
    r = requests.post("https://demo.tt.omtrdc.net/m2/demo/profile/update",
                      params={"mbox3rdPartyId": "cust-1", "profile.tier": "gold"})
    assert r.status_code == 200
    assert target_profiles.profile("cust-1")["attributes"] == {"tier": "gold"}


def test_live_server_fixture(target_profile_server):
    assert requests.get(target_profile_server.url + "/_mock/health", timeout=5).json()["status"] == "ok"


@settings(max_examples=20, deadline=None)
@given(strategies.third_party_ids())
def test_a_property_with_the_strategies(tid):
    assert "+" not in tid and "/" not in tid
'''


@pytest.fixture(scope="module")
def user_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with modules named like this repository's folders, each with content of its own."""
    project = tmp_path_factory.mktemp("user-project")
    (project / "plugin").mkdir()
    (project / "plugin" / "__init__.py").write_text('OWNER = "plugin/"\n')
    (project / "contracts.py").write_text('OWNER = "contracts.py"\n')
    (project / "mockserver.py").write_text('OWNER = "mockserver.py"\n')
    (project / "test_user.py").write_text(USER_TEST)
    return project


@pytest.mark.slow
def test_a_user_project_with_its_own_plugin_contracts_and_mockserver(venv: Venv, user_project: Path) -> None:
    proc = _python("-m", "pytest", "-p", "no:cacheprovider", "-q", cwd=user_project, env=venv.env,
                   python=venv.python)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout, proc.stdout
    assert WARNING not in proc.stdout + proc.stderr
    # the user's contracts.py is first on sys.path here, as it is for `python -c` in their project
    proc = _python("-c", "import hypothesis, contracts; print(contracts.OWNER)", cwd=user_project, env=venv.env,
                   python=venv.python)
    assert proc.returncode == 0 and proc.stdout.strip() == "contracts.py", proc.stderr
    assert WARNING not in proc.stderr


@pytest.mark.slow
def test_only_the_package_is_installed_at_the_top_level(venv: Venv) -> None:
    top = {p.name for p in venv.site.iterdir()} - {"_deps.pth", "__pycache__", "_virtualenv.pth", "_virtualenv.py"}
    assert {n for n in top if not n.endswith(".dist-info")} == {NAMESPACE}
    # and the console script, into the package
    version = subprocess.run([str(venv.bin / "target-profile-mock"), "--version"], capture_output=True, text=True,
                             timeout=60, env=venv.env)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("target-profile-mock ")


@pytest.mark.slow
@pytest.mark.parametrize("shadow", ["module", "package"])
def test_a_shadowing_target_profile_mock_never_breaks_import_hypothesis(venv: Venv, tmp_path: Path,
                                                                         shadow: str) -> None:
    if shadow == "module":
        (tmp_path / f"{NAMESPACE}.py").write_text("SHADOW = True\n")
    else:
        (tmp_path / NAMESPACE).mkdir()
        (tmp_path / NAMESPACE / "__init__.py").write_text("SHADOW = True\n")
    code = "import hypothesis, target_profile_mock; assert target_profile_mock.SHADOW; print('ok')"
    proc = _python("-c", code, cwd=tmp_path, env=venv.env, python=venv.python)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.slow
def test_a_broken_install_warns_instead_of_breaking_import_hypothesis(venv: Venv, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(venv.site / NAMESPACE, broken / NAMESPACE, ignore=shutil.ignore_patterns("__pycache__"))
    (broken / NAMESPACE / "contracts" / "single.py").write_text('raise ImportError("broken on purpose")\n')
    proc = _python("-c", "import hypothesis; print('ok')", cwd=tmp_path,
                   env={**venv.env, "PYTHONPATH": str(broken)}, python=venv.python)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert WARNING in proc.stderr and "broken on purpose" in proc.stderr, proc.stderr
