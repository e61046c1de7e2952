"""A local certificate authority and a certificate for Adobe's host names, for ``serve --tls``.

Made on first use with ``trustme`` (the ``tls`` extra) and kept in :func:`default_dir` (or the
directory given), so a CA trusted once stays trusted: ``ca.pem`` is the CA certificate to trust,
``ca-key.pem`` its private key (readable by its owner only), ``server.pem`` / ``server-key.pem`` the
server's certificate chain and key. The server certificate is re-issued from the same CA when it is
missing, names other hosts, or nears its end.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HOSTS", "CertError", "LocalCA", "default_dir", "trust_instructions"]

#: What the server certificate is valid for: Adobe's edge and Admin API hosts, and this machine.
HOSTS = ("*.tt.omtrdc.net", "mc.adobe.io", "localhost", "127.0.0.1", "::1")
#: Kept under the 825 days macOS and iOS accept for a TLS server certificate.
SERVER_DAYS = 800
RENEW_DAYS = 30


class CertError(RuntimeError):
    """The CA or the server certificate cannot be made or read; the message says what to do."""


def default_dir() -> Path:
    """Where the CA lives unless told otherwise: ``$TARGET_PROFILE_MOCK_HOME``, else the user's data
    directory (``$XDG_DATA_HOME`` or ``~/.local/share``, ``%LOCALAPPDATA%`` on Windows, ``~/Library/
    Application Support`` on macOS) under ``target-profile-mock``."""
    home = os.environ.get("TARGET_PROFILE_MOCK_HOME")
    if home:
        return Path(home).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "target-profile-mock"


@dataclass(frozen=True)
class LocalCA:
    """The files of the local CA and the server certificate it signed."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca-key.pem"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server-key.pem"

    @classmethod
    def ensure(cls, directory: Path | str | None = None) -> tuple[LocalCA, bool]:
        """The CA in ``directory`` (default :func:`default_dir`), made if absent; True if it was made now."""
        ca = cls(Path(directory).expanduser() if directory else default_dir())
        made = not ca.ca_cert.exists()
        try:
            if made:
                ca._make_ca()
            if ca._server_needs_issuing():
                ca._issue_server()
        except OSError as exc:
            raise CertError(f"cannot write the local CA in {ca.directory}: {exc}; give another place with "
                            "--ca-dir or TARGET_PROFILE_MOCK_HOME") from None
        return ca, made

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting the server certificate (HTTP/1.1 only)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["http/1.1"])
        try:
            ctx.load_cert_chain(self.server_cert, self.server_key)
        except (OSError, ssl.SSLError) as exc:
            raise CertError(f"cannot load {self.server_cert}: {exc}; delete {self.directory} to start afresh") from None
        return ctx

    # --- making them ------------------------------------------------------------------------------
    @staticmethod
    def _trustme() -> object:
        try:
            import trustme
        except ImportError:
            raise CertError("--tls needs the tls extra: pip install 'target-profile-mock[tls]'") from None
        return trustme

    def _make_ca(self) -> None:
        trustme = self._trustme()
        ca = trustme.CA(organization_name="target-profile-mock",  # type: ignore[attr-defined]
                        organization_unit_name="target-profile-mock local CA (testing only)")
        self.directory.mkdir(parents=True, exist_ok=True)
        _write(self.ca_key, ca.private_key_pem.bytes(), private=True)
        _write(self.ca_cert, ca.cert_pem.bytes())
        for stale in (self.server_cert, self.server_key):
            stale.unlink(missing_ok=True)

    def _server_needs_issuing(self) -> bool:
        if not (self.server_cert.exists() and self.server_key.exists()):
            return True
        from cryptography import x509

        try:
            cert = x509.load_pem_x509_certificate(self.server_cert.read_bytes())
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (ValueError, x509.ExtensionNotFound):
            return True
        have = {str(n) for n in names.get_values_for_type(x509.DNSName)}
        have |= {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
        ends = cert.not_valid_after_utc
        return have != set(HOSTS) or ends - dt.datetime.now(dt.UTC) < dt.timedelta(days=RENEW_DAYS)

    def _issue_server(self) -> None:
        trustme = self._trustme()
        try:
            ca = trustme.CA.from_pem(self.ca_cert.read_bytes(), self.ca_key.read_bytes())  # type: ignore[attr-defined]
        except (OSError, ValueError) as exc:
            raise CertError(f"cannot read the local CA in {self.directory}: {exc}; delete the directory to make "
                            "a new one (and trust the new ca.pem)") from None
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        leaf = ca.issue_cert(*HOSTS, common_name="target-profile-mock", not_before=now - dt.timedelta(days=1),
                             not_after=now + dt.timedelta(days=SERVER_DAYS))
        _write(self.server_key, leaf.private_key_pem.bytes(), private=True)
        _write(self.server_cert, b"".join(blob.bytes() for blob in leaf.cert_chain_pems))


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def trust_instructions(ca: LocalCA, port: int) -> str:
    """How to make each kind of client trust the CA, and reach the server for Adobe's host names."""
    pem = ca.ca_cert
    return f"""\
Local CA: {pem} (its key: {ca.ca_key}; for testing only, never trust it on a machine you share)
The server's certificate is valid for {", ".join(HOSTS)}.
Trust the CA:
  Python requests   REQUESTS_CA_BUNDLE={pem}
  Python httpx      SSL_CERT_FILE={pem}   (or httpx.Client(verify="{pem}"))
  aiohttp / ssl     ssl.create_default_context(cafile="{pem}")
  Node.js           NODE_EXTRA_CA_CERTS={pem}
  Java              keytool -importcert -noprompt -alias target-profile-mock -file {pem} \\
                      -keystore mock-truststore.p12 -storepass changeit
                    java -Djavax.net.ssl.trustStore=mock-truststore.p12 -Djavax.net.ssl.trustStorePassword=changeit ...
  Go, OpenSSL tools SSL_CERT_FILE={pem}
  curl              curl --cacert {pem} ...   (or CURL_CA_BUNDLE={pem})
  OS store          Debian/Ubuntu: sudo cp {pem} /usr/local/share/ca-certificates/target-profile-mock.crt \\
                      && sudo update-ca-certificates
                    Fedora/RHEL: sudo cp {pem} /etc/pki/ca-trust/source/anchors/ && sudo update-ca-trust
                    macOS: sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {pem}
                    Windows: certutil -addstore -f ROOT {pem}
Reach it as Adobe's hosts:
  proxy             HTTPS_PROXY=http://127.0.0.1:{port}   (CONNECT to *.tt.omtrdc.net and mc.adobe.io is answered here)
  hosts file        127.0.0.1 <clientCode>.tt.omtrdc.net   and   127.0.0.1 mc.adobe.io   (serve on port 443,
                    or map 443 to {port}); try it first with
                    curl --cacert {pem} --connect-to <clientCode>.tt.omtrdc.net:443:127.0.0.1:{port} https://...
"""
