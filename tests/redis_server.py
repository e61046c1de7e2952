"""A real ``redis-server`` for the tests: started on a free port with no persistence, stopped after.

The fixtures in conftest.py use it (``redis_server`` per session and xdist worker, ``redis_url`` per
test, on an emptied database); tests that need Redis skip, saying why, where ``redis-server`` is not
installed (``apt-get install redis-server``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer", "redis_server_path"]


def redis_server_path() -> str | None:
    """The redis-server executable on PATH (Debian installs it in /usr/bin), or None."""
    return shutil.which("redis-server") or next((p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server")
                                                if Path(p).exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1 (``url``: ``redis://127.0.0.1:<port>/0``)."""

    def __init__(self, executable: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="tpm-redis-")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        for _ in range(5):  # another process may take the free port between the probe and the bind
            self.port = _free_port()
            self.proc = subprocess.Popen(
                [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self._dir.name, "--protected-mode", "no", "--loglevel", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._wait_ready(10.0):
                return
            self.proc.kill()
            self.proc.wait()
        raise RuntimeError(f"redis-server did not start: {self._stderr()}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *args: str) -> bytes:
        """Send one command (inline protocol) and return the raw reply: enough for PING and FLUSHALL."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall((" ".join(args) + "\r\n").encode())
            return s.recv(65536)

    def flush(self) -> None:
        """Empty every database (between tests)."""
        assert self.command("FLUSHALL").startswith(b"+OK")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            try:
                if self.command("PING").startswith(b"+PONG"):
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    def _stderr(self) -> str:
        if self.proc is None or self.proc.stderr is None or self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace").strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self._dir.cleanup()
