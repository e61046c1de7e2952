"""Settings of the fake: server-wide defaults, overridable per tenant (and, for lifecycles, per batch)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from target_profile_mock.contracts.rules import LIMITS

from .lifecycle import Lifecycle

__all__ = ["TENANT_KEYS", "MockConfig", "TenantSettings"]

RowShape = Literal["failed", "all", "none"]


@dataclass
class MockConfig:
    """Everything the fake can be told. Defaults are the standalone server's."""

    client_code: str = "demo"  #: tenant for /m2/client/... when the Host names none
    lifecycle: Lifecycle = field(default_factory=lambda: Lifecycle(mode="seconds", seconds=2.0))
    auth: bool = False  #: require Authorization: Bearer <token> on profile endpoints
    auth_failure_status: int = 401  #: 401 (default) or 403 (the only hint in public client code)
    token_ttl: float | None = 86_400.0  #: seconds a profile API token lives (None: forever)
    bulk_calls_per_minute: int | None = LIMITS.bulk_calls_per_minute  #: None switches it off
    rate_limit_status_polls: bool = False  #: count batch status polls toward the bulk limit
    single_updates_per_day: int | None = LIMITS.single_updates_per_day
    single_rate_status: int = 429  #: answer over the single-update limit (undocumented)
    update_delay: float = 0.0  #: seconds before a single update becomes visible (Adobe: up to an hour)
    profile_lifetime: float | None = 14 * 86_400.0  #: seconds a profile lives without activity (None: forever)
    location_hint: str = "28_0"  #: the location hint of tntIds the Delivery API issues (``<cluster>_<node>``)
    login_sync_delay: float = 0.0  #: seconds before a login connects a thirdPartyId to the visitor (Adobe: 5-10 min)
    status_host: str | None = None  #: host:port for batchStatus URLs (default: as the client reached us)
    status_path: Literal["v1", "versioned"] = "v1"  #: v2 batches' status URL path
    v2_profile_rows: RowShape = "failed"  #: per-row list in v2 status bodies
    batch_retention: float | None = 86_400.0  #: seconds a batch status stays readable
    batch_retention_count: int | None = None  #: keep only the last N batches per tenant (old docs: 10)
    batch_max_bytes: int = LIMITS.batch_max_bytes
    batch_max_rows: int = LIMITS.batch_max_rows
    keep_rows_max: int = 100_000  #: batches up to this many rows keep their rows for inspection
    #: estimated bytes of batch data held across all tenants (rows not yet applied, rows and row ids kept
    #: after); beyond it ended batches' rows are dropped, oldest first, then new batches refused (None: no bound)
    batch_retention_bytes: int | None = 128 * 1024 * 1024
    max_tenants: int | None = 10_000  #: client codes the fake holds at once; a new one beyond it is refused
    journal_size: int | None = 10_000  #: None keeps every request (in-process tests only)
    journal_bytes: int | None = 64 * 1024 * 1024  #: the journal drops its oldest entries beyond this (None: no bound)
    seed: int = 0
    random_tokens: bool = False  #: draw profile API tokens from the OS's random source, not from ``seed``
    control_token: str | None = None  #: when set, /_mock/ requires X-Mock-Token: <token>

    def copy(self, **changes: Any) -> MockConfig:
        return replace(self, **changes)


#: Settings a tenant can override.
TENANT_KEYS = ("lifecycle", "auth", "bulk_calls_per_minute", "single_updates_per_day", "update_delay",
               "v2_profile_rows", "status_path", "profile_lifetime")


@dataclass
class TenantSettings:
    """Per-tenant overrides; None inherits the server's value."""

    lifecycle: Lifecycle | None = None
    auth: bool | None = None
    bulk_calls_per_minute: int | None = None
    single_updates_per_day: int | None = None
    update_delay: float | None = None
    v2_profile_rows: RowShape | None = None
    status_path: Literal["v1", "versioned"] | None = None
    profile_lifetime: float | None = None
    # explicit "switched off" for limits, since None means inherit
    unlimited: set[str] = field(default_factory=set)

    def resolve(self, name: str, config: MockConfig) -> Any:
        if name in self.unlimited:
            return None
        value = getattr(self, name)
        return getattr(config, name) if value is None else value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "unlimited":
                continue
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = v.spec() if isinstance(v, Lifecycle) else v
        for name in self.unlimited:
            out[name] = None
        return out
