"""The in-process fake without pytest: ``mock_target`` as a context manager and a decorator.

``with mock_target(client_code="acme") as target:`` (or ``@mock_target(...)`` on a function, an
async function or a ``unittest.TestCase`` class) routes ``requests``, httpx and aiohttp calls to
Adobe's hosts into the same Flask app, reset and configured the same way, as the pytest fixture
``target_profiles``, and hands over the same :class:`~target_profile_mock.plugin.handle.TargetProfiles`.
This module imports neither pytest nor, until a block starts, Flask.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import threading
import unittest
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .options import OptionError, Settings

if TYPE_CHECKING:
    from .fake import SessionFake
    from .handle import TargetProfiles

__all__ = ["ContractViolation", "mock_target"]

F = TypeVar("F", bound=Callable[..., Any])

#: Fakes not in use; a block takes one (or builds one) and gives it back when it ends, so a run of
#: thousands of decorated tests builds the Flask app once, and nested or concurrent blocks never share.
_idle: list[SessionFake] = []
_idle_lock = threading.Lock()


class ContractViolation(AssertionError):
    """Raised when a strict block ends: the code under test sent requests that break Adobe's contract."""


@functools.cache
def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class mock_target:  # lower case, as a decorator is named (responses.activate, moto.mock_aws)
    """A fake Adobe Target in process, for unittest, scripts and any test runner.

    Takes the keywords of ``@pytest.mark.target_profiles``: ``client_code``, ``lifecycle``, ``auth``,
    ``strict`` (``"errors"``, ``"deviations"`` or ``"off"``: what makes the block raise
    :class:`ContractViolation` when it ends), ``other_hosts`` (``"passthrough"`` or ``"block"``),
    ``allow``, ``httpx``, ``aiohttp``, ``freeze_clock``, ``fake_sleep``, ``faults``, and any
    ``MockConfig`` setting. As a decorator it passes the handle as the function's last positional
    argument (as ``unittest.mock.patch`` does); on a ``unittest.TestCase`` class it runs around each test,
    from ``setUp`` to the cleanups, with the handle as ``self.target_profiles``.

    Blocks take a fake from a pool and reset it, so the handle reads what its block did until the
    next block starts; nested blocks get fakes of their own.
    """

    def __init__(self, **options: Any) -> None:
        self.settings = _settings(options)
        self._active: list[tuple[SessionFake, TargetProfiles, Callable[[], None]]] = []

    # --- start and stop ---------------------------------------------------------------------------
    def start(self) -> TargetProfiles:
        """Start the fake and patch the HTTP libraries; returns the handle. ``stop()`` undoes it."""
        from .fake import SessionFake
        from .handle import TargetProfiles

        settings = self.settings
        with _idle_lock:
            fake = _idle.pop() if _idle else None
        if fake is None:
            fake = SessionFake.build()
        fake.prepare(settings)
        block = settings.other_hosts == "block"
        interceptor = fake.interceptor(block=block)
        handle = TargetProfiles(fake.backend, fake.app, settings, bridge=fake.bridge,
                                get_responses_mock=lambda: interceptor.mock)
        undo: list[Callable[[], None]] = []
        try:
            interceptor.start()
            undo.append(interceptor.stop)
            if settings.httpx and _has("httpx"):
                patch = fake.httpx_patch(block=block)
                patch.install()
                undo.append(patch.uninstall)
            if settings.aiohttp and _has("aiohttp"):
                from .aiohttp_intercept import aiohttp_patch

                aio = aiohttp_patch(fake, block=block)
                aio.install()
                undo.append(aio.uninstall)
            if settings.fake_sleep:
                handle.fake_sleep()
        except BaseException:
            _undo(undo, handle, fake)
            raise

        def stop() -> None:
            _undo(undo, handle, fake)

        self._active.append((fake, handle, stop))
        return handle

    def stop(self, *, check: bool = True) -> None:
        """Undo the last ``start()``; then, if ``check``, raise :class:`ContractViolation` when the
        strict setting says the requests sent fail the block."""
        if not self._active:
            raise RuntimeError("mock_target.stop() without a start()")
        _, handle, stop = self._active.pop()
        message = _strict_failure(handle) if check else None
        stop()
        if message is not None:
            raise ContractViolation(message)

    @property
    def handle(self) -> TargetProfiles:
        """The handle of the block running now (the innermost, if nested)."""
        if not self._active:
            raise RuntimeError("mock_target is not started")
        return self._active[-1][1]

    # --- context manager --------------------------------------------------------------------------
    def __enter__(self) -> TargetProfiles:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # an exception already on its way out is the more useful report; the verdicts stay on the handle
        self.stop(check=exc_type is None)

    async def __aenter__(self) -> TargetProfiles:
        return self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.stop(check=exc_type is None)

    # --- decorator --------------------------------------------------------------------------------
    def __call__(self, target: F) -> F:
        if isinstance(target, type):
            return self._decorate_class(target)  # type: ignore[return-value]
        if not callable(target):
            raise TypeError(f"@mock_target decorates a function, an async function or a class, not {target!r}")
        fresh = self._fresh

        if inspect.iscoroutinefunction(target):
            @functools.wraps(target)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with fresh() as handle:
                    return await target(*args, handle, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(target)
        def run(*args: Any, **kwargs: Any) -> Any:
            with fresh() as handle:
                return target(*args, handle, **kwargs)

        return run  # type: ignore[return-value]

    def _fresh(self) -> mock_target:
        # each decorated call gets its own activation, so recursion and threads never share one
        again = mock_target.__new__(mock_target)
        again.settings, again._active = self.settings, []
        return again

    def _decorate_class(self, cls: type) -> type:
        if not issubclass(cls, unittest.TestCase):
            for name, value in list(vars(cls).items()):
                if name.startswith("test") and callable(value):
                    setattr(cls, name, self(value))
            return cls
        original = cls.setUp
        fresh = self._fresh

        @functools.wraps(original)
        def setUp(case: unittest.TestCase) -> None:
            active = fresh()
            case.target_profiles = active.start()  # type: ignore[attr-defined]
            # a cleanup runs after tearDown, and a ContractViolation raised there fails the test
            case.addCleanup(active.stop)
            original(case)

        cls.setUp = setUp  # type: ignore[method-assign]
        return cls


#: Parsed settings by their keywords: a block per test would otherwise parse the same ones each time.
_parsed: dict[tuple[tuple[str, Any], ...], Settings] = {}


def _settings(options: dict[str, Any]) -> Settings:
    try:
        key: tuple[tuple[str, Any], ...] | None = tuple(sorted(options.items()))
        found = _parsed.get(key)  # type: ignore[arg-type]
    except TypeError:  # a list or dict among the values: not cached
        key, found = None, None
    if found is not None:
        return found
    try:
        found = Settings().merge(**options)
    except OptionError as exc:
        raise OptionError(f"mock_target: {exc}") from None
    if key is not None and len(_parsed) < 256:
        _parsed[key] = found
    return found


def _undo(undo: list[Callable[[], None]], handle: TargetProfiles, fake: SessionFake) -> None:
    try:
        while undo:
            undo.pop()()
        handle.close()
        fake.bridge.wait_abandoned()
    finally:
        with _idle_lock:
            _idle.append(fake)


def _strict_failure(handle: TargetProfiles) -> str | None:
    strict = handle.strict
    if strict == "off":
        return None
    failing = handle.violations(deviations=strict == "deviations")
    if not failing:
        return None
    what = "that Adobe would refuse" if strict == "errors" else "that {break} Adobe Target's contract"
    return (handle._contract_message(failing, what)
            + "\n\nmock_target's strict check raises when the code under test sent these. If it sends them on "
              "purpose, allow the rule (target.allow('rule.id') or mock_target(allow=[...])) or opt out with "
              "mock_target(strict=False).")
