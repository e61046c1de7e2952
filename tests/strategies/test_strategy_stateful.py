"""The state machine against the fake, in process (Flask test client) and over a socket (LiveServer)."""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from strategy_support import FlaskDriver
from target_profile_mock.contracts.stateful import MockServerDriver, RequestsDriver, profile_machine
from target_profile_mock.mockserver import create_app
from target_profile_mock.mockserver.server import LiveServer

TestInProcess = profile_machine(FlaskDriver, polls_to_complete=1).TestCase
TestInProcess.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)


def test_machine_over_http_against_the_standalone_server() -> None:
    from strategy_support import fresh_backend

    with LiveServer(create_app(fresh_backend())) as server:
        machine = profile_machine(lambda: MockServerDriver(server.url), polls_to_complete=0)
        run_state_machine_as_test(machine, settings=settings(max_examples=8, stateful_step_count=15, deadline=None))


def test_machine_without_control_checks_what_it_can() -> None:
    """A plain driver (as for a real endpoint): no seeding, no clock; v2 batches still create profiles."""
    from strategy_support import fresh_backend, send

    class Plain:
        def __init__(self) -> None:
            self.http = create_app(fresh_backend()).test_client()

        def send(self, request):  # type: ignore[no-untyped-def]
            return send(self.http, request)

    run_state_machine_as_test(profile_machine(Plain), settings=settings(max_examples=10, stateful_step_count=15,
                                                                         deadline=None))


def test_the_machine_catches_a_fake_that_creates_on_single_update() -> None:
    """The machine is not vacuous: a backend that breaks 'single updates never create' fails it."""
    from strategy_support import fresh_backend

    class Creating(FlaskDriver):
        def __init__(self) -> None:
            super().__init__(fresh_backend())
            tenant_update = self.backend.single_update

            def creating(tenant, kind, profile_id, fallback, attributes):  # type: ignore[no-untyped-def]
                t = self.backend.tenant(tenant)
                if t.profiles.find(kind, profile_id) is None:
                    t.profiles.create(kind, profile_id)
                tenant_update(tenant, kind, profile_id, fallback, attributes)

            self.backend.single_update = creating  # type: ignore[method-assign]

    with pytest.raises(AssertionError):
        run_state_machine_as_test(profile_machine(Creating), settings=settings(
            max_examples=200, deadline=None, database=None, phases=[Phase.generate], report_multiple_bugs=False))


def test_requests_driver_needs_a_url() -> None:
    assert RequestsDriver("http://127.0.0.1:1/").base_url == "http://127.0.0.1:1"



def _login_then_idle(driver_factory) -> None:  # type: ignore[no-untyped-def]
    """One fixed run of the machine's rules: a customer, an anonymous visit, the login, reads, 14 idle days."""
    machine = profile_machine(driver_factory)()
    try:
        machine.seed(("thirdPartyId", "cust-1"), {"tier": "gold"})
        device = machine.visit(None, None, {"tier": "anon", "city": "Oslo"})
        machine.visit(device, "cust-1", {})
        machine.fetch(("thirdPartyId", "cust-1"))
        machine.fetch(device)
        machine.advance(13 * 86_400)
        machine.fetch(device)
        machine.advance(86_400)
        machine.fetch(("thirdPartyId", "cust-1"))
    finally:
        machine.teardown()


def test_the_machine_follows_a_login_and_an_expiry() -> None:
    _login_then_idle(FlaskDriver)


def test_the_machine_catches_a_fake_whose_profiles_never_expire() -> None:
    from strategy_support import fresh_backend

    with pytest.raises(AssertionError):
        _login_then_idle(lambda: FlaskDriver(fresh_backend(profile_lifetime=None)))


def test_the_machine_catches_a_login_where_the_device_wins() -> None:
    from strategy_support import fresh_backend

    class DeviceWins(FlaskDriver):
        def __init__(self) -> None:
            super().__init__(fresh_backend())
            for_tenant = self.backend.tenant

            def tenant(code):  # type: ignore[no-untyped-def]
                t = for_tenant(code)
                store = t.profiles
                merge = type(store).merge

                def device_wins(into, other):  # type: ignore[no-untyped-def]
                    values = dict(other.attrs)
                    merge(store, into, other)
                    into.attrs.update(values)

                store.merge = device_wins  # type: ignore[method-assign]
                return t

            self.backend.tenant = tenant  # type: ignore[method-assign]

    with pytest.raises(AssertionError):
        _login_then_idle(DeviceWins)
