"""The pytest plugin ``target_profiles``: options, the marker, the fixtures and the strict check.

Fixtures come in layers:

* settings: the defaults from ini / command line, merged with the ``@pytest.mark.target_profiles(...)``
  marker (``settings_for``);
* ``target_profiles_fake`` / ``target_profile_server_fake`` (per session, so per xdist worker): one
  backend and Flask app, the latter served by a live server on a free port (``target_profile_server_address``
  picks another); the in-process one is kept in the config's stash, so ``target_profiles`` needs no
  fixture argument;
* ``target_profiles`` / ``target_profile_server`` (per test): the fake reset and configured, handed
  over as a :class:`~target_profile_mock.plugin.handle.TargetProfiles`.

Heavy imports (Flask, the fake) wait until a fixture is used, so having the plugin installed costs
test runs that do not use it nothing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

import pytest

from .options import MARKER_KEYS, OTHER_HOSTS, STRICT, OptionError, Settings

if TYPE_CHECKING:
    from .fake import SessionFake
    from .handle import TargetProfiles

_DEFAULTS = pytest.StashKey[Settings]()
_HANDLES = pytest.StashKey[list["TargetProfiles"]]()
_NOTES = pytest.StashKey[list[tuple[str, str]]]()

#: (ini name, command-line flag, Settings field, help)
_OPTIONS = (
    ("target_profiles_client_code", "--target-profiles-client-code", "client_code",
     "client code (tenant) the fixtures default to [demo]"),
    ("target_profiles_lifecycle", "--target-profiles-lifecycle", "lifecycle",
     "how batches progress, e.g. polls=1 (default), immediate, seconds=5, manual, polls=2,stuck"),
    ("target_profiles_auth", "--target-profiles-auth", "auth",
     "require the profile API token on the profile APIs: true or false [false]"),
    ("target_profiles_strict", "--target-profiles-strict", "strict",
     f"what fails a test at its end: {', '.join(STRICT)} [errors]"),
    ("target_profiles_other_hosts", "--target-profiles-other-hosts", "other_hosts",
     f"requests to hosts other than Adobe's in the in-process fixture: {', '.join(OTHER_HOSTS)} [passthrough]"),
    ("target_profiles_httpx", "--target-profiles-httpx", "httpx",
     "route httpx's default transports to the in-process fake too: true or false [true]"),
    ("target_profiles_aiohttp", "--target-profiles-aiohttp", "aiohttp",
     "route aiohttp's connections to Adobe's hosts to the in-process fake too: true or false [true]"),
)


_STORE_HELP = ("where target_profile_server keeps its state: memory:// (default) or redis://HOST:PORT/DB, "
               "under a key prefix of its own per session")
_STORE = pytest.StashKey["str | None"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("target_profiles", "target-profile-mock: a fake Adobe Target Profile API")
    for ini, flag, dest, help_text in _OPTIONS:
        parser.addini(ini, help_text, default=None)
        group.addoption(flag, dest=f"target_profiles_{dest}", default=None, metavar="VALUE", help=help_text)
    parser.addini("target_profiles_store", _STORE_HELP, default=None)
    group.addoption("--target-profiles-store", dest="target_profiles_store", default=None, metavar="URL",
                    help=_STORE_HELP)
    group.addoption("--target-profiles-live", dest="target_profiles_live", action="store_true", default=False,
                    help="run the tests marked target_profiles(verified=True) against the real Target configured "
                         "by the TARGET_PROFILES_LIVE_* environment variables, and deselect the others")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "target_profiles(client_code=, lifecycle=, auth=, strict=, other_hosts=, allow=, freeze_clock=, "
        "fake_sleep=, httpx=, aiohttp=, faults=, **settings): configure the target_profiles / "
        "target_profile_server fake for one test",
    )
    given: dict[str, Any] = {}
    for ini, flag, dest, _ in _OPTIONS:
        value = config.getoption(f"target_profiles_{dest}")
        source = flag
        if value is None:
            value, source = config.getini(ini), ini
        if value not in (None, ""):
            given[dest] = value
            try:
                Settings().merge(**{dest: value})
            except OptionError as exc:
                raise pytest.UsageError(f"{source}: {exc}") from None
    config.stash[_DEFAULTS] = Settings().merge(**given)
    config.stash[_STORE] = _store_option(config)
    notes: list[tuple[str, str]] = []
    config.stash[_NOTES] = notes
    config.pluginmanager.register(_Notes(notes), "target_profiles_notes")
    if config.getoption("target_profiles_live", False):
        from . import live

        live.configure(config)


def _store_option(config: pytest.Config) -> str | None:
    """The live server's store URL from the command line or ini, checked (None: in memory)."""
    value, source = config.getoption("target_profiles_store"), "--target-profiles-store"
    if value is None:
        value, source = config.getini("target_profiles_store"), "target_profiles_store"
    if not value:
        return None
    from target_profile_mock.mockserver.cli import parse_store_url

    try:
        return parse_store_url(str(value))
    except ValueError as exc:
        raise pytest.UsageError(f"{source}: {exc}") from None


