"""Screenshots of every dashboard page, for a reviewer's eyes (``make screenshots``).

Starts the standalone server on a free port with a little of everything (tenants, batches in each
state, a refused request, a deviation, a fault), and writes ``<page>.png`` for each page at laptop
width plus ``requests-narrow.png`` at phone width, into the folder given (default docs/screenshots).
"""

from __future__ import annotations

import sys
from pathlib import Path

import requests
from browser_support import CHROMIUM_ARGS, NO_CHROMIUM, chromium_path
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.server import LiveServer

PAGES = ("overview", "requests", "profiles", "batches", "faults")


def populate(url: str, be: MockBackend) -> None:
    """Traffic a sync job might send: batches, single updates (one refused, one with a deviation)."""
    be.configure(lifecycle=Lifecycle.parse("seconds=30,failed=1"))
    be.seed_profile("acme", tnt_id="1700000000000-1.01_00", third_party_id="crm-1001", attributes={"tier": "bronze"})
    rows = "".join(f"crm-{1000 + i},{t},Basel\n" for i, t in enumerate(("gold", "silver", "gold", "bronze")))
    requests.post(f"{url}/m2/acme/v2/profile/batchUpdate", data=f"batch=thirdPartyId,tier,city\n{rows}", timeout=10)
    be.configure("shop", lifecycle=Lifecycle.parse("manual"))
    requests.post(f"{url}/m2/shop/v2/profile/batchUpdate", data=b"batch=pcId,segment\n1700000000000-7,vip\n",
                  timeout=10)
    be.advance(31)
    requests.post(f"{url}/m2/acme/profile/update?mbox3rdPartyId=crm-1001&profile.tier=platinum", timeout=10)
    requests.post(f"{url}/m2/acme/profile/update?mboxPC=1700000000000-1.01_00", timeout=10)
    requests.post(f"{url}/m2/client/profile/update?mbox3rdPartyId=crm-1002&profile.tier=gold", timeout=10)
    requests.get(f"{url}/rest/v1/profiles/thirdPartyId/crm-1001?client=acme", timeout=10)
    be.faults.add("status", status=503, operation="batch-submit", times=2)
    be.faults.add("latency", latency=(0.2, 0.8), operation="fetch", probability=0.5)
    be.clock.freeze()


def main(out: Path) -> int:
    chromium = chromium_path()
    if chromium is None:
        print(f"dashboard screenshots: {NO_CHROMIUM}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    be = MockBackend(MockConfig(client_code="acme"))
    with LiveServer(create_app(be)) as server, sync_playwright() as pw:
        populate(server.url, be)
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for name in PAGES:
            query = "?kind=thirdPartyId&id=crm-1001" if name == "profiles" else ""
            page.goto(f"{server.url}/_mock/ui/{name}{query}")
            if name == "requests":
                page.locator("#journal tbody tr[data-verdict='error'] a").click()
                page.locator("#detail").get_by_text("Fix:").wait_for()
            page.screenshot(path=str(out / f"{name}.png"))
            print(out / f"{name}.png")
        page.set_viewport_size({"width": 400, "height": 800})
        page.goto(f"{server.url}/_mock/ui/requests")
        page.locator("#journal tbody tr").first.wait_for()
        page.screenshot(path=str(out / "requests-narrow.png"), full_page=True)
        print(out / "requests-narrow.png")
        browser.close()
        server.wait_idle()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")))
