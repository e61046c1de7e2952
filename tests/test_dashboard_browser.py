"""The dashboard in a real browser (headless Chromium) against the standalone server on a real socket.

One browser for the module; each test gets a fresh page and a reset fake. The tests skip only when
no Chromium binary exists (``.ci/run`` installs one).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from browser_support import CHROMIUM_ARGS, NO_CHROMIUM, chromium_path
from target_profile_mock.contracts.rules import rule
from target_profile_mock.contracts.xmlbodies import parse_batch_status, parse_response
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.server import LiveServer

CHROMIUM = chromium_path()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)]

TOKEN = "s3cret-token"
BATCH = b"batch=pcId,tier\n1700000000000-1.01_00,gold\n1700000000000-2.01_00,silver\n"
TIMEOUT = 10_000  # ms: generous for a loaded 2-core machine; a passing test waits far less


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[LiveServer, MockBackend]]:
    be = MockBackend(MockConfig(lifecycle=Lifecycle.parse("manual")))
    with LiveServer(create_app(be)) as server:
        yield server, be


@pytest.fixture
def fake(live: tuple[LiveServer, MockBackend]) -> Iterator[tuple[str, MockBackend]]:
    server, be = live
    be.reset()
    be.configure(lifecycle=Lifecycle.parse("manual"))
    yield server.url, be


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"the page's script failed: {errors}"


def test_a_batch_submitted_over_http_shows_up_live_and_on_the_batches_page(fake, page):
    url, _ = fake
    page.goto(f"{url}/_mock/ui/requests")
    page.wait_for_selector("text=Live:")
    r = requests.post(f"{url}/m2/acme/v2/profile/batchUpdate", data=BATCH, timeout=10)
    batch_id = parse_response(r.content)["batchStatus"].split("batchId=")[1]
    row = page.locator("#journal tbody tr", has_text="batch-submit")
    row.wait_for()  # no reload: the stream brought it
    assert "acme" in row.inner_text() and "200" in row.inner_text()
    page.goto(f"{url}/_mock/ui/batches")
    batch_row = page.locator(f"tr[data-batch='{batch_id}']")
    assert batch_row.locator("[data-status]").inner_text() == "incomplete"
    assert "manual" in batch_row.inner_text()
    # the batch's own requests: its submission and its status polls, nothing else
    requests.get(parse_response(r.content)["batchStatus"], timeout=10)
    requests.post(f"{url}/m2/acme/profile/update?mbox3rdPartyId=c1&profile.tier=gold", timeout=10)
    batch_row.get_by_role("link", name="Requests").click()
    page.locator("#journal tbody tr", has_text="single-update").wait_for(state="attached")
    shown = page.locator("#journal tbody tr:visible")
    assert sorted(" ".join(t.split()[2:4]) for t in shown.all_inner_texts()) == ["acme batch-status",
                                                                                 "acme batch-submit"]


def test_forcing_a_batch_complete_from_the_page_changes_what_a_polling_client_sees(fake, page):
    url, _ = fake
    r = requests.post(f"{url}/m2/acme/v2/profile/batchUpdate", data=BATCH, timeout=10)
    status_url = parse_response(r.content)["batchStatus"]
    assert parse_batch_status(requests.get(status_url, timeout=10).content).status == "incomplete"
    batch_id = status_url.split("batchId=")[1]
    page.goto(f"{url}/_mock/ui/batches")
    # by keyboard alone: Tab from the top of the page to the button, then Enter
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Force complete":
            break
    else:
        pytest.fail("Tab never reached the Force complete button")
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelector(\"tr[data-batch='{batch_id}'] [data-status]\")"
                           ".textContent === 'complete'")
    polled = parse_batch_status(requests.get(status_url, timeout=10).content)
    assert polled.status == "complete" and polled.batch_size == 2


def test_advancing_the_clock_to_the_next_change_ends_a_time_based_batch(fake, page):
    url, be = fake
    be.clock.freeze()
    be.configure(lifecycle=Lifecycle.parse("seconds=120"))
    r = requests.post(f"{url}/m2/acme/v2/profile/batchUpdate", data=BATCH, timeout=10)
    status_url = parse_response(r.content)["batchStatus"]
    page.goto(f"{url}/_mock/ui/batches")
    page.get_by_role("button", name=re.compile("Advance the clock to the next change")).click()
    page.wait_for_selector("text=ended")
    assert parse_batch_status(requests.get(status_url, timeout=10).content).status == "complete"
    assert 120 <= be.clock.now() - be.batches("acme")[0]["submittedAt"] / 1000 < 121


def test_a_refused_request_shows_its_rule_what_adobe_documents_and_the_fix(fake, page):
    url, _ = fake
    page.goto(f"{url}/_mock/ui/requests")
    page.wait_for_selector("text=Live:")
    r = requests.post(f"{url}/m2/acme/profile/update?mboxPC=1700000000000-1.01_00", timeout=10)
    assert r.status_code == 400
    row = page.locator("#journal tbody tr[data-verdict='error']")
    row.wait_for()
    assert "single.no-attributes" in row.inner_text()
    requests.post(f"{url}/m2/shop/profile/update?mbox3rdPartyId=c1&profile.tier=gold", timeout=10)
    other = page.locator("#journal tbody tr", has_text="shop")
    other.wait_for()
    page.get_by_label("Verdict").select_option("clean")
    assert row.is_hidden() and other.is_visible()  # the filters hide what does not match
    page.get_by_label("Verdict").select_option("")
    page.get_by_label("Status").fill("4")
    assert row.is_visible() and other.is_hidden()
    page.get_by_label("Status").fill("")
    page.get_by_label("Tenant").select_option("shop")  # a tenant first seen after the page loaded
    assert row.is_hidden() and other.is_visible()
    page.get_by_label("Tenant").select_option("")
    page.get_by_label("Operation").select_option("fetch")
    assert row.is_hidden() and other.is_hidden()
    page.get_by_label("Operation").select_option("single-update")
    row.get_by_role("link").click()
    detail = page.locator("#detail")
    detail.get_by_text("Fix:").wait_for()
    text = detail.inner_text()
    broken = rule("single.no-attributes")
    assert broken.id in text and broken.documented in text and broken.fix in text
    assert "curl -X POST" in text and "mboxPC=1700000000000-1.01_00" in text


def test_a_fault_added_from_the_form_is_hit_by_the_next_call_then_removed_and_cleared(fake, page):
    url, be = fake
    page.goto(f"{url}/_mock/ui/faults")
    page.get_by_label("Kind").select_option("status")
    page.get_by_label("Status (status, empty, malformed)").fill("503")
    page.get_by_label("Operation").select_option("single-update")
    page.get_by_label("Times").fill("1")
    page.get_by_role("button", name="Queue the fault").click()
    page.locator("tr[data-fault]").wait_for()
    assert [(f["kind"], f["status"], f["times"]) for f in be.faults.list()] == [("status", 503, 1)]
    hit = requests.post(f"{url}/m2/acme/profile/update?mbox3rdPartyId=c1&profile.tier=gold", timeout=10)
    assert hit.status_code == 503
    after = requests.post(f"{url}/m2/acme/profile/update?mbox3rdPartyId=c1&profile.tier=gold", timeout=10)
    assert after.status_code == 200  # times=1: used up
    # a bad fault is refused with the control API's message, and nothing is queued
    page.reload()
    page.get_by_label("Kind").select_option("status")
    page.get_by_role("button", name="Queue the fault").click()
    page.locator("#status.error").wait_for()
    assert "status" in page.locator("#status").inner_text() and be.faults.list() == []
    # remove one, then clear the rest (after confirming)
    be.faults.load([{"kind": "latency", "latency": 0.01}, {"kind": "status", "status": 500}])
    page.reload()
    first = be.faults.list()[0]["id"]
    page.get_by_role("button", name=f"Remove fault {first}").click()
    page.wait_for_function(f"!document.querySelector(\"tr[data-fault='{first}']\")")
    assert [f["kind"] for f in be.faults.list()] == ["status"]
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Clear all").click()
    page.get_by_text("No fault queued").wait_for()
    assert be.faults.list() == []


def test_overview_profiles_and_clock_controls(fake, page):
    url, be = fake
    be.clock.freeze(1_700_000_000)
    be.seed_profile("acme", tnt_id="1700000000000-1.01_00", attributes={"tier": "bronze"})
    requests.post(f"{url}/m2/acme/profile/update?mboxPC=1700000000000-1.01_00&profile.tier=gold", timeout=10)
    page.goto(f"{url}/_mock/ui/")
    acme = page.locator("tr[data-tenant='acme']")
    assert re.search(r"acme\s+1\s+0 / 0 / 0\s+1\s", acme.inner_text())
    page.get_by_label("Advance by (seconds)").fill("90")
    page.get_by_role("button", name="Advance", exact=True).click()
    page.wait_for_selector("text=1700000090")
    assert be.clock.now() == 1_700_000_090
    page.get_by_role("button", name="Let time run").click()
    page.get_by_role("button", name="Freeze").wait_for()
    assert not be.clock.frozen
    # search without the location hint; the attribute's writer links to its request
    page.goto(f"{url}/_mock/ui/profiles")
    page.get_by_label("Id value").fill("1700000000000-1")
    page.get_by_role("button", name="Search").click()
    seq = be.journal.entries()[0].seq  # journal numbers run on across resets
    cell = page.locator("section.profile tr", has_text="tier")
    assert "gold" in cell.inner_text() and f"request #{seq}" in cell.inner_text()
    cell.get_by_role("link", name=f"request #{seq}").click()
    page.locator("#detail").get_by_text(f"Request #{seq}").wait_for()


def test_with_a_control_token_the_page_asks_for_it_and_then_works(browser):
    be = MockBackend(MockConfig(control_token=TOKEN, lifecycle=Lifecycle.parse("manual")))
    with LiveServer(create_app(be)) as server:
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT)
        page = context.new_page()
        try:
            refused = page.goto(f"{server.url}/_mock/ui/batches")
            assert refused.status == 401 and "locked" in page.inner_text("h1")
            page.get_by_label("Control token").fill("wrong")
            page.get_by_role("button", name="Open the dashboard").click()
            assert "not the server's control token" in page.inner_text("[role=alert]")
            page.get_by_label("Control token").fill(TOKEN)
            page.get_by_role("button", name="Open the dashboard").click()
            page.wait_for_url(re.compile(r"/_mock/ui/batches$"))
            # the page's script sends the token to the control API: the stream and a change work
            r = requests.post(f"{server.url}/m2/acme/v2/profile/batchUpdate", data=BATCH, timeout=10)
            batch_id = parse_response(r.content)["batchStatus"].split("batchId=")[1]
            page.goto(f"{server.url}/_mock/ui/requests")
            page.locator("#journal tbody tr", has_text="batch-submit").wait_for()
            page.goto(f"{server.url}/_mock/ui/batches")
            page.get_by_role("button", name="Force stuck").click()
            page.wait_for_selector("[data-status]:text-is('stuck')")
            assert be.batch(batch_id)["status"] == "stuck"
            # forgetting the token locks the pages again
            page.get_by_role("button", name="Forget token").click()
            assert "locked" in page.inner_text("h1")
            # a link with ?token= opens them once and leaves no token in the address bar
            page.goto(f"{server.url}/_mock/ui/faults?token={TOKEN}")
            assert page.url == f"{server.url}/_mock/ui/faults" and page.inner_text("h1") == "Faults"
        finally:
            context.close()


def test_every_page_fits_a_narrow_window(fake, page):
    url, be = fake
    requests.post(f"{url}/m2/acme/v2/profile/batchUpdate", data=BATCH, timeout=10)
    be.faults.add("status", status=503, operation="batch-submit", times=2)
    page.set_viewport_size({"width": 400, "height": 800})
    for name in ("overview", "requests", "profiles?id=1700000000000-1", "batches", "faults"):
        page.goto(f"{url}/_mock/ui/{name}")
        # wide tables scroll inside their own box; the page itself never scrolls sideways
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), name
