"""The plugin's settings: defaults from ini and command line, overridden per test by the marker.

This module imports neither Flask nor the fake, so registering the plugin costs nothing until a
fixture is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

__all__ = ["MARKER_KEYS", "OTHER_HOSTS", "STRICT", "OptionError", "Settings", "parse_bool", "parse_strict"]

Strict = Literal["errors", "deviations", "off"]
OtherHosts = Literal["passthrough", "block"]
STRICT: tuple[Strict, ...] = ("errors", "deviations", "off")
OTHER_HOSTS: tuple[OtherHosts, ...] = ("passthrough", "block")


class OptionError(ValueError):
    """A setting that cannot be used; the message names it and what would work."""


@dataclass(frozen=True)
class Settings:
    """How the fixtures set up the fake for one test."""

    client_code: str = "demo"  #: tenant for /m2/client/... paths and the handle's default tenant
    lifecycle: str = "polls=1"  #: batches answer incomplete to the first status poll, complete to the next
    auth: bool = False  #: require Authorization: Bearer <token> on the profile APIs
    strict: Strict = "errors"  #: what fails a test at its end: contract errors, also deviations, or nothing
    other_hosts: OtherHosts = "passthrough"  #: requests to other hosts go out (passthrough) or fail (block)
    httpx: bool = True  #: also route httpx's default transports to the fake
    aiohttp: bool = True  #: also route aiohttp's connections to Adobe's hosts to the fake (if installed)
    freeze_clock: bool = False  #: stop the fake's clock; it then moves only by ``advance``
    fake_sleep: bool = False  #: ``time.sleep`` advances the fake's clock instead of sleeping
    allow: tuple[str, ...] = ()  #: rule ids the strict check ignores
    faults: tuple[Any, ...] = ()  #: fault rules queued at the start of the test (the --fault-profile format)
    verified: bool = False  #: the test describes documented Adobe behaviour: --target-profiles-live runs it
    config: tuple[tuple[str, Any], ...] = field(default=())  #: further MockConfig settings

    def merge(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (validated; unknown keys go to ``config``)."""
        own = {f.name for f in fields(self)} - {"config"}
        direct = {k: v for k, v in changes.items() if k in own}
        extra = {k: v for k, v in changes.items() if k not in own}
        if "client_code" in direct:
            direct["client_code"] = _client_code(direct["client_code"])
        if "lifecycle" in direct:
            direct["lifecycle"] = _lifecycle(direct["lifecycle"])
        for name in ("auth", "httpx", "aiohttp", "freeze_clock", "fake_sleep", "verified"):
            if name in direct:
                direct[name] = parse_bool(direct[name], name)
        if "strict" in direct:
            direct["strict"] = parse_strict(direct["strict"])
        if "other_hosts" in direct:
            direct["other_hosts"] = _other_hosts(direct["other_hosts"])
        if "allow" in direct:
            direct["allow"] = _allow(direct["allow"])
        if "faults" in direct:
            direct["faults"] = _faults(direct["faults"])
        if extra:
            _check_config_keys(extra)
            direct["config"] = tuple({**dict(self.config), **extra}.items())
        return replace(self, **direct)


#: Marker keywords besides the MockConfig settings.
MARKER_KEYS = tuple(f.name for f in fields(Settings) if f.name != "config")


def parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise OptionError(f"{name}={value!r}: use true or false")


def parse_strict(value: Any) -> Strict:
    """``True``/``"errors"``, ``"deviations"``, or ``False``/``"off"``."""
    if value is True:
        return "errors"
    if value is False or value is None:
        return "off"
    text = str(value).strip().lower()
    aliases = {"true": "errors", "on": "errors", "error": "errors", "false": "off", "none": "off",
               "deviation": "deviations", "all": "deviations"}
    text = aliases.get(text, text)
    if text not in STRICT:
        raise OptionError(f"strict={value!r}: use 'errors' (or True), 'deviations', or 'off' (or False)")
    return text  # type: ignore[return-value]


def _other_hosts(value: Any) -> OtherHosts:
    text = str(value).strip().lower()
    if text not in OTHER_HOSTS:
        raise OptionError(f"other_hosts={value!r}: use 'passthrough' or 'block'")
    return text  # type: ignore[return-value]


def _client_code(value: Any) -> str:
    if not isinstance(value, str) or not value or not value.replace("-", "").replace("_", "").isalnum():
        raise OptionError(f"client_code={value!r}: give a client code such as 'acme' (letters, digits, - and _)")
    return value


def _lifecycle(value: Any) -> str:
    from target_profile_mock.mockserver.lifecycle import Lifecycle, LifecycleError

    if isinstance(value, Lifecycle):
        return value.spec()
    try:
        return Lifecycle.parse(str(value)).spec()
    except LifecycleError as exc:
        raise OptionError(f"lifecycle={value!r}: {exc}") from None


def _allow(value: Any) -> tuple[str, ...]:
    from target_profile_mock.contracts.rules import RULES

    items = (value,) if isinstance(value, str) else tuple(value)
    unknown = [r for r in items if r not in RULES]
    if unknown:
        raise OptionError(f"allow={list(items)!r}: no rule(s) {unknown}; known rules: {', '.join(sorted(RULES))}")
    return items


def _faults(value: Any) -> tuple[Any, ...]:
    """A fault profile (a fault object, a list of them, or ``{"faults": [...]}``), checked now so a
    mistake fails the test that carries it with the fake's own message."""
    from target_profile_mock.mockserver.backend import ControlError
    from target_profile_mock.mockserver.faults import FaultInjector

    if isinstance(value, dict) and set(value) == {"faults"}:
        value = value["faults"]
    items = (value,) if isinstance(value, dict) else tuple(value) if isinstance(value, (list, tuple)) else None
    if items is None:
        raise OptionError(f"faults={value!r}: give a list of fault objects, e.g. "
                          "[{'kind': 'status', 'status': 503, 'operation': 'batch-submit', 'times': 1}]")
    try:
        FaultInjector().load(list(items))
    except ControlError as exc:
        raise OptionError(f"faults: {exc}") from None
    return items


def _check_config_keys(extra: dict[str, Any]) -> None:
    from target_profile_mock.mockserver.config import MockConfig

    known = {f.name for f in fields(MockConfig)} - {"client_code", "lifecycle", "auth", "control_token"}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise OptionError(f"unknown setting(s) {unknown}; the marker takes {', '.join(MARKER_KEYS)} "
                          f"and the fake's settings {', '.join(sorted(known))}")
