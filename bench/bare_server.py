"""The baseline server: bare Flask routes that return the fake's bodies, on waitress like the fake.

It does no parsing, no state and no journaling, so it is the ceiling a Flask app on waitress can reach.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from flask import Flask, Response
from waitress import create_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from target_profile_mock.contracts.profile_json import profile_body
from target_profile_mock.contracts.xmlbodies import update_success

XML = "application/xml;charset=UTF-8"
JSON = "application/json;charset=UTF-8"
#: The same body the fake returns for the profile the single-figure script seeds.
FETCH_BODY = json.dumps(profile_body("bench", "1368007744041-575948.01_00", {
    "loyaltyTier": ("gold", 1_700_000_000_000), "city": ("Berlin", 1_700_000_000_000),
    "points": ("1200", 1_700_000_000_000)})).encode()


#: A Delivery API answer of the shape the fake gives a returning visitor with one mbox (see bench/delivery.py).
DELIVERY_BODY = json.dumps({
    "status": 200, "requestId": "3f1c6b8e-5a8f-4f0e-9d3b-2f6a1c0e7b55", "client": "bench",
    "id": {"tntId": "e3e70682c2094cac629f6fbed82c07cd.28_0"}, "edgeHost": "mboxedge28.tt.omtrdc.net",
    "execute": {"mboxes": [{"index": 1, "name": "home"}]}}).encode()


def create_bare_app() -> Flask:
    app = Flask("bare")

    @app.route("/m2/<client>/profile/update", methods=["GET", "POST"])
    def update(client: str) -> Response:
        return Response(update_success(), content_type=XML)

    @app.route("/rest/v1/profiles/<profile_id>")
    def fetch(profile_id: str) -> Response:
        return Response(FETCH_BODY, content_type=JSON)

    @app.route("/rest/v1/delivery", methods=["POST"])
    def delivery() -> Response:
        return Response(DELIVERY_BODY, content_type=JSON)

    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--threads", type=int, default=8)
    args = p.parse_args()
    server = create_server(create_bare_app(), host="127.0.0.1", port=args.port, threads=args.threads)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"bare server on http://127.0.0.1:{server.effective_port}", flush=True)  # type: ignore[attr-defined]
    try:
        server.run()
    finally:
        server.close()


if __name__ == "__main__":
    main()
