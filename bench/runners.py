"""Figures 7-9: the other ways in (run on purpose: ``python bench/runners.py``).

7. ``mock_target`` per block: a ``with mock_target(...)`` block making one single update with
   ``requests``, against a bare ``responses.RequestsMock`` block with a static stub for the same URL
   (what ``@responses.activate`` does per test). Target: at most 1.0x.
8. aiohttp in process, per call: a single update through ``aiohttp.ClientSession`` answered by the fake
   with no socket, against the same call to the same app served by waitress on loopback (what an
   aiohttp user does without the in-process route). Target: at most 1.0x.
9. ``serve --tls``, per request on a keep-alive connection: a single update over HTTPS through the
   front, against plain HTTP straight to waitress serving the same app. Target: at most 1.5x.

Each figure alternates project and baseline rounds and reports medians and the median of the rounds'
ratios, so a busy machine skews both sides alike.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402
import responses  # noqa: E402
from common import heading, paired, report  # noqa: E402

TENANT = "acme"
QUERY = "mbox3rdPartyId=c-1&profile.tier=gold&profile.city=Paris"
URL = f"https://{TENANT}.tt.omtrdc.net/m2/{TENANT}/profile/update?{QUERY}"
PATH = f"/m2/{TENANT}/profile/update?{QUERY}"


def _show(figure: str, ours: float, base: float, ratio: float, limit: float, unit: str = "µs") -> None:
    scale = 1e6 if unit == "µs" else 1e3
    report(figure, f"{ours * scale:.0f} vs {base * scale:.0f} {unit} = {ratio:.3f}x", f"≤ {limit:g}x",
           ratio <= limit)


# --- figure 7 ---------------------------------------------------------------------------------------
def per_block(rounds: int, blocks: int) -> None:
    from target_profile_mock import mock_target

    with mock_target(client_code=TENANT):  # the first block builds the app: not what is measured
        answer = requests.post(URL)
    body, ctype = answer.content, answer.headers.get("Content-Type")

    def ours() -> float:
        t = time.perf_counter()
        for _ in range(blocks):
            with mock_target(client_code=TENANT):
                requests.post(URL)
        return (time.perf_counter() - t) / blocks

    def bare() -> float:
        t = time.perf_counter()
        for _ in range(blocks):
            with responses.RequestsMock() as mock:
                mock.add(responses.POST, URL, body=body, status=200, content_type=ctype)
                requests.post(URL)
        return (time.perf_counter() - t) / blocks

    _show("7. mock_target block vs a responses block", *paired(rounds, ours, bare), 1.0)


# --- figure 8 ---------------------------------------------------------------------------------------
def aiohttp_per_call(rounds: int, calls: int) -> None:
    import aiohttp
    from target_profile_mock.mockserver.server import LiveServer

    from target_profile_mock import mock_target

    async def batch(session: aiohttp.ClientSession, url: str) -> float:
        t = time.perf_counter()
        for _ in range(calls):
            async with session.post(url) as r:
                await r.read()
        return (time.perf_counter() - t) / calls

    async def main() -> tuple[float, float, float]:
        with mock_target(client_code=TENANT, strict=False) as target:
            target.seed_profile("c-1")
            with LiveServer(target.app) as server:
                local = f"{server.url}{PATH}"
                async with aiohttp.ClientSession() as s:
                    await batch(s, URL)
                    await batch(s, local)  # warm both
                    ours, base, ratios = [], [], []
                    for _ in range(rounds):
                        a, b = await batch(s, URL), await batch(s, local)
                        ours.append(a)
                        base.append(b)
                        ratios.append(a / b)
        return statistics.median(ours), statistics.median(base), statistics.median(ratios)

    _show("8. aiohttp in process vs over loopback to waitress", *asyncio.run(main()), 1.0)


# --- figure 9 ---------------------------------------------------------------------------------------
def https_per_request(rounds: int, calls: int) -> None:
    from target_profile_mock.mockserver import MockBackend, MockConfig, create_app
    from target_profile_mock.mockserver.certs import LocalCA
    from target_profile_mock.mockserver.front import TlsFront

    with tempfile.TemporaryDirectory() as tmp:
        ca, _ = LocalCA.ensure(tmp)
        backend = MockBackend(MockConfig(client_code=TENANT))
        backend.seed_profile(TENANT, third_party_id="c-1")
        with TlsFront(create_app(backend), ca.server_context()) as front, requests.Session() as tls, \
                requests.Session() as plain:
            verify = str(ca.ca_cert)  # per call: REQUESTS_CA_BUNDLE in the environment would win over Session.verify
            secure_url = f"{front.url}{PATH}"
            plain_url = f"{front.plain.url}{PATH}"

            def run(session: requests.Session, url: str) -> Callable[[], float]:
                def go() -> float:
                    t = time.perf_counter()
                    for _ in range(calls):
                        session.post(url, verify=verify)
                    backend.journal.clear()
                    return (time.perf_counter() - t) / calls

                return go

            run(tls, secure_url)()
            run(plain, plain_url)()
            _show("9. HTTPS through the front vs plain HTTP to waitress", *paired(rounds, run(tls, secure_url),
                                                                                run(plain, plain_url)), 1.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--quick", action="store_true", help="tiny inputs: checks the script runs")
    args = p.parse_args(argv)
    rounds, calls = (2, 5) if args.quick else (args.rounds, args.calls)
    heading("7. mock_target per block")
    per_block(rounds, calls)
    heading("8. aiohttp in process per call")
    aiohttp_per_call(rounds, calls)
    heading("9. serve --tls per request")
    https_per_request(rounds, calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
