"""The standalone server over a real socket: ``python -m target_profile_mock serve`` and the console script."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from target_profile_mock.contracts.xmlbodies import parse_response

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "target-profile-mock"
URL_RE = re.compile(r"serving on (http://\S+)")
STARTUP_TIMEOUT = 20.0
OK = b"<response><success>true</success><pcId></pcId><message>Request successfully submitted</message></response>"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str = ""
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if m := pattern.search(line):
                return m
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if m := pattern.search(line):
                return m
        raise AssertionError(f"no line matching {pattern.pattern!r} within {timeout}s; output: {self.lines!r}; "
                             f"stderr: {self._stderr()!r}")

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read()

    def stop(self, sig: int, timeout: float = 10.0) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        # drain the rest of stdout (the reader thread ends at EOF)
        while (line := self._queue.get(timeout=timeout)) is not None:
            self.lines.append(line)
        return code


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # the source tree first, so the console script runs this checkout's code too
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(cmd: list[str]) -> Server:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, env=_env(), cwd=ROOT)
    server = Server(proc)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            server._queue.put(line.rstrip("\n"))
        server._queue.put(None)

    threading.Thread(target=read, daemon=True).start()
    return server


def _commands() -> list[pytest.param]:
    module = pytest.param([sys.executable, "-m", "target_profile_mock"], id="python-m")
    script = pytest.param([str(SCRIPT)], id="console-script", marks=pytest.mark.skipif(
        not SCRIPT.exists(), reason=f"{SCRIPT} is not installed (pip install . into this environment)"))
    return [module, script]


TLS_URL_RE = re.compile(r"serving on (https://\S+)")


@contextmanager
def serving(*args: str, base: list[str] | None = None, url: re.Pattern[str] = URL_RE) -> Iterator[Server]:
    """``serve --port 0 ARGS`` in a process of its own, its ``url`` read from the line matching ``url``;
    killed on the way out if a test has not stopped it."""
    server = _spawn([*(base or [sys.executable, "-m", "target_profile_mock"]), "serve", "--port", "0", *args])
    try:
        server.url = server.wait_for(url, STARTUP_TIMEOUT).group(1)
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


@pytest.mark.parametrize("base", _commands())
def test_serves_health_update_and_fetch_over_a_socket_and_stops_on_sigterm(base: list[str]) -> None:
    with serving("--client-code", "acme", base=base) as server:
        url = server.url
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert int(url.rsplit(":", 1)[1]) != 0
        assert "auth off" in server.lines[-1]  # off unless --auth
        health = requests.get(f"{url}/_mock/health", timeout=5)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert requests.post(f"{url}/_mock/tenants/acme/profiles", timeout=5,
                             json={"thirdPartyId": "u1", "attributes": {"tier": "silver"}}).status_code == 201
        r = requests.get(f"{url}/m2/acme/profile/update", timeout=5,
                         params={"mbox3rdPartyId": "u1", "profile.tier": "gold & more"})
        assert r.status_code == 200 and r.content == OK
        r = requests.post(f"{url}/m2/acme/profile/update", timeout=5,
                          data={"mbox3rdPartyId": "u1", "profile.city": "Zürich"})
        assert r.content == OK
        f = requests.get(f"{url}/rest/v1/profiles/thirdPartyId/u1", params={"client": "acme"}, timeout=5)
        assert f.status_code == 200
        body = f.json()
        assert body["client"] == "acme" and body["visitorId"] == "u1"
        assert {k: v["value"] for k, v in body["profileAttributes"].items()} == {"tier": "gold & more",
                                                                                 "city": "Zürich"}
        missing = requests.get(f"{url}/rest/v1/profiles/1-2", params={"client": "acme"}, timeout=5)
        assert missing.status_code == 404
        assert missing.json() == {"status": 404, "message": "No profile found for client acme with mboxPC=1-2"}
        assert server.stop(signal.SIGTERM) == 0
        assert any("stopped" in line for line in server.lines), server.lines


def test_stops_cleanly_on_sigint() -> None:
    with serving() as server:
        assert requests.get(f"{server.url}/_mock/health", timeout=5).status_code == 200
        assert server.stop(signal.SIGINT) == 0
        assert any("stopped" in line for line in server.lines), server.lines
        assert server.proc.stderr is not None and "Traceback" not in server.proc.stderr.read()


def test_client_code_is_the_tenant_of_the_literal_client_path() -> None:
    with serving("--client-code", "shop7") as server:
        url = server.url
        requests.post(f"{url}/_mock/tenants/shop7/profiles", json={"thirdPartyId": "u1", "attributes": {"a": "0"}},
                      timeout=5).raise_for_status()
        r = requests.get(f"{url}/m2/client/profile/update?mbox3rdPartyId=u1&profile.a=1", timeout=5)
        assert r.content == OK
        f = requests.get(f"{url}/rest/v1/profiles/thirdPartyId/u1?client=shop7", timeout=5).json()
        assert f["profileAttributes"]["a"]["value"] == "1"
        # a Host naming a tenant still wins over the default
        requests.post(f"{url}/_mock/tenants/other/profiles", json={"thirdPartyId": "u1", "attributes": {"a": "0"}},
                      timeout=5).raise_for_status()
        requests.get(f"{url}/m2/client/profile/update?mbox3rdPartyId=u1&profile.a=2", timeout=5,
                     headers={"Host": "other.tt.omtrdc.net"})
        f = requests.get(f"{url}/rest/v1/profiles/thirdPartyId/u1?client=other", timeout=5).json()
        assert f["profileAttributes"]["a"]["value"] == "2"
        server.stop(signal.SIGTERM)


def test_auth_flag_requires_a_bearer_token() -> None:
    with serving("--auth", "--client-code", "acme") as server:
        line = next(line for line in server.lines if "serving on" in line)
        assert "client code acme" in line and "auth on" in line
        url = server.url
        fetch = f"{url}/rest/v1/profiles/thirdPartyId/u1?client=acme"
        r = requests.get(fetch, timeout=5)
        assert r.status_code == 401 and "[auth.missing-token]" in r.json()["message"]
        u = requests.get(f"{url}/m2/acme/profile/update?mbox3rdPartyId=u1&profile.a=1", timeout=5)
        assert u.status_code == 401 and parse_response(u.content)["success"] == "false"
        tok = requests.get(f"{url}/acme/target/authentication/token?authorizationScope=profile_api",
                           timeout=5).json()["accessToken"]
        auth = {"Authorization": f"Bearer {tok}"}
        assert requests.get(fetch, headers=auth, timeout=5).status_code == 404  # allowed; no such profile
        assert requests.get(f"{url}/m2/acme/profile/update?mbox3rdPartyId=u1&profile.a=1", headers=auth,
                            timeout=5).content == OK
        assert server.stop(signal.SIGTERM) == 0


def test_port_in_use_is_a_clear_error_with_exit_code_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "target_profile_mock", "serve", "--port", str(port)],
                              capture_output=True, text=True, timeout=30, env=_env(), cwd=ROOT)
    _assert_refused(proc, f"cannot listen on 127.0.0.1:{port}", "already in use", "--port 0 picks a free port")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "target_profile_mock", *args], capture_output=True, text=True,
                          timeout=30, env=_env(), cwd=ROOT, stdin=subprocess.DEVNULL)


def _assert_refused(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit status 2, one line on stderr holding every fragment, and no server started."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)
    assert "Traceback" not in proc.stderr and "serving on" not in proc.stdout


@pytest.mark.parametrize(("argv", "fragments"), [
    (["--port", "nope"], ["argument --port", "'nope' is not a port", "0-65535"]),
    (["--port", "70000"], ["argument --port", "'70000' is not a port", "0 picks a free one"]),
    (["--port", "-1"], ["argument --port", "0-65535"]),
    (["--threads", "0"], ["argument --threads", "'0' is not a whole number >= 1"]),
    (["--threads", "many"], ["argument --threads", "whole number >= 1"]),
    (["--batch-delay", "-1"], ["argument --batch-delay", "'-1' is not a number of seconds >= 0"]),
    (["--batch-delay", "inf"], ["argument --batch-delay", "seconds >= 0"]),
    (["--update-delay", "nan"], ["argument --update-delay", "seconds >= 0"]),
    (["--lifecycle", "polls=2,sometimes"], ["argument --lifecycle", "unknown lifecycle part 'sometimes'",
                                            "the parts are immediate, polls=N, seconds=T, manual, complete, stuck, "
                                            "failed=N|P%, lost=N|P%"]),
    (["--lifecycle", "seconds=-5"], ["argument --lifecycle", "cannot be negative"]),
    (["--bulk-rate-limit", "-3"], ["argument --bulk-rate-limit", "whole number >= 0 or 'off'"]),
    (["--journal-size", "-1"], ["argument --journal-size", "whole number >= 0"]),
    (["--journal-bytes", "lots"], ["argument --journal-bytes", "'lots' is not a byte count", "64M"]),
    (["--batch-retention-bytes", "-5"], ["argument --batch-retention-bytes", "is not a byte count"]),
    (["--max-tenants", "0"], ["argument --max-tenants", "whole number >= 1 or 'off'"]),
    (["--profile-lifetime", "0"], ["argument --profile-lifetime", "'0' is not a number of days", "'off'"]),
    (["--profile-lifetime", "forever"], ["argument --profile-lifetime", "is not a number of days"]),
    (["--login-sync-delay", "-1"], ["argument --login-sync-delay", "seconds >= 0"]),
    (["--location-hint", "28"], ["argument --location-hint", "'28' is not a location hint such as 28_0"]),
    (["--seed", "x"], ["argument --seed", "invalid int value: 'x'"]),
    (["--client-code", "acme/eu"], ["argument --client-code", "'acme/eu' is not a client code"]),
    (["--client-code", ""], ["argument --client-code", "is not a client code"]),
    (["--status-host", "https://mboxedge45.tt.omtrdc.net"], ["argument --status-host", "no scheme"]),
    (["--status-host", "edge:99999"], ["argument --status-host", "HOST:PORT"]),
    (["--control-token", "two words"], ["argument --control-token", "without spaces"]),
    (["--host", ""], ["argument --host", "127.0.0.1"]),
    (["--workers", "0"], ["argument --workers", "'0' is not a whole number >= 1"]),
    (["--workers", "two"], ["argument --workers", "whole number >= 1"]),
    (["--store", "mysql://db/1"], ["argument --store", "'mysql://db/1' is not a store URL", "redis://HOST:PORT/DB"]),
    (["--store", "localhost:6379"], ["argument --store", "is not a store URL", "memory://"]),
    (["--store", "redis://localhost:99999/0"], ["argument --store", "the port is not a port"]),
    (["--store", "redis://localhost:6379/zero"], ["argument --store", "DB is a number"]),
    (["--store", "redis:///0"], ["argument --store", "is not a Redis URL"]),
    (["--store", "memory://elsewhere"], ["argument --store", "takes no address"]),
    (["--store", "unix://"], ["argument --store", "unix:///path/to/redis.sock"]),
    (["--store-prefix", "team a"], ["argument --store-prefix", "'team a' is not a key prefix"]),
    (["--bogus"], ["unrecognized arguments: --bogus"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0].startswith("--") else None)
def test_every_option_is_checked_with_one_line_and_exit_status_2(argv: list[str], fragments: list[str]) -> None:
    proc = _run("serve", *argv)
    _assert_refused(proc, *fragments)
    assert proc.stderr.startswith("target-profile-mock")


def test_an_unknown_host_is_one_line_not_a_traceback() -> None:
    _assert_refused(_run("serve", "--host", "nosuchhost.invalid", "--port", "0"),
                    "target-profile-mock: error: --host nosuchhost.invalid: no such interface or host name")


def test_a_host_that_is_not_this_machine_is_one_line() -> None:
    # TEST-NET-1 (RFC 5737): never an address of this machine
    _assert_refused(_run("serve", "--host", "192.0.2.1", "--port", "0"), "cannot listen on 192.0.2.1:0",
                    "not an address of this machine")


def test_a_missing_fault_profile_is_one_line() -> None:
    _assert_refused(_run("serve", "--port", "0", "--fault-profile", "no-such-faults.json"),
                    "--fault-profile", "no-such-faults.json")


def test_version() -> None:
    from target_profile_mock import __version__

    proc = _run("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"target-profile-mock {__version__}"


def test_edge_values_are_accepted() -> None:
    # the bounds themselves: port 0 and one thread serve; 'off' and 0 are both limits the server takes
    with serving("--threads", "1", "--batch-delay", "0", "--bulk-rate-limit", "off", "--journal-size", "0",
                 "--status-host", "[::1]:8080") as server:
        assert requests.get(f"{server.url}/_mock/health", timeout=5).status_code == 200
        settings = requests.get(f"{server.url}/_mock/settings", timeout=5).json()
        assert settings["bulk_calls_per_minute"] is None and settings["lifecycle"] == "seconds=0"
        assert server.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize(("limit", "answers"), [("0", [503, 503]), ("off", [200] * 60), ("2", [200, 200, 503])])
def test_bulk_rate_limit_over_a_socket(limit: str, answers: list[int]) -> None:
    # 0 refuses every bulk call, as bulkCallsPerMinute: 0 does in the control API; 'off' has no limit
    with serving("--bulk-rate-limit", limit) as server:
        got = [requests.post(f"{server.url}/m2/demo/v2/profile/batchUpdate", data=b"batch=thirdPartyId,a\nc1,x\n",
                             headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=5).status_code
               for _ in answers]
        assert got == answers
        assert server.stop(signal.SIGTERM) == 0


def test_memory_bounds_over_a_socket() -> None:
    with serving("--journal-bytes", "1M", "--batch-retention-bytes", "off", "--max-tenants", "1") as server:
        settings = requests.get(f"{server.url}/_mock/settings", timeout=5).json()
        assert (settings["journal_bytes"], settings["batch_retention_bytes"], settings["max_tenants"]) == (
            2**20, None, 1)
        update = f"{server.url}/m2/%s/profile/update?mbox3rdPartyId=u&profile.x=1"
        assert requests.get(update % "one", timeout=5).status_code == 200
        refused = requests.get(update % "two", timeout=5)
        assert refused.status_code == 503 and "max_tenants" in refused.text
        for _ in range(12):  # about 100 KB each: the journal keeps what fits in 1 MiB
            requests.get(update % "one", headers={"X-Big": "h" * 100_000}, timeout=5)
        journal = requests.get(f"{server.url}/_mock/journal", timeout=5)
        assert journal.headers["Transfer-Encoding"] == "chunked" and 5 <= len(journal.json()) < 12
        assert requests.get(f"{server.url}/rest/v1/profiles/u?client=three", timeout=5).status_code == 404
        assert requests.get(f"{server.url}/_mock/tenants", timeout=5).json() == ["one"]
        assert server.stop(signal.SIGTERM) == 0


def test_help_lists_the_documented_options() -> None:
    proc = subprocess.run([sys.executable, "-m", "target_profile_mock", "serve", "--help"], capture_output=True,
                          text=True, timeout=30, env=_env(), cwd=ROOT)
    assert proc.returncode == 0
    for option in ("--host", "--port", "--client-code", "--auth", "--workers", "--store", "--store-prefix"):
        assert option in proc.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_right_after_the_url_line_still_stops_cleanly(sig: int) -> None:
    # a supervisor may stop the server the moment it has read the URL
    with serving() as server:
        assert server.stop(sig) == 0
        assert any("stopped" in line for line in server.lines), server.lines
        assert server.proc.stderr is not None and "Traceback" not in server.proc.stderr.read()