# --- settings ---------------------------------------------------------------------------------------
def settings_for(item: pytest.Item) -> Settings:
    """A test's settings: ini / command-line defaults, then its markers' keywords (the closest wins).

    A plain function, not a fixture: each fixture costs pytest ~0.2 ms per test, a fifth of the budget.
    """
    settings = item.config.stash[_DEFAULTS]
    marks = list(item.iter_markers("target_profiles"))
    if not marks:
        return settings
    kwargs: dict[str, Any] = {}
    for mark in reversed(marks):  # module, then class, then function
        if mark.args:
            pytest.fail(f"@pytest.mark.target_profiles takes keywords only ({', '.join(MARKER_KEYS)}, or a "
                        f"setting of the fake), not {mark.args!r}", pytrace=False)
        kwargs.update(mark.kwargs)
    try:
        return settings.merge(**kwargs)
    except OptionError as exc:
        problem = str(exc)
    pytest.fail(f"@pytest.mark.target_profiles: {problem}", pytrace=False)


# --- session-wide fakes -----------------------------------------------------------------------------
_IN_PROCESS = pytest.StashKey["SessionFake"]()


def _in_process_fake(config: pytest.Config) -> SessionFake:
    fake = config.stash.get(_IN_PROCESS, None)
    if fake is None:
        from .fake import SessionFake

        fake = config.stash[_IN_PROCESS] = SessionFake.build()
    return fake


@pytest.fixture(scope="session")
def target_profiles_fake(pytestconfig: pytest.Config) -> SessionFake:
    """The in-process fake's backend and Flask app, built once per session (per xdist worker): the one
    ``target_profiles`` resets and hands over for each test."""
    return _in_process_fake(pytestconfig)


@pytest.fixture(scope="session")
def target_profile_server_address() -> tuple[str, int]:
    """Where the live server listens; port 0 picks a free port (override in a conftest.py)."""
    return "127.0.0.1", 0


@pytest.fixture(scope="session")
def target_profile_server_fake(target_profile_server_address: tuple[str, int],
                               pytestconfig: pytest.Config) -> Iterator[SessionFake]:
    """A separate backend and app served over HTTP from a background thread, once per session; on the
    store ``--target-profiles-store`` names, under a key prefix of this session's own."""
    from .fake import SessionFake

    url = pytestconfig.stash.get(_STORE, None)
    store = None
    if url is not None:
        import os
        import socket

        from target_profile_mock.mockserver.errors import ControlError
        from target_profile_mock.mockserver.store import open_store

        # per session (and so per xdist worker): each resets its fake for every test
        prefix = f"tpm-pytest-{socket.gethostname()}-{os.getpid()}"
        try:
            store = open_store(url, prefix=prefix)
        except ControlError as exc:
            pytest.fail(f"target_profile_server: {exc}", pytrace=False)
    fake = SessionFake.build(store=store).serve(*target_profile_server_address)
    yield fake
    fake.close()


