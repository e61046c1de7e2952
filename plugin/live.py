"""Live mode (``pytest --target-profiles-live``): the tests marked ``verified=True`` run against a real Target.

The fixtures hand over a :class:`LiveTargetProfiles` instead of the fake's handle: the same names where the
real service can do the same thing (a visit through the Delivery API creates a profile, polling replaces
the clock), a skip that says why where only a fake can (inject faults, force a batch, read a journal).
Every exchange with Target is recorded to a cassette (``docs/cassettes.md``) with tokens and credentials
redacted and Target-issued visitor ids replaced consistently; ``target-profile-mock verify`` replays it.

Configuration comes from environment variables (see ``ENV``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote_plus, urlsplit

import pytest
import requests

_T = TypeVar("_T")

__all__ = ["ENV", "LiveConfig", "LiveError", "LiveTargetProfiles", "Recorder"]

#: The environment variables live mode reads, with what they mean.
ENV = {
    "TARGET_PROFILES_LIVE_CLIENT_CODE": "the tenant's client code (required)",
    "TARGET_PROFILES_LIVE_TOKEN": "a ready profile API token (when the tenant requires one)",
    "TARGET_PROFILES_LIVE_IMS_TOKEN": "an Adobe IMS access token: the profile API token is read from the Admin API",
    "TARGET_PROFILES_LIVE_IMS_CLIENT_ID": "OAuth server-to-server client id: an IMS token is requested with it",
    "TARGET_PROFILES_LIVE_IMS_CLIENT_SECRET": "OAuth server-to-server client secret",
    "TARGET_PROFILES_LIVE_IMS_SCOPES": "scopes for the IMS token (default: openid,AdobeID,target_sdk)",
    "TARGET_PROFILES_LIVE_API_KEY": "the x-api-key for the Admin API (default: the IMS client id)",
    "TARGET_PROFILES_LIVE_TENANT": "the Admin API tenant name (default: the client code)",
    "TARGET_PROFILES_LIVE_EDGE": "base URL of the edge (default: https://<client code>.tt.omtrdc.net)",
    "TARGET_PROFILES_LIVE_ADMIN": "base URL of the Admin API (default: https://mc.adobe.io)",
    "TARGET_PROFILES_LIVE_IMS": "base URL of Adobe IMS (default: https://ims-na1.adobelogin.com)",
    "TARGET_PROFILES_LIVE_TIMEOUT": "seconds to wait for a profile or batch to show a change (default: 300)",
    "TARGET_PROFILES_LIVE_PREFIX": "prefix of the ids a run writes (default: tpm-<UTC time>-<random>-)",
    "TARGET_PROFILES_LIVE_RECORD": "cassette file to record the run's exchanges to (default: none)",
}

REDACTED = "REDACTED"  # what verify puts the fake's own token in place of
#: the id written in place of the run's prefix in a cassette, so recordings of two runs compare
RUN_PREFIX_PLACEHOLDER = "run-"
_SECRET_HEADERS = ("authorization", "x-api-key", "access_token", "x-gw-ims-org-id", "cookie", "set-cookie")


class LiveError(pytest.UsageError):
    """Live mode is misconfigured; the message names the variable and what to set."""


@dataclass
class LiveConfig:
    """Live mode's settings, from the environment."""

    client_code: str
    edge: str
    token: str | None = None
    admin: str = "https://mc.adobe.io"
    tenant: str | None = None
    ims_token: str | None = None
    api_key: str | None = None
    timeout: float = 300.0
    prefix: str = ""
    record: Path | None = None
    secrets: list[str] = field(default_factory=list)  #: values never written to a cassette

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LiveConfig:
        env = os.environ if env is None else env
        code = env.get("TARGET_PROFILES_LIVE_CLIENT_CODE", "").strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", code):
            raise LiveError("--target-profiles-live: set TARGET_PROFILES_LIVE_CLIENT_CODE to your tenant's client "
                            "code (the <code> of <code>.tt.omtrdc.net)" + (f"; {code!r} is not one" if code else ""))
        edge = env.get("TARGET_PROFILES_LIVE_EDGE", "").strip().rstrip("/") or f"https://{code}.tt.omtrdc.net"
        if urlsplit(edge).scheme not in ("http", "https") or not urlsplit(edge).netloc:
            raise LiveError(f"TARGET_PROFILES_LIVE_EDGE={edge!r}: give a base URL such as "
                            f"https://{code}.tt.omtrdc.net")
        try:
            timeout = float(env.get("TARGET_PROFILES_LIVE_TIMEOUT", "") or 300)
        except ValueError:
            timeout = -1
        if not timeout > 0:
            raise LiveError("TARGET_PROFILES_LIVE_TIMEOUT: give a number of seconds > 0")
        prefix = env.get("TARGET_PROFILES_LIVE_PREFIX", "").strip() or (
            f"tpm-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}-")
        if not re.fullmatch(r"[A-Za-z0-9_-]{4,40}", prefix):
            raise LiveError(f"TARGET_PROFILES_LIVE_PREFIX={prefix!r}: 4-40 letters, digits, '_' or '-'")
        record = env.get("TARGET_PROFILES_LIVE_RECORD", "").strip()
        cfg = cls(client_code=code, edge=edge, token=env.get("TARGET_PROFILES_LIVE_TOKEN") or None,
                  admin=(env.get("TARGET_PROFILES_LIVE_ADMIN") or "https://mc.adobe.io").rstrip("/"),
                  tenant=env.get("TARGET_PROFILES_LIVE_TENANT") or None,
                  ims_token=env.get("TARGET_PROFILES_LIVE_IMS_TOKEN") or None,
                  api_key=env.get("TARGET_PROFILES_LIVE_API_KEY") or None, timeout=timeout, prefix=prefix,
                  record=Path(record) if record else None)
        client_id = env.get("TARGET_PROFILES_LIVE_IMS_CLIENT_ID")
        client_secret = env.get("TARGET_PROFILES_LIVE_IMS_CLIENT_SECRET")
        cfg.secrets += [s for s in (cfg.token, cfg.ims_token, cfg.api_key, client_id, client_secret) if s]
        if cfg.token is None and cfg.ims_token is None and client_id and client_secret:
            ims = (env.get("TARGET_PROFILES_LIVE_IMS") or "https://ims-na1.adobelogin.com").rstrip("/")
            scopes = env.get("TARGET_PROFILES_LIVE_IMS_SCOPES") or "openid,AdobeID,target_sdk"
            cfg.ims_token = _ims_token(ims, client_id, client_secret, scopes)
            cfg.api_key = cfg.api_key or client_id
            cfg.secrets.append(cfg.ims_token)
        if cfg.token is None and cfg.ims_token is not None:
            if not cfg.api_key:
                raise LiveError("TARGET_PROFILES_LIVE_IMS_TOKEN needs TARGET_PROFILES_LIVE_API_KEY (the Admin "
                                "API's x-api-key) to read the profile API token")
            cfg.token = _profile_token(cfg)
            cfg.secrets.append(cfg.token)
        return cfg


