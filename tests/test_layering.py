"""Layering: contracts imports neither Flask nor pytest nor the packages built on it; mockserver
imports neither the plugin nor pytest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import importlib, json, sys
def _name(m):
    # this package's layers by their own names (contracts, mockserver, plugin), others by their top level
    parts = m.split(".")
    return parts[1] if parts[0] == "target_profile_mock" and len(parts) > 1 else parts[0]
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({_name(m) for m in sys.modules})))
"""


def _top_level_imports(*modules: str) -> set[str]:
    # a fresh interpreter: this one already has pytest, flask and the plugin loaded
    proc = subprocess.run([sys.executable, "-c", _PROBE, *modules], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout))


def _submodules(pkg: str) -> list[str]:
    out = []
    for path in sorted((ROOT / pkg).rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if "__main__" not in parts:
            out.append(".".join(("target_profile_mock", *parts)))
    return out


def test_contracts_imports_no_web_framework_test_tool_or_upper_layer() -> None:
    loaded = _top_level_imports(*_submodules("contracts"))
    assert "contracts" in loaded
    forbidden = {"flask", "werkzeug", "pytest", "_pytest", "mockserver", "plugin", "waitress", "requests"}
    assert loaded & forbidden == set()


@pytest.mark.parametrize("module", ["target_profile_mock", "target_profile_mock.contracts",
                                    "target_profile_mock.contracts.single", "target_profile_mock.contracts.rules"])
def test_plain_import_of_contracts_is_light(module: str) -> None:
    loaded = _top_level_imports(module)
    assert loaded & {"flask", "werkzeug", "pytest", "_pytest", "mockserver", "plugin", "hypothesis"} == set()


def test_mockserver_imports_neither_the_plugin_nor_pytest() -> None:
    loaded = _top_level_imports(*_submodules("mockserver"))
    assert "mockserver" in loaded and "flask" in loaded
    assert loaded & {"plugin", "pytest", "_pytest"} == set()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "target_profile_mock" and len(parts) > 1 and parts[1] else parts[0]


def test_no_source_file_imports_upward() -> None:
    # the static view, which also catches imports inside functions that the probe does not run
    import ast

    rules = {"contracts": {"flask", "werkzeug", "pytest", "_pytest", "mockserver", "plugin", "waitress"},
             "mockserver": {"plugin", "pytest", "_pytest"}}
    found = []
    for pkg, forbidden in rules.items():
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif isinstance(node, ast.ImportFrom) and node.level > len(path.relative_to(ROOT).parts) - 1:
                    names = [f"target_profile_mock.{node.module or ''}"]  # relative, out of the package
                found += [f"{path.relative_to(ROOT)}: {n}" for n in names if _layer(n) in forbidden]
    assert found == []


# --- inside mockserver: the model never reaches the HTTP layer, and nothing imports in a circle ----
#: The model: the state and its rules (and the surface table it takes operation names from), usable with no
#: web framework installed.
_MODEL = ("backend", "clock", "config", "errors", "lifecycle", "snapshot", "models", "surfaces", "store")
#: What the model may not import: the web framework and the modules built on it.
_HTTP = ("flask", "target_profile_mock.mockserver.app", "target_profile_mock.mockserver.views",
         "target_profile_mock.mockserver.faults", "target_profile_mock.mockserver.server",
         "target_profile_mock.mockserver.cli")


def _mockserver_imports() -> dict[str, set[str]]:
    """Every import in mockserver's sources (inside functions too, not under TYPE_CHECKING), by module."""
    import ast

    base = ROOT / "mockserver"
    graph: dict[str, set[str]] = {}
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        is_pkg = rel.name == "__init__"
        parts = ("target_profile_mock", *(rel.parts[:-1] if is_pkg else rel.parts))
        module = ".".join(parts)
        package = parts if is_pkg else parts[:-1]
        tree = ast.parse(path.read_text(), str(path))
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(
            node.test) for b in node.body for n in ast.walk(b)}
        names: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = ".".join(package[:len(package) - node.level + 1])
                    target = f"{anchor}.{node.module}" if node.module else anchor
                else:
                    target = node.module or ""
                if node.module or not node.level:
                    names.add(target)
                # a submodule imported by name; "from . import x" loads only x (its package is loaded already)
                names |= {f"{target}.{a.name}" for a in node.names}
        graph[module] = names
    return graph


def test_the_model_imports_no_http_layer() -> None:
    graph = _mockserver_imports()
    model = [m for m in graph if m.count(".") >= 2 and m.split(".")[2] in _MODEL]
    assert "target_profile_mock.mockserver.backend" in model and "target_profile_mock.mockserver.models.tenant" in model
    found = sorted(f"{m} imports {n}" for m in model for n in graph[m]
                   if any(n == h or n.startswith(h + ".") for h in _HTTP))
    assert found == []


def test_no_import_cycle_inside_mockserver() -> None:
    graph = _mockserver_imports()
    edges = {m: {n for n in names if n in graph and n != m} for m, names in graph.items()}
    # a module imports its package's __init__ first, but only the package importing it back closes a loop
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycles.append([*trail[trail.index(n):], n])
            elif n not in state:
                visit(n, [*trail, n])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert cycles == []


_NO_FLASK = """
import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name == "flask" or name.startswith("flask."):
            raise ImportError(f"{name} is blocked")

sys.meta_path.insert(0, Blocked())
from target_profile_mock.mockserver import MockBackend
from target_profile_mock.contracts.batch import parse_batch

be = MockBackend()
be.clock.freeze(1_700_000_000)
be.seed_profile("acme", third_party_id="c1", attributes={"tier": "silver"})
be.configure(lifecycle="polls=1")
be.single_update("acme", "thirdPartyId", "c1", None, {"tier": "gold"})
file = parse_batch(b"batch=thirdPartyId,city\\nc1,Bern\\n")
batch = be.submit_batch("acme", 2, file, be.new_batch_id("acme"), "http://status")
be.faults.add(503, operation="fetch", times=1)
assert be.faults.take("fetch", "acme").fault.status == 503
be.poll_batch("acme", batch.batch_id)
be.poll_batch("acme", batch.batch_id)
other = MockBackend()
other.restore(be.snapshot())
assert other.get_profile("acme", "thirdPartyId", "c1")["attributes"] == {"tier": "gold", "city": "Bern"}
assert not [m for m in sys.modules if m == "flask" or m.startswith("flask.")]
print("ok")
"""


def test_the_model_works_with_flask_absent() -> None:
    proc = subprocess.run([sys.executable, "-c", _NO_FLASK], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
