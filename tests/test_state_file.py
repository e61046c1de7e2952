"""``serve --state-file``: the standalone server keeps its state across restarts, over a real socket."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
import requests
from test_cli import TLS_URL_RE, _assert_refused, _run, serving

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_state_survives_a_restart(tmp_path: Path, sig: int) -> None:
    path = tmp_path / "state.json"
    with serving("--state-file", str(path), "--lifecycle", "polls=1") as server:
        assert any("no state file" in line and "starting empty" in line for line in server.lines), server.lines
        url = server.url
        assert requests.post(f"{url}/_mock/tenants/demo/profiles", json={"thirdPartyId": "u1"},
                             timeout=5).status_code == 201
        r = requests.post(f"{url}/m2/demo/v2/profile/batchUpdate", data=b"batch=thirdPartyId,tier\nu1,gold\n",
                          headers=FORM, timeout=5)
        assert r.status_code == 200, r.text
        requests.post(f"{url}/_mock/clock", json={"freeze": True, "at": 1_800_000_000}, timeout=5)
        token = requests.put(f"{url}/_mock/tenants/demo/auth", json={"enabled": True}, timeout=5).json()["token"]
        requests.post(f"{url}/_mock/faults", json={"kind": "status", "status": 503, "operation": "fetch"}, timeout=5)
        before = requests.get(f"{url}/_mock/snapshot", timeout=5).json()
        assert server.stop(sig) == 0
        assert any(f"state written to {path}" in line for line in server.lines), server.lines
    assert json.loads(path.read_text()) == before
    with serving("--state-file", str(path)) as server:
        assert any("state loaded" in line for line in server.lines), server.lines
        url = server.url
        assert requests.get(f"{url}/_mock/snapshot", timeout=5).json() == before
        batch = requests.get(f"{url}/_mock/batches", timeout=5).json()[0]
        assert batch["status"] == "incomplete" and batch["polls"] == 0 and batch["lifecycle"] == "polls=1"
        assert requests.get(f"{url}/_mock/clock", timeout=5).json()["now"] == 1_800_000_000
        # the same token still works, and the queued fault still answers
        fetch = f"{url}/rest/v1/profiles/thirdPartyId/u1"
        assert requests.get(fetch, params={"client": "demo"}, timeout=5).status_code == 401
        assert requests.get(fetch, params={"client": "demo"}, headers={"Authorization": f"Bearer {token}"},
                            timeout=5).status_code == 503
        assert server.stop(signal.SIGTERM) == 0


def test_post_snapshot_writes_the_file_while_serving(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with serving("--state-file", str(path)) as server:
        requests.post(f"{server.url}/_mock/tenants/acme/profiles", json={"tntId": "t1"}, timeout=5)
        r = requests.post(f"{server.url}/_mock/snapshot", timeout=5)
        assert r.status_code == 200 and r.json()["written"] == str(path)
        saved = json.loads(path.read_text())
        assert list(saved["tenants"]) == ["acme"]
        # restoring over the socket replaces the state: an empty snapshot empties the server
        empty = dict(saved, tenants={})
        assert requests.put(f"{server.url}/_mock/snapshot", json=empty, timeout=5).status_code == 200
        assert requests.get(f"{server.url}/_mock/tenants", timeout=5).json() == []
        server.proc.kill()  # no shutdown: the file holds what was last written
        server.proc.wait(10)
    assert json.loads(path.read_text()) == saved


def test_a_damaged_state_file_stops_the_start_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"format": "target-profile-mock/snapshot", "version": 1, "tenants": {')
    _assert_refused(_run("serve", "--port", "0", "--state-file", str(path)), "--state-file", "not valid JSON",
                    "the file was left as it is")
    assert path.read_text().endswith('"tenants": {')


def test_a_state_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"format": "target-profile-mock/snapshot", "version": 99}))
    _assert_refused(_run("serve", "--port", "0", "--state-file", str(path)), "format version 99",
                    "upgrade it to load the snapshot")


def test_a_state_file_in_a_missing_folder_is_refused_at_start(tmp_path: Path) -> None:
    _assert_refused(_run("serve", "--port", "0", "--state-file", str(tmp_path / "nope" / "state.json")),
                    "--state-file", "must exist and be writable")


def test_serve_tls_writes_the_state_file_on_sigterm_too(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    path = tmp_path / "state.json"
    with serving("--tls", "--ca-dir", str(tmp_path / "ca"), "--state-file", str(path), url=TLS_URL_RE) as server:
        r = requests.post(f"{server.url}/_mock/tenants/acme/profiles", json={"tntId": "t1"}, timeout=5,
                          verify=str(tmp_path / "ca" / "ca.pem"))
        assert r.status_code == 201
        assert server.stop(signal.SIGTERM) == 0
    assert any(f"state written to {path}" in line for line in server.lines), server.lines
    assert list(json.loads(path.read_text())["tenants"]) == ["acme"]