def _ims_token(ims: str, client_id: str, client_secret: str, scopes: str) -> str:
    """An access token by OAuth server-to-server (client credentials) from Adobe IMS."""
    try:
        r = requests.post(f"{ims}/ims/token/v3", data={"grant_type": "client_credentials", "client_id": client_id,
                                                       "client_secret": client_secret, "scope": scopes}, timeout=30)
    except requests.RequestException as exc:
        raise LiveError(f"Adobe IMS at {ims} did not answer ({exc})") from None
    if r.status_code != 200 or "access_token" not in _json(r):
        raise LiveError(f"Adobe IMS refused the client credentials (HTTP {r.status_code}): check "
                        "TARGET_PROFILES_LIVE_IMS_CLIENT_ID / _SECRET / _SCOPES")
    return str(_json(r)["access_token"])


def _profile_token(cfg: LiveConfig) -> str:
    """The tenant's profile API token, from the Admin API (GET: the current one, never a new one)."""
    tenant = cfg.tenant or cfg.client_code
    url = f"{cfg.admin}/{tenant}/target/authentication/token"
    try:
        r = requests.get(url, params={"authorizationScope": "profile_api"}, timeout=30,
                         headers={"Authorization": f"Bearer {cfg.ims_token}", "x-api-key": cfg.api_key or "",
                                  "Accept": "application/vnd.adobe.target.v1+json"})
    except requests.RequestException as exc:
        raise LiveError(f"the Admin API at {cfg.admin} did not answer ({exc})") from None
    token = _json(r).get("accessToken")
    if r.status_code != 200 or not isinstance(token, str):
        raise LiveError(f"the Admin API did not give the profile API token (HTTP {r.status_code} from GET {url}): "
                        "check the IMS token or client credentials, TARGET_PROFILES_LIVE_API_KEY and "
                        "TARGET_PROFILES_LIVE_TENANT")
    return token


