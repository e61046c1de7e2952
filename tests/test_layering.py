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
