"""One fake per test session (per xdist worker), reset and configured for each test."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.server import LiveServer

from .options import Settings
from .wsgi import WsgiBridge

if TYPE_CHECKING:
    from target_profile_mock.mockserver.store import Store

    from .intercept import HttpxPatch, RequestsInterceptor
    from .urllib3_route import Urllib3Patch

__all__ = ["SessionFake"]

_LIFECYCLES: dict[str, Lifecycle] = {}
#: How long a test's setup waits for the live server's requests of earlier tests to finish.
SETTLE_TIMEOUT = 30.0


def _lifecycle(spec: str) -> Lifecycle:
    lc = _LIFECYCLES.get(spec)
    if lc is None:
        lc = _LIFECYCLES[spec] = Lifecycle.parse(spec)
    return lc


@dataclass
class SessionFake:
    """A backend and its Flask app built once; ``prepare`` puts them back to a test's starting state."""

    backend: MockBackend
    app: Flask
    bridge: WsgiBridge
    server: LiveServer | None = None
    _baseline: dict[str, Any] = field(default_factory=dict)
    _interceptors: dict[bool, RequestsInterceptor] = field(default_factory=dict)
    _httpx_patches: dict[bool, HttpxPatch] = field(default_factory=dict)
    _urllib3_patch: Urllib3Patch | None = None

    @classmethod
    def build(cls, config: MockConfig | None = None, *, store: Store | None = None) -> SessionFake:
        """A backend (on ``store``, default in memory) and its app; ``close()`` empties and closes a store."""
        backend = MockBackend(config or MockConfig(), store=store)
        app = create_app(backend)
        # only a latency fault makes the fake take wall-clock time over a call
        bridge = WsgiBridge(app, may_stall=lambda: len(backend.faults) > 0)
        return cls(backend, app, bridge, None, dict(vars(backend.config)))

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> SessionFake:
        self.server = LiveServer(self.app, host, port).start()
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.backend.store.shared:  # leave nothing behind in a store others use
            self.backend.store.drop()
            self.backend.store.close()

    def interceptor(self, *, block: bool) -> RequestsInterceptor:
        """The route from ``requests`` into the app, with a fresh ``responses`` mock for a new test."""
        found = self._interceptors.get(block)
        if found is None:
            from .intercept import RequestsInterceptor

            found = self._interceptors[block] = RequestsInterceptor(self.bridge, block=block)
        else:
            found.renew()
        return found

    def httpx_patch(self, *, block: bool) -> HttpxPatch:
        """The patch routing httpx's default transports into the app."""
        found = self._httpx_patches.get(block)
        if found is None:
            from .intercept import HttpxPatch

            found = self._httpx_patches[block] = HttpxPatch(self.bridge, block=block)
        return found

    def urllib3_patch(self) -> Urllib3Patch:
        """The patch routing urllib3's connection pools (Adobe's Python SDK uses them) into the app."""
        if self._urllib3_patch is None:
            from .urllib3_route import Urllib3Patch

            self._urllib3_patch = Urllib3Patch(self.bridge)
        return self._urllib3_patch

    def prepare(self, settings: Settings) -> None:
        """Forget everything and apply ``settings``: cheap, since nothing is rebuilt."""
        self.bridge.wait_abandoned()
        if self.server is not None and not self.server.wait_idle(SETTLE_TIMEOUT):
            warnings.warn(f"target_profile_server: a request of an earlier test was still running after "
                          f"{SETTLE_TIMEOUT:g} s; it may change this test's fake (a latency fault longer than "
                          "that?)", RuntimeWarning, stacklevel=2)
        be = self.backend
        cfg = be.config
        # a test may have changed server-wide settings; restore them in place (tenants hold this object)
        vars(cfg).update(self._baseline)
        be.reset()
        if be.journal.maxlen != cfg.journal_size or be.journal.max_bytes != cfg.journal_bytes:
            be.journal = be.store.journal(cfg.journal_size, cfg.journal_bytes)
        clock = be.clock
        clock.restart()
        cfg.client_code = settings.client_code
        cfg.lifecycle = _lifecycle(settings.lifecycle)
        cfg.auth = settings.auth
        if settings.config:
            be.configure(None, **dict(settings.config))
            be.faults.seed = cfg.seed  # a marker's seed= seeds the test's faults too
        # reset() emptied the fault queue and restarted its rule ids (and so the draws of unseeded
        # rules), so a test meets the same faults whichever tests ran before it
        if settings.faults:
            be.faults.load(list(settings.faults))
        if settings.freeze_clock:
            clock.freeze()
