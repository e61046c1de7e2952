"""serve --tls: HTTPS with a local CA for Adobe's host names, an HTTPS proxy for them, and the hosts-file
recipe; checked with requests, httpx, curl and Node.js, and a hard-coded client in another process."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests
from cryptography import x509
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.certs import HOSTS, LocalCA, default_dir
from target_profile_mock.mockserver.front import TlsFront

ROOT = Path(__file__).resolve().parent.parent
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BATCH = b"batch=thirdPartyId,tier\nc1,gold\n"
STATUS = re.compile(r"<batchStatus>(.*?)</batchStatus>")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    made, fresh = LocalCA.ensure(tmp_path_factory.mktemp("ca"))
    assert fresh
    return made


@pytest.fixture(scope="module")
def backend() -> MockBackend:
    return MockBackend(MockConfig(client_code="acme", lifecycle=Lifecycle.parse("polls=1")))


@pytest.fixture(scope="module")
def front(ca: LocalCA, backend: MockBackend) -> Iterator[TlsFront]:
    with TlsFront(create_app(backend), ca.server_context()) as server:
        yield server


@pytest.fixture
def fresh(backend: MockBackend) -> MockBackend:
    backend.reset()
    backend.seed_profile("acme", third_party_id="c1")
    return backend


# --- the certificates -----------------------------------------------------------------------------------
def test_the_ca_is_made_once_kept_and_its_key_private(ca: LocalCA) -> None:
    again, made = LocalCA.ensure(ca.directory)
    assert not made and again.ca_cert.read_bytes() == ca.ca_cert.read_bytes()
    assert stat.S_IMODE(ca.ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(ca.server_key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(ca.server_cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have = {str(n) for n in names.get_values_for_type(x509.DNSName)}
    have |= {str(n) for n in names.get_values_for_type(x509.IPAddress)}
    assert have == set(HOSTS)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 825  # what macOS accepts


def test_a_missing_server_certificate_is_issued_again_by_the_same_ca(tmp_path: Path) -> None:
    first, _ = LocalCA.ensure(tmp_path)
    ca_pem = first.ca_cert.read_bytes()
    first.server_cert.unlink()
    again, made = LocalCA.ensure(tmp_path)
    assert not made and again.ca_cert.read_bytes() == ca_pem and again.server_cert.exists()
    ctx = ssl.create_default_context(cafile=str(again.ca_cert))
    chain = x509.load_pem_x509_certificates(again.server_cert.read_bytes())
    assert chain[0].issuer == x509.load_pem_x509_certificate(ca_pem).subject
    assert ctx.get_ca_certs()


def test_default_place_is_documented_and_overridable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TARGET_PROFILE_MOCK_HOME", str(tmp_path))
    assert default_dir() == tmp_path
    monkeypatch.delenv("TARGET_PROFILE_MOCK_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    if sys.platform.startswith("linux"):
        assert default_dir() == tmp_path / "data" / "target-profile-mock"


# --- HTTPS, verified by each client ---------------------------------------------------------------------
def test_requests_verifies_the_certificate_and_batch_status_urls_use_https(front: TlsFront, ca: LocalCA,
                                                                          fresh: MockBackend) -> None:
    r = requests.post(f"{front.url}/m2/acme/v2/profile/batchUpdate", data=BATCH, headers=FORM, verify=str(ca.ca_cert))
    status_url = STATUS.search(r.text).group(1)  # type: ignore[union-attr]
    assert status_url.startswith(f"{front.url}/m2/acme/profile/batchStatus?batchId=")
    assert "<status>" in requests.get(status_url, verify=str(ca.ca_cert)).text
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{front.url}/_mock/health", verify=True)  # the system store does not know the local CA


def test_httpx_verifies_the_certificate_also_by_ip(front: TlsFront, ca: LocalCA, fresh: MockBackend) -> None:
    ctx = ssl.create_default_context(cafile=str(ca.ca_cert))
    with httpx.Client(verify=ctx) as client:
        r = client.get(f"https://127.0.0.1:{front.port}/m2/acme/profile/update?mbox3rdPartyId=c1&profile.tier=gold")
    assert r.status_code == 200 and fresh.get_profile("acme", "thirdPartyId", "c1")["attributes"]["tier"] == "gold"


def test_the_same_port_takes_plain_http(front: TlsFront, fresh: MockBackend) -> None:
    r = requests.post(f"{front.http_url}/m2/acme/v2/profile/batchUpdate", data=BATCH, headers=FORM)
    assert STATUS.search(r.text).group(1).startswith(f"{front.http_url}/m2/acme/")  # type: ignore[union-attr]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_hosts_file_recipe_with_curl(front: TlsFront, ca: LocalCA, fresh: MockBackend) -> None:
    # --connect-to does what a hosts-file line and a 443 -> port mapping do, without touching /etc/hosts:
    # the URL, the Host header and the certificate check are those of Adobe's host
    proc = subprocess.run(["curl", "-sS", "--fail-with-body", "--cacert", str(ca.ca_cert), "--connect-to",
                           f"acme.tt.omtrdc.net:443:127.0.0.1:{front.port}", "-X", "POST", "--data-binary",
                           "@-", "-H", "Content-Type: application/x-www-form-urlencoded",
                           "https://acme.tt.omtrdc.net/m2/acme/v2/profile/batchUpdate"],
                          input=BATCH, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    status_url = STATUS.search(proc.stdout.decode()).group(1)  # type: ignore[union-attr]
    assert status_url.startswith("https://acme.tt.omtrdc.net/m2/acme/profile/batchStatus?batchId=")
    # curl --resolve, the other way of saying it
    proc = subprocess.run(["curl", "-sS", "--cacert", str(ca.ca_cert), "--resolve",
                           f"mc.adobe.io:{front.port}:127.0.0.1", "-X", "POST",
                           f"https://mc.adobe.io:{front.port}/acme/target/authentication/token?authorizationScope=profile_api"],
                          capture_output=True, timeout=30)
    assert proc.returncode == 0 and b"token" in proc.stdout, proc.stdout + proc.stderr


NODE_CLIENT = """
const https = require("https");
const req = https.request({host: "localhost", port: Number(process.argv[2]), method: "POST",
    path: "/m2/acme/profile/update?mbox3rdPartyId=c1&profile.tier=node"}, (res) => {
  let body = "";
  res.on("data", (c) => body += c);
  res.on("end", () => { console.log(res.statusCode + " " + body); });
});
req.on("error", (e) => { console.error(e.code || e.message); process.exit(3); });
req.end();
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_node_trusts_the_ca_through_node_extra_ca_certs(front: TlsFront, ca: LocalCA, fresh: MockBackend,
                                                        tmp_path: Path) -> None:
    script = tmp_path / "client.js"
    script.write_text(NODE_CLIENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
    untrusted = subprocess.run(["node", str(script), str(front.port)], capture_output=True, text=True, env=env,
                               timeout=60)
    assert untrusted.returncode == 3, untrusted.stdout + untrusted.stderr  # unknown CA: refused
    trusted = subprocess.run(["node", str(script), str(front.port)], capture_output=True, text=True, timeout=60,
                             env={**env, "NODE_EXTRA_CA_CERTS": str(ca.ca_cert)})
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.startswith("200 <response><success>true</success>")
    assert fresh.get_profile("acme", "thirdPartyId", "c1")["attributes"]["tier"] == "node"


def test_connection_faults_reach_an_https_client_as_on_plain_http(front: TlsFront, ca: LocalCA,
                                                                  fresh: MockBackend) -> None:
    fresh.faults.add("reset", operation="fetch", times=1)
    with pytest.raises(requests.exceptions.ConnectionError, match="Connection reset by peer"):
        requests.get(f"{front.http_url}/rest/v1/profiles/thirdPartyId/c1?client=acme")
    # the front passes the reset on as an RST under TLS too; Python's ssl reports a reset after the
    # handshake as the end of the stream, as it does for any TLS server that resets
    fresh.faults.add("reset", operation="fetch", times=1)
    with pytest.raises(requests.exceptions.ConnectionError, match="Remote end closed connection without response"):
        requests.get(f"{front.url}/rest/v1/profiles/thirdPartyId/c1?client=acme", verify=str(ca.ca_cert))
    assert [e.fault for e in fresh.journal.entries()] == ["connection reset"] * 2
    fresh.faults.add("truncated", operation="fetch", times=1, keep=5)
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        requests.get(f"{front.url}/rest/v1/profiles/thirdPartyId/c1?client=acme", verify=str(ca.ca_cert))


# --- the proxy ------------------------------------------------------------------------------------------
HARD_CODED_CLIENT = """
import requests

BASE = "https://acme.tt.omtrdc.net"  # hard-coded: the code under test cannot be pointed elsewhere
ok = requests.post(f"{BASE}/m2/acme/profile/update", params={"mbox3rdPartyId": "c1", "profile.tier": "gold"})
bad = requests.post(f"{BASE}/m2/acme/profile/update", params={"mbox3rdPartyId": "a/b", "profile.tier": "gold"})
batch = requests.post(f"{BASE}/m2/acme/v2/profile/batchUpdate", data=b"batch=thirdPartyId,tier\\nc1,gold\\n",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
print(ok.status_code, bad.status_code, batch.text.split("<batchStatus>")[1].split("</batchStatus>")[0])
"""


def test_a_hard_coded_client_in_another_process_reaches_the_fake_through_https_proxy(
        front: TlsFront, ca: LocalCA, fresh: MockBackend, tmp_path: Path) -> None:
    script = tmp_path / "sync_job.py"
    script.write_text(HARD_CODED_CLIENT)
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    env.update(HTTPS_PROXY=front.http_url, REQUESTS_CA_BUNDLE=str(ca.ca_cert))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    ok, bad, status_url = proc.stdout.split()
    assert (ok, bad) == ("200", "400")
    assert status_url.startswith("https://acme.tt.omtrdc.net/m2/acme/profile/batchStatus?batchId=")
    # the contract verdicts of that process's requests, in the fake's journal
    entries = fresh.journal.entries()
    assert [(e.operation, e.url.split("?")[0]) for e in entries] == [
        ("single-update", "https://acme.tt.omtrdc.net/m2/acme/profile/update")] * 2 + [
        ("batch-submit", "https://acme.tt.omtrdc.net/m2/acme/v2/profile/batchUpdate")]
    assert [[v.rule_id for v in e.violations] for e in entries][:2] == [[], ["id.third-party-chars"]]
    assert fresh.get_profile("acme", "thirdPartyId", "c1")["attributes"]["tier"] == "gold"


def _connect(port: int, target: str) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return sock, head


def _read_to_end(sock: socket.socket, start: bytes = b"") -> bytes:
    """Everything the peer sends until it closes (after ``start``, what was read already); then closes."""
    answer = start
    while chunk := sock.recv(4096):
        answer += chunk
    sock.close()
    return answer


def test_other_hosts_are_refused_with_a_message_that_says_what_to_do(front: TlsFront) -> None:
    answer = _read_to_end(*_connect(front.port, "example.com:443"))
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"refused CONNECT example.com:443" in answer and b"NO_PROXY" in answer and b"--proxy-passthrough" in answer
    with pytest.raises(requests.exceptions.ProxyError, match="403"):
        requests.get("https://example.com/", proxies={"https": front.http_url}, timeout=10)


def test_passthrough_tunnels_other_hosts(ca: LocalCA, backend: MockBackend, other_host_port: int) -> None:
    with TlsFront(create_app(backend), ca.server_context(), passthrough=True) as front:
        sock, head = _connect(front.port, f"127.0.0.1:{other_host_port}")
        assert head.startswith(b"HTTP/1.1 200 Connection established")
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        answer = _read_to_end(sock)
    assert answer.endswith(b"\r\n\r\nhello")


# --- the command line -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_serve_tls_prints_how_to_trust_the_ca_and_serves_https(tmp_path: Path) -> None:
    from test_cli import TLS_URL_RE, serving

    with serving("--tls", "--ca-dir", str(tmp_path / "ca"), "--client-code", "acme", url=TLS_URL_RE) as server:
        text = "\n".join(server.lines)
        pem = str(tmp_path / "ca" / "ca.pem")
        assert f"made a new local CA in {tmp_path / 'ca'}" in text
        for hint in (f"REQUESTS_CA_BUNDLE={pem}", f"SSL_CERT_FILE={pem}", f"NODE_EXTRA_CA_CERTS={pem}",
                     "keytool -importcert", f"curl --cacert {pem}", "update-ca-certificates",
                     "security add-trusted-cert", "certutil -addstore", "HTTPS_PROXY=http://127.0.0.1:",
                     "127.0.0.1 <clientCode>.tt.omtrdc.net"):
            assert hint in text, hint
        r = requests.get(f"{server.url}/rest/v1/profiles/thirdPartyId/nobody?client=acme", verify=pem)
        assert r.status_code == 404
        assert server.stop(signal.SIGTERM) == 0


def test_serve_tls_without_a_writable_ca_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = subprocess.run([sys.executable, "-m", "target_profile_mock", "serve", "--tls", "--port", "0",
                           "--ca-dir", str(blocker / "ca")], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert f"cannot write the local CA in {blocker / 'ca'}" in proc.stderr and "--ca-dir" in proc.stderr



def test_plain_http_proxying_answers_adobe_s_hosts_and_refuses_others(front: TlsFront, fresh: MockBackend) -> None:
    # HTTP_PROXY: a hard-coded http:// URL (Adobe's bulk examples use http) reaches the fake too
    proxies = {"http": front.http_url}
    r = requests.post("http://acme.tt.omtrdc.net/m2/acme/v2/profile/batchUpdate", data=BATCH, headers=FORM,
                      proxies=proxies)
    assert STATUS.search(r.text).group(1).startswith("http://acme.tt.omtrdc.net/m2/acme/")  # type: ignore[union-attr]
    refused = requests.get("http://example.com/", proxies=proxies)
    assert refused.status_code == 403 and "refused forward example.com:80" in refused.text
    assert [e.url for e in fresh.journal.entries()] == ["http://acme.tt.omtrdc.net/m2/acme/v2/profile/batchUpdate"]


def test_passthrough_forwards_plain_http_proxy_requests(ca: LocalCA, backend: MockBackend,
                                                        other_host_port: int) -> None:
    with TlsFront(create_app(backend), ca.server_context(), passthrough=True) as front:
        sock = socket.create_connection(("127.0.0.1", front.port), timeout=10)
        sock.sendall(f"GET http://127.0.0.1:{other_host_port}/ HTTP/1.0\r\n\r\n".encode())
        answer = _read_to_end(sock)
    assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(b"\r\n\r\nhello")


def test_a_connect_without_a_port_is_refused_with_what_it_takes(front: TlsFront) -> None:
    answer = _read_to_end(*_connect(front.port, "acme.tt.omtrdc.net"))
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert answer.endswith(b"CONNECT takes host:port, e.g. CONNECT acme.tt.omtrdc.net:443, not acme.tt.omtrdc.net\n")


def test_without_the_tls_extra_the_error_says_how_to_install_it(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from target_profile_mock.mockserver.certs import CertError

    monkeypatch.setitem(sys.modules, "trustme", None)  # as if it were not installed
    with pytest.raises(CertError, match=r"pip install 'target-profile-mock\[tls\]'"):
        LocalCA.ensure(tmp_path)


def test_serve_tls_on_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "target_profile_mock", "serve", "--tls", "--port", str(port),
                               "--ca-dir", str(tmp_path / "ca")], capture_output=True, text=True, timeout=60,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in proc.stderr


def test_a_body_refused_before_the_app_is_journaled_with_the_https_url(front: TlsFront, ca: LocalCA,
                                                                       fresh: MockBackend) -> None:
    ctx = ssl.create_default_context(cafile=str(ca.ca_cert))
    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="acme.tt.omtrdc.net") as sock:
        sock.sendall(b"POST /m2/acme/v2/profile/batchUpdate HTTP/1.1\r\nHost: acme.tt.omtrdc.net\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000000\r\n\r\n")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413")
    [entry] = fresh.journal.entries()
    assert entry.url == "https://acme.tt.omtrdc.net/m2/acme/v2/profile/batchUpdate" and entry.status == 413