def _json(r: requests.Response) -> dict[str, Any]:
    try:
        data = r.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# --- recording -----------------------------------------------------------------------------------------
class Recorder:
    """Every exchange sent through ``requests`` to the edge or the Admin API during live tests."""

    def __init__(self, config: LiveConfig, *, worker: str | None = None) -> None:
        self.config = config
        self.worker = worker  #: the pytest-xdist worker's id, when this process is one
        self.hosts = {urlsplit(config.edge).netloc.lower(), urlsplit(config.admin).netloc.lower()}
        self.exchanges: list[dict[str, Any]] = []
        self.started: float | None = None
        self.issued: set[str] = set()  #: tntIds Target issued in this run (writes to them are allowed)
        self.last_status_url: str | None = None  #: the batchStatus URL of the latest submit answer
        self._salt = secrets.token_bytes(16)  # pseudonyms cannot be traced back, and differ per run

    def wants(self, url: str) -> bool:
        host = urlsplit(url).netloc.lower()
        return host in self.hosts or host.endswith(".tt.omtrdc.net")

    def add(self, request: requests.PreparedRequest, response: requests.Response, started: float) -> None:
        if self.started is None:
            self.started = started
        body = request.body if request.body is not None else b""
        if isinstance(body, str):
            body = body.encode()
        text = response.content.decode(errors="replace")
        for m in re.finditer(r'"tntId"\s*:\s*"([^"]+)"', text):
            self.issued.add(m.group(1).split(".")[0])
        status_url = re.search(r"<batchStatus>([^<]+)</batchStatus>", text)
        if status_url:
            self.last_status_url = status_url.group(1).strip()
        self.exchanges.append({
            "at": round(started - self.started, 3),
            "elapsed_ms": round(response.elapsed.total_seconds() * 1000, 1),
            "request": {"method": request.method, "url": request.url, "headers": dict(request.headers),
                        "body": bytes(body).decode(errors="replace")},
            "response": {"status": response.status_code, "headers": dict(response.headers), "body": text},
        })

    def check_write(self, request: requests.PreparedRequest) -> None:
        """Refuse, before it is sent, a write to an id that is not this run's: a live run never touches real
        visitors."""
        parts = urlsplit(request.url or "")
        path = parts.path
        query = dict(parse_qsl(parts.query))
        body = request.body if isinstance(request.body, str) else (request.body or b"").decode(errors="replace")
        ids: list[str] = []
        if path.endswith("/profile/update"):
            ids = [v for k, v in query.items() if k in ("mbox3rdPartyId", "mboxPC")]
            ids += [v for k, v in parse_qsl(body) if k in ("mbox3rdPartyId", "mboxPC")]
        elif path.endswith("/profile/batchUpdate"):
            text = unquote_plus(body[6:]) if body.startswith("batch=") else body
            ids = [line.split(",")[0].strip() for line in text.splitlines()[1:] if line.strip()]
        elif path.endswith("/rest/v1/delivery"):
            try:
                given = json.loads(body or "{}").get("id") or {}
            except (ValueError, AttributeError):
                given = {}
            ids = [str(v) for k, v in given.items() if k in ("tntId", "thirdPartyId") and v]
        foreign = [i for i in ids if not i.startswith(self.config.prefix) and i.split(".")[0] not in self.issued]
        if foreign:
            # pytest.fail, not an exception a client's ``except Exception`` could swallow
            pytest.fail(f"live mode refused to send {request.method} {path}: it writes to "
                        f"{', '.join(map(repr, foreign[:3]))}, not an id of this run; build ids with "
                        f"target_profiles.id(...) (they start with {self.config.prefix!r}) or use a "
                        "tntId Target issued in this run", pytrace=False)

    def _pseudonym(self, tnt_id: str) -> str:
        """A keyed hash of the id, in its shape: 32 hex digits, or digits-digits of the same lengths."""
        digest = hashlib.blake2b(tnt_id.encode(), key=self._salt, digest_size=16).hexdigest()
        m = re.fullmatch(r"(\d+)-(\d+)", tnt_id)
        if not m:
            return digest
        digits = str(int(digest, 16)).rjust(len(m.group(1)) + len(m.group(2)), "0")
        return f"{digits[:len(m.group(1))]}-{digits[len(m.group(1)):len(m.group(1)) + len(m.group(2))]}"

    def cassette(self) -> dict[str, Any]:
        """The recording, redacted: tokens and credentials replaced by REDACTED, the run's prefix by
        ``run-``, each Target-issued visitor id by one pseudonym of the same shape throughout."""
        cfg = self.config
        replace = {s: REDACTED for s in cfg.secrets if len(s) >= 4}
        replace[cfg.prefix] = RUN_PREFIX_PLACEHOLDER
        for tnt in sorted(self.issued):
            replace[tnt] = self._pseudonym(tnt)

        def scrub(text: str) -> str:
            for old in sorted(replace, key=len, reverse=True):
                text = text.replace(old, replace[old])
                text = text.replace(quote(old, safe=""), quote(replace[old], safe=""))
            return text

        def headers(h: Mapping[str, str]) -> dict[str, str]:
            out = {}
            for k, v in h.items():
                if k.lower() in _SECRET_HEADERS:
                    v = f"Bearer {REDACTED}" if v.lower().startswith("bearer ") else REDACTED
                out[k] = scrub(v)
            return out

        exchanges = []
        for ex in self.exchanges:
            req, res = ex["request"], ex["response"]
            body = scrub(res["body"])
            body = re.sub(r'("accessToken"\s*:\s*")[^"]*', rf"\g<1>{REDACTED}", body)
            exchanges.append({
                "at": ex["at"], "elapsed_ms": ex["elapsed_ms"],
                "request": {"method": req["method"], "url": scrub(req["url"]), "headers": headers(req["headers"]),
                            "body": scrub(req["body"])},
                "response": {"status": res["status"], "headers": headers(res["headers"]), "body": body},
            })
        from target_profile_mock.mockserver.verify import FORMAT, VERSION

        return {
            "format": FORMAT, "version": VERSION,
            "name": f"live run against {cfg.client_code}",
            "recorded": {"at": datetime.now(UTC).isoformat(timespec="seconds"), "edge": scrub(cfg.edge),
                         "by": "pytest --target-profiles-live"},
            "setup": {"settings": {"client_code": cfg.client_code, "auth": cfg.token is not None}},
            "exchanges": exchanges,
        }

    def write(self) -> Path | None:
        if self.config.record is None:
            return None
        path = self.config.record
        if self.worker:  # each xdist worker records its own share of the run
            path = path.with_name(f"{path.stem}.{self.worker}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.cassette(), indent=2) + "\n", encoding="utf-8")
        return path

    @contextmanager
    def capturing(self) -> Iterator[None]:
        """Record (and guard) what ``requests`` sends to Target while the block runs."""
        from requests.adapters import HTTPAdapter

        original = HTTPAdapter.send
        recorder = self

        def send(adapter: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
            if not recorder.wants(request.url or ""):
                return original(adapter, request, *args, **kwargs)
            recorder.check_write(request)
            started = time.time()
            response = original(adapter, request, *args, **kwargs)
            recorder.add(request, response, started)
            return response

        HTTPAdapter.send = send  # type: ignore[method-assign]
        try:
            yield
        finally:
            HTTPAdapter.send = original  # type: ignore[method-assign]


# --- the handle ------------------------------------------------------------------------------------------
#: What only a fake can do, with why it cannot be done against a real tenant.
FAKE_ONLY = {
    "seed_profiles": "seeding many profiles at once",
    "freeze_clock": "stopping the clock", "unfreeze_clock": "stopping the clock", "now": "reading the fake's clock",
    "fake_sleep": "time.sleep moving a clock", "set_lifecycle": "choosing how batches progress",
    "force_batch": "forcing a batch's state", "configure": "changing the service's settings",
    "set_auth": "switching authentication (it is the tenant's setting)",
    "issue_token": "issuing a token (it would invalidate the tenant's)",
    "add_fault": "injecting faults", "fault_sequence": "injecting faults", "load_faults": "injecting faults",
    "faults": "injecting faults", "remove_fault": "injecting faults", "clear_faults": "injecting faults",
    "expire_profile": "expiring a profile now", "delete_profile": "deleting a profile (no public API)",
    "set_offer": "choosing the offers", "batches": "listing the tenant's batches", "batch": "reading a batch's state",
    "requests": "reading the journal", "last_request": "reading the journal",
    "wait_for_requests": "reading the journal",
    "assert_called": "reading the journal", "assert_not_called": "reading the journal",
    "assert_updated": "reading the journal", "assert_batch_submitted": "reading the journal",
    "assert_contract": "checking requests against the contract", "violations": "checking requests against the contract",
    "allow": "checking requests against the contract", "profiles": "listing every profile",
    "backend": "the fake's backend", "journal": "reading the journal", "responses": "the in-process requests mock",
    "httpx_transport": "the in-process transport", "async_httpx_transport": "the in-process transport",
}


class LiveTargetProfiles:
    """A real Adobe Target tenant behind the fixtures' names.

    ``url`` is the edge, ``headers()`` carries the profile API token, ``id(name)`` gives an id of this run.
    ``seed_profile`` and ``visit`` go through the Delivery API; ``profile`` fetches; ``wait_for_profile`` and
    ``wait_for_batch`` poll, bounded by the configured timeout; ``advance`` waits. Anything only a fake can
    do skips the test and says so.
    """

    def __init__(self, config: LiveConfig, recorder: Recorder, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._recorder = recorder
        self.client_code = config.client_code
        self.url = config.edge
        self.live = True
        self._sleep = sleep
        self._session = requests.Session()

    # --- ids and auth --------------------------------------------------------------------------------
    def id(self, name: str) -> str:
        """The id ``name`` stands for in this run: prefixed, so a live run never writes to a real visitor."""
        return name if name.startswith(self.config.prefix) else f"{self.config.prefix}{name}"

    def token(self, tenant: str | None = None) -> str | None:
        """The profile API token the run uses (None when the tenant requires none)."""
        return self.config.token

    def headers(self) -> dict[str, str]:
        """What to send with every profile API call: the token, when there is one."""
        return {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}

    # --- profiles ----------------------------------------------------------------------------------------
    def visit(self, tnt_id: str | None = None, *, third_party_id: str | None = None, ecid: str | None = None,
              mboxes: Sequence[str] = ("target-global-mbox",), profile_parameters: Mapping[str, Any] | None = None,
              tenant: str | None = None) -> dict[str, Any]:
        """A Delivery API call (``POST /rest/v1/delivery``); returns Target's answer."""
        ids = {k: v for k, v in (("tntId", tnt_id), ("thirdPartyId", third_party_id),
                                 ("marketingCloudVisitorId", ecid)) if v is not None}
        params = {str(k): ("true" if v is True else "false" if v is False else str(v))
                  for k, v in (profile_parameters or {}).items()}
        body: dict[str, Any] = {"context": {"channel": "web"}, "execute": {"mboxes": [
            {"index": i, "name": name, **({"profileParameters": params} if i == 1 and params else {})}
            for i, name in enumerate(mboxes, 1)]}}
        if ids:
            body["id"] = ids
        r = self._session.post(f"{self.url}/rest/v1/delivery", json=body, timeout=30,
                               params={"client": tenant or self.client_code, "sessionId": uuid.uuid4().hex})
        if r.status_code == 404:
            pytest.skip(f"live mode: {self.url} has no Delivery API (POST /rest/v1/delivery answered 404), and a "
                        "visit is how a profile is born on a real tenant")
        if r.status_code != 200:
            pytest.fail(f"live mode: the Delivery API answered HTTP {r.status_code}: {r.text[:300]}", pytrace=False)
        return r.json()

    def seed_profile(self, third_party_id: str | None = None, *, tnt_id: str | None = None,
                     ecid: str | None = None, attributes: Mapping[str, Any] | None = None,
                     tenant: str | None = None) -> dict[str, Any]:
        """A profile born the real way: a visit carrying the customer id and the attributes as profile
        parameters; returns once a fetch finds it (polling, up to the timeout)."""
        if tnt_id is not None or ecid is not None or third_party_id is None:
            pytest.skip("live mode: a real Target issues tntIds and ECIDs itself; seed_profile can only start a "
                        "profile for a customer id (third_party_id) there")
        third_party_id = self.id(third_party_id)
        self.visit(third_party_id=third_party_id, profile_parameters=attributes, tenant=tenant)
        found = self.wait_for_profile(third_party_id, attributes=attributes, tenant=tenant)
        assert found is not None
        return found

    def profile(self, third_party_id: str | None = None, *, tnt_id: str | None = None, ecid: str | None = None,
                tenant: str | None = None) -> dict[str, Any] | None:
        """The profile as the fetch API shows it now (None on 404), in the fake's shape."""
        given = [(k, v) for k, v in (("thirdPartyId", third_party_id), ("tntId", tnt_id),
                                     ("marketingCloudVisitorId", ecid)) if v is not None]
        if len(given) != 1:
            raise TypeError("profile() takes exactly one of third_party_id, tnt_id, ecid")
        kind, value = given[0]
        path = value if kind == "tntId" else f"{kind}/{value}"
        r = self._session.get(f"{self.url}/rest/v1/profiles/{quote(path, safe='/')}", timeout=30,
                              params={"client": tenant or self.client_code}, headers=self.headers())
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            pytest.fail(f"live mode: the fetch API answered HTTP {r.status_code}: {r.text[:300]}", pytrace=False)
        data = r.json()
        attrs = data.get("profileAttributes") or {}
        return {kind: value, "attributes": {k: v.get("value") for k, v in attrs.items()},
                "modifiedAt": {k: v.get("modifiedAt") for k, v in attrs.items()}}

    def wait_for_profile(self, third_party_id: str | None = None, *, tnt_id: str | None = None,
                         attributes: Mapping[str, Any] | None = None, timeout: float | None = None,
                         tenant: str | None = None) -> dict[str, Any] | None:
        """Poll the fetch API until the profile exists (with ``attributes``, when given); Adobe documents
        up to an hour, usually less, for a change to show. Fails the test at the timeout."""
        want = {str(k): ("true" if v is True else "false" if v is False else str(v))
                for k, v in (attributes or {}).items()}

        def attempt() -> tuple[bool, dict[str, Any] | None]:
            found = self.profile(third_party_id, tnt_id=tnt_id, tenant=tenant)
            return found is not None and all(found["attributes"].get(k) == v for k, v in want.items()), found

        return self._poll(attempt, lambda found: (
            f"live mode: the profile {third_party_id or tnt_id!r} did not show {want or 'up'} within "
            f"{timeout or self.config.timeout:g} s (TARGET_PROFILES_LIVE_TIMEOUT); last seen: {found}"),
            timeout, delay=0.2, max_delay=10.0)

    def wait_for_batch(self, state: str = "complete", *, status_url: str | None = None,
                       timeout: float | None = None, **_: Any) -> dict[str, Any]:
        """Poll a batch's status URL (the last one a submit answered in this test, by default) until its
        status is ``state`` (or ``stuck``); returns the last status as a dict."""
        from target_profile_mock.contracts.xmlbodies import parse_batch_status

        url = status_url or self._recorder.last_status_url
        if url is None:
            pytest.fail("live mode: wait_for_batch() has no status URL: submit a batch first, or pass status_url",
                        pytrace=False)

        def attempt() -> tuple[bool, tuple[requests.Response, Any]]:
            r = self._session.get(url, headers=self.headers(), timeout=30)
            try:
                status = parse_batch_status(r.text) if r.status_code == 200 else None
            except ValueError:  # ElementTree's ParseError is one
                status = None
            return status is not None and status.status in (state, "stuck"), (r, status)

        _, status = self._poll(attempt, lambda last: (
            f"live mode: the batch did not reach {state!r} within {timeout or self.config.timeout:g} s; last "
            f"answer HTTP {last[0].status_code}: {last[0].text[:200]}"), timeout, delay=0.5, max_delay=15.0)
        return {"status": status.status, "batchSize": status.batch_size}

    def _poll(self, attempt: Callable[[], tuple[bool, _T]], failure: Callable[[_T], str], timeout: float | None,
              *, delay: float, max_delay: float) -> _T:
        """Call ``attempt`` until it says it is done, and return what it found; between calls wait ``delay``
        seconds, doubled each time up to ``max_delay`` (a real tenant is asked as seldom as will do). At
        ``timeout`` (default: the configured one) fail the test with ``failure`` of the last thing found."""
        limit = time.monotonic() + (timeout if timeout is not None else self.config.timeout)
        while True:
            done, last = attempt()
            if done:
                return last
            if time.monotonic() >= limit:
                pytest.fail(failure(last), pytrace=False)
            self._sleep(delay)
            delay = min(delay * 2, max_delay)

    def advance(self, seconds: float) -> float:
        """Wait: a real tenant's clock cannot be moved. Skips when the wait would pass the timeout."""
        if seconds > self.config.timeout:
            pytest.skip(f"live mode: advance({seconds:g}) would wait longer than TARGET_PROFILES_LIVE_TIMEOUT "
                        f"({self.config.timeout:g} s); only a fake's clock can be moved")
        self._sleep(seconds)
        return time.time()

    def close(self) -> None:
        self._session.close()

    def __getattr__(self, name: str) -> Any:
        if name in FAKE_ONLY:
            pytest.skip(f"live mode: target_profiles.{name} needs the fake ({FAKE_ONLY[name]} is not something a "
                        "real Target offers); run this test without --target-profiles-live")
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"<LiveTargetProfiles {self.client_code} at {self.url}>"


# --- pytest wiring ---------------------------------------------------------------------------------------
_RECORDER = pytest.StashKey[Recorder]()


class _LivePlugin:
    """Registered only with --target-profiles-live: keeps the verified tests, writes the cassette."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.written: Path | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        from .pytest_plugin import settings_for

        keep, drop = [], []
        for item in items:
            if not any(m.kwargs.get("verified") for m in item.iter_markers("target_profiles")):
                drop.append(item)
                continue
            try:
                verified = settings_for(item).verified  # the closest marker wins, as for every setting
            except pytest.fail.Exception:
                verified = True  # a marker the fixture refuses: run the test, so it fails saying why
            (keep if verified else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.recorder.exchanges:
            self.written = self.recorder.write()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        cfg = self.recorder.config
        terminalreporter.section("target-profiles: live run")
        terminalreporter.line(f"against {cfg.edge} (client code {cfg.client_code}), ids prefixed {cfg.prefix}")
        if self.written is not None:
            terminalreporter.line(f"{len(self.recorder.exchanges)} exchange(s) recorded to {self.written}; "
                                  f"replay them with: target-profile-mock verify {self.written}")
        elif cfg.record is None:
            terminalreporter.line("not recorded: set TARGET_PROFILES_LIVE_RECORD=<file> to record the exchanges "
                                  "and replay them with target-profile-mock verify")


def configure(config: pytest.Config) -> None:
    """Read the environment (a usage error names what is missing) and switch live mode on."""
    worker = getattr(config, "workerinput", {}).get("workerid")  # set by pytest-xdist on its workers
    recorder = Recorder(LiveConfig.from_env(), worker=worker)
    config.stash[_RECORDER] = recorder
    config.pluginmanager.register(_LivePlugin(recorder), "target_profiles_live")


def handle(item: pytest.Item) -> Iterator[LiveTargetProfiles]:
    """The fixtures' body in live mode."""
    recorder = item.config.stash[_RECORDER]
    live = LiveTargetProfiles(recorder.config, recorder)
    with recorder.capturing():
        try:
            yield live
        finally:
            live.close()
