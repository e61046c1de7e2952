"""Every example in README.md runs here, so the docs cannot drift from the code.

A code block is run according to the HTML comment on the line before it:

* ``<!-- test: pytest -->`` before a python block: the block is a test module, run with pytester;
  it must pass (``<!-- test: pytest fails=N -->``: exactly N of its tests must fail, for examples
  that show a failure message).
* ``<!-- test: run -->`` before a python block: executed as a script; ``http://127.0.0.1:8080`` in
  it is replaced by a live standalone server's URL.
* ``<!-- test: sh -->`` before a sh block: run with bash against a live standalone server,
  ``http://127.0.0.1:8080`` replaced likewise.
* ``<!-- test: serve -->`` before a sh block: each line starts the standalone server, and must print
  its URL and answer with the options the line gives; ``--port 8080`` becomes a free port, ``.venv``
  this environment, and ``make`` installs nothing.
* ``<!-- test: sh tls -->`` before a sh block: run with bash against ``serve --tls``'s front (HTTPS,
  plain HTTP and the proxy on one port), port ``8443`` and the CA path
  ``~/.local/share/target-profile-mock/ca.pem`` replaced by the test's, this interpreter first on PATH.
* ``<!-- test: skip (reason) -->``: not run; the reason says why (e.g. the set-up commands, which
  CI itself runs).

A block without a marker fails this suite, so no example can be added untested.
"""

from __future__ import annotations

import itertools
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
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


def _is_tls_sh(block: Block) -> bool:
    return _kind(block) == "sh" and "tls" in (block.marker or "").split()[1:]


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    # the standalone server's defaults, but batches complete fast so examples need not wait long
    backend = MockBackend(MockConfig(lifecycle=Lifecycle(mode="seconds", seconds=0.2)))
    with LiveServer(create_app(backend)) as server:
        yield server.url


def test_every_block_has_a_marker() -> None:
    unmarked = [b.id for b in blocks() if _kind(b) not in ("pytest", "run", "sh", "serve", "skip")]
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


@pytest.mark.parametrize("block", [b for b in blocks() if _kind(b) == "sh" and not _is_tls_sh(b)],
                         ids=lambda b: b.id)
def test_shell_example(block: Block, live_url: str, tmp_path: Path) -> None:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code.replace(DEFAULT_URL, live_url)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _is_redis_serve(block: Block) -> bool:
    return _kind(block) == "serve" and "redis" in (block.marker or "").split()[1:]


def _serve_lines() -> list[pytest.param]:
    return [pytest.param(line, id=f"{b.id}:{line.split()[0]}") for b in blocks()
            if _kind(b) == "serve" and not _is_redis_serve(b)
            for line in b.code.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _server_options(line: str) -> dict[str, str]:
    words = []
    for word in shlex.split(line):
        words += shlex.split(word[len("ARGS="):]) if word.startswith("ARGS=") else [word]
    return {w: v for w, v in itertools.pairwise(words) if w.startswith("--")}


def _venv_command(line: str) -> str:
    """A README command line as it runs here: this environment stands for .venv (and make reinstalls
    nothing), and ``--port 8080`` picks a free port."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "target-profile-mock").exists():
        pytest.skip(f"{venv}/bin/target-profile-mock is not installed (pip install . into this environment)")
    if "make " in line and shutil.which("make") is None:
        pytest.skip("make is not installed")
    where = shlex.quote(str(venv))
    cmd = line.replace("--port 8080", "--port 0").replace(".venv/", f"{venv}/")
    return re.sub(r"(^|& )make ", rf"\1make --no-print-directory VENV={where} -o {where}/.installed ", cmd)


@contextmanager
def _started(cmd: str) -> Iterator[str]:
    """Run ``cmd`` with bash in a session of its own until it prints the server's URL; the URL. Every
    process it started is stopped after."""
    env = {**os.environ, "PYTHONPATH": str(README.parent), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(["bash", "-c", cmd], cwd=README.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        lines = [""]
        deadline = time.monotonic() + 30
        while not (m := re.search(r"serving on (http://\S+)", lines[-1])):
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready and proc.poll() is None, f"no URL within 30 s: {lines}"
            lines.append(proc.stdout.readline())
        yield m.group(1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
@pytest.mark.parametrize("line", _serve_lines())
def test_serve_example(line: str) -> None:
    with _started(_venv_command(line)) as url:
        settings = requests.get(url + "/_mock/settings", timeout=5).json()
        options = _server_options(line)
        assert settings["client_code"] == options.get("--client-code", "demo")
        assert settings["lifecycle"] == options.get("--lifecycle", "seconds=2")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
@pytest.mark.parametrize("block", [b for b in blocks() if _is_redis_serve(b)], ids=lambda b: b.id)
def test_redis_serve_example(block: Block) -> None:
    """The one command that starts Redis and the server on it: Redis on a free port instead of 6380."""
    from redis_server import redis_server_path

    if redis_server_path() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs redis-server (apt-get install redis-server; see .ci/run)")
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = block.code.strip()
    assert "\n" not in line and "6380" in line, "the Redis example is one command line using port 6380"
    with _started(_venv_command(line.replace("6380", str(port)))) as url:
        pids = set()
        for _ in range(200):
            pids.add(requests.get(url + "/_mock/health", headers={"Connection": "close"},
                                  timeout=5).headers["X-Mock-Worker"])
            if len(pids) == 2:
                break
        assert len(pids) == int(_server_options(line)["--workers"]) == 2
        requests.post(url + "/_mock/tenants/r/profiles", json={"thirdPartyId": "r1"}, timeout=5).raise_for_status()
        import redis

        assert redis.Redis(port=port).keys("tpm:*"), "the state is in the Redis the command started"


TLS_PORT = "8443"
TLS_CA = "~/.local/share/target-profile-mock/ca.pem"


@pytest.fixture(scope="module")
def tls_front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    from target_profile_mock.mockserver.certs import LocalCA
    from target_profile_mock.mockserver.front import TlsFront

    ca, _ = LocalCA.ensure(tmp_path_factory.mktemp("ca"))
    backend = MockBackend(MockConfig(lifecycle=Lifecycle(mode="seconds", seconds=0.2)))
    with TlsFront(create_app(backend), ca.server_context()) as front:
        yield front.port, ca.ca_cert


@pytest.mark.parametrize("block", [b for b in blocks() if _is_tls_sh(b)], ids=lambda b: b.id)
def test_tls_shell_example(block: Block, tls_front: tuple[int, Path], tmp_path: Path) -> None:
    port, ca = tls_front
    code = block.code.replace(TLS_CA, str(ca)).replace(TLS_PORT, str(port))
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(README.parent)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _slug(heading: str) -> str:
    # GitHub's anchors: lower case, punctuation dropped, spaces to hyphens
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_in_the_readme_leads_somewhere() -> None:
    text = README.read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", text, flags=re.S)  # a '#' in a code block is a comment, not a heading
    anchors = {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", prose, flags=re.M)}
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        if (path and not (README.parent / path).exists()) or (not path and anchor not in anchors):
            broken.append(target)
    assert broken == [], f"README links to nothing at {broken}; headings give {sorted(anchors)}"
