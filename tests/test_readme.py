"""Every example in README.md runs here, so the docs cannot drift from the code.

A code block is run according to the HTML comment on the line before it:

* ``<!-- test: pytest -->`` before a python block: the block is a test module, run with pytester;
  it must pass (``<!-- test: pytest fails=N -->``: exactly N of its tests must fail, for examples
  that show a failure message).
* ``<!-- test: run -->`` before a python block: executed as a script; ``http://127.0.0.1:8080`` in
  it is replaced by a live standalone server's URL.
* ``<!-- test: sh -->`` before a sh block: run with bash against a live standalone server,
  ``http://127.0.0.1:8080`` replaced likewise.
* ``<!-- test: skip (reason) -->``: not run; the reason says why (e.g. the set-up commands, which
  CI itself runs).

A block without a marker fails this suite, so no example can be added untested.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.server import LiveServer

README = Path(__file__).resolve().parent.parent / "README.md"
DEFAULT_URL = "http://127.0.0.1:8080"
_BLOCK = re.compile(r"(?:<!--\s*test:\s*(?P<marker>[^>]*?)\s*-->\s*\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)


@dataclass
class Block:
    line: int
    lang: str
    marker: str | None
    code: str

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    out = []
    for m in _BLOCK.finditer(text):
        line = text.count("\n", 0, m.start("code"))
        out.append(Block(line, m.group("lang"), m.group("marker"), m.group("code")))
    return out


def _kind(block: Block) -> str:
    return (block.marker or "").split()[0] if block.marker else ""


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    # the standalone server's defaults, but batches complete fast so examples need not wait long
    backend = MockBackend(MockConfig(lifecycle=Lifecycle(mode="seconds", seconds=0.2)))
    with LiveServer(create_app(backend)) as server:
        yield server.url


def test_every_block_has_a_marker() -> None:
    unmarked = [b.id for b in blocks() if _kind(b) not in ("pytest", "run", "sh", "skip")]
    assert not unmarked, f"README code blocks without a <!-- test: ... --> marker: {unmarked}"


@pytest.mark.parametrize("block", [b for b in blocks() if _kind(b) == "pytest"], ids=lambda b: b.id)
def test_pytest_example(block: Block, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(README.parent))  # the source tree, not an older installed copy
    fails = 0
    m = re.search(r"fails=(\d+)", block.marker or "")
    if m:
        fails = int(m.group(1))
    pytester.makepyfile(test_readme_example=block.code)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == fails, result.stdout.str()
    assert outcomes.get("passed", 0) + fails > 0, result.stdout.str()


@pytest.mark.parametrize("block", [b for b in blocks() if _kind(b) == "run"], ids=lambda b: b.id)
def test_run_example(block: Block, live_url: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block.code.replace(DEFAULT_URL, live_url), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(README.parent)})
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("block", [b for b in blocks() if _kind(b) == "sh"], ids=lambda b: b.id)
def test_shell_example(block: Block, live_url: str, tmp_path: Path) -> None:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code.replace(DEFAULT_URL, live_url)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