# --- per-test handles -------------------------------------------------------------------------------
@cache
def _has_httpx() -> bool:
    return importlib.util.find_spec("httpx") is not None


@cache
def _has_aiohttp() -> bool:
    return importlib.util.find_spec("aiohttp") is not None


#: The tests being run, innermost last (a nested in-process pytest run pushes its own).
_running: list[pytest.Item] = []


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    # The fixtures find their test here instead of requesting ``request``: pytest builds a fixture
    # definition for ``request`` on every use, about 0.1 ms per test, a third of a bare responses stub.
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


def _current_test(fixture: str) -> pytest.Item:
    if not _running:
        raise RuntimeError(f"{fixture} is set up outside a running test (pytest_runtest_protocol was bypassed)")
    return _running[-1]


@cache
def _handle_class() -> type[TargetProfiles]:
    # imported on first use (it pulls in Flask), then looked up once: an import statement in the
    # fixture costs a few microseconds per test
    from .handle import TargetProfiles

    return TargetProfiles


def _track(item: pytest.Item, handle: TargetProfiles) -> None:
    handles = item.stash.get(_HANDLES, None)
    if handles is None:
        handles = item.stash[_HANDLES] = []
    handles.append(handle)


@pytest.fixture
def target_profiles() -> Iterator[TargetProfiles]:
    """A fake Adobe Target in process: every ``requests`` (and httpx) call to ``*.tt.omtrdc.net`` and to the
    ``mc.adobe.io`` token route is answered by the fake's Flask app, without a socket."""
    # No fixture arguments: each one costs pytest more per test than the whole reset. The session's
    # fake lives in the config's stash (so one per xdist worker), as target_profiles_fake returns it.
    item = _current_test("target_profiles")
    if item.config.getoption("target_profiles_live", False):
        from . import live

        yield from live.handle(item)  # type: ignore[misc]
        return
    TargetProfiles = _handle_class()
    settings = settings_for(item)
    fake = _in_process_fake(item.config)
    fake.prepare(settings)
    block = settings.other_hosts == "block"
    interceptor = fake.interceptor(block=block)
    # the mock is handed over only when the test asks for it: one nobody touched serves the next test too
    handle = TargetProfiles(fake.backend, fake.app, settings, bridge=fake.bridge,
                            get_responses_mock=lambda: interceptor.mock, reset=lambda: fake.prepare(settings))
    patch = fake.httpx_patch(block=block) if settings.httpx and _has_httpx() else None
    aio = None
    if settings.aiohttp and _has_aiohttp():
        from .aiohttp_intercept import aiohttp_patch

        aio = aiohttp_patch(fake, block=block)
    urllib3_patch = fake.urllib3_patch()
    interceptor.start()
    try:
        urllib3_patch.install()
        if patch is not None:
            patch.install()
        if aio is not None:
            aio.install()
        if settings.fake_sleep:
            handle.fake_sleep()
        _track(item, handle)
        yield handle
    finally:
        interceptor.stop()
        urllib3_patch.uninstall()
        if patch is not None:
            patch.uninstall()
        if aio is not None:
            aio.uninstall()
        handle.close()
        fake.bridge.wait_abandoned()  # calls a client gave up on (read timeouts) finish within their test


@pytest.fixture
def target_profile_server(target_profile_server_fake: SessionFake) -> Iterator[TargetProfiles]:
    """A fake Adobe Target on a real socket (``.url``), for clients in other processes or languages.
    The server lives for the session; its state is reset for each test."""
    item = _current_test("target_profile_server")
    if item.config.getoption("target_profiles_live", False):
        from . import live

        yield from live.handle(item)  # type: ignore[misc]
        return
    TargetProfiles = _handle_class()
    settings = settings_for(item)
    fake = target_profile_server_fake
    assert fake.server is not None
    fake.prepare(settings)
    handle = TargetProfiles(fake.backend, fake.app, settings, url=fake.server.url, bridge=fake.bridge,
                            reset=lambda: fake.prepare(settings))
    try:
        if settings.fake_sleep:
            handle.fake_sleep()
        _track(item, handle)
        yield handle
    finally:
        handle.close()


# --- strict check, contract reports and deviation notes ---------------------------------------------
_SUMMARY = pytest.StashKey[str]()
#: The report attribute carrying a test's deviation summary: set where the test ran (an xdist worker
#: too), it travels with the serialised report, and the summary is gathered where reports are logged.
_REPORT_ATTR = "target_profiles_deviations"
#: How the strict check's failure message starts.
_STRICT_HEAD = "The code under test sent "


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    # Checked at the end of the call phase, not in fixture teardown: the test is reported as failed
    # (with this message), not as an error in teardown.
    try:
        result = yield
    except (Exception, pytest.fail.Exception) as exc:
        # the test failed on its own: what the fake refused or doubted may be why, so show it (unless
        # the failure is already the contract report, from an example() block)
        if not str(exc).startswith(_STRICT_HEAD):
            _explain_failure(item)
        raise
    handles = item.stash.get(_HANDLES, None)
    if handles:
        _warn_if_examples_share_state(item, handles)
        flagged = [h for h in handles if h.broke_any_rule()]
        for handle in flagged:
            message = handle.strict_failure()
            if message is not None:
                _note_deviations(item, flagged)
                pytest.fail(message, pytrace=False)
        if flagged:
            _note_deviations(item, flagged, section=True)
    return result


def _explain_failure(item: pytest.Item) -> None:
    handles = item.stash.get(_HANDLES, None)
    if not handles:
        return
    flagged = [h for h in handles if h.broke_any_rule()]
    found = [pair for h in flagged for pair in h.violations()]
    if not found:
        return
    from .report import contract_report

    refused = sum(1 for _, vs in found if any(v.rule.is_error for v in vs))
    head = (f"The fake refused {refused} request(s) in this test" if refused else
            "The fake accepted these requests, but Adobe does not document them")
    item.add_report_section("call", "target-profiles contract report",
                            f"{head}; the failure may come from them:\n\n{contract_report(found)}")
    _note_deviations(item, flagged)


def _note_deviations(item: pytest.Item, handles: list[TargetProfiles], *, section: bool = False) -> None:
    from .report import contract_report, deviation_summary

    found = [pair for h in handles for pair in h.violations(errors=False)]
    if found:
        if section:
            item.add_report_section("call", "target-profiles deviations", contract_report(found))
        item.stash[_SUMMARY] = deviation_summary(found)


def _warn_if_examples_share_state(item: pytest.Item, handles: list[TargetProfiles]) -> None:
    # A @given test whose examples never reset the fake sees each other's profiles, batches and requests.
    if not getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
        return
    if any(h.examples == 0 and len(h.journal) for h in handles):
        import warnings

        warnings.warn(pytest.PytestWarning(
            f"{item.nodeid}: a @given test used the fake without target_profiles.example(): its examples share "
            "one fake (profiles, batches, requests, faults). Wrap the test's body in "
            "`with target_profiles.example():` to start each example afresh."), stacklevel=1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report = yield
    summary = item.stash.get(_SUMMARY, None) if call.when == "call" else None
    if summary:
        setattr(report, _REPORT_ATTR, summary)
    return report


class _Notes:
    """Gathers the deviation summaries where reports are logged: in the only process, or on the xdist
    controller from the workers' reports, which carry the attribute across."""

    def __init__(self, notes: list[tuple[str, str]]) -> None:
        self.notes = notes

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        summary = getattr(report, _REPORT_ATTR, None)
        if summary:
            self.notes.append((report.nodeid, summary))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    notes = config.stash.get(_NOTES, None)
    if not notes:
        return
    terminalreporter.section("target-profiles: contract deviations")
    for nodeid, summary in notes:
        terminalreporter.line(f"{nodeid}: {summary}")
    terminalreporter.line("These requests work against the fake, but Adobe does not document them. See the details "
                          "with -rP, or fail on them with strict='deviations'.")
