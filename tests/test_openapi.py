"""The OpenAPI description: valid 3.1, served by the fake, covering every route, and schemathesis finds
no server error and no undocumented status against the standalone server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from target_profile_mock.mockserver import MockBackend, create_app
from target_profile_mock.mockserver.server import LiveServer


def _spec() -> dict:
    return json.loads(files("target_profile_mock.mockserver").joinpath("openapi.json").read_text(encoding="utf-8"))


def test_the_description_is_valid_openapi_3_1() -> None:
    spec = _spec()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_it_is_served_at_mock_openapi_json() -> None:
    resp = create_app(MockBackend()).test_client().get("/_mock/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert resp.get_json() == _spec()


def test_every_route_of_the_app_is_described() -> None:
    app = create_app(MockBackend())
    spec_paths = _spec()["paths"]
    for r in app.url_map.iter_rules():
        if r.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", r.rule)
        path = path.replace("{profile_id}", "{profileId}").replace("{batch_id}", "{batchId}")
        assert path in spec_paths, f"{r.rule} is not in mockserver/openapi.json"
        for method in r.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec_paths[path], f"{method} {r.rule} is not described"


def test_package_data_ships_the_json() -> None:
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert '"*.json"' in text


@pytest.mark.skipif(shutil.which("schemathesis", path=str(Path(sys.executable).parent)) is None,
                    reason="schemathesis is in the test extra")
def test_schemathesis_finds_no_server_error_against_the_standalone_server() -> None:
    exe = str(Path(sys.executable).parent / "schemathesis")
    with LiveServer(create_app(MockBackend())) as server:
        proc = subprocess.run(
            [exe, "run", f"{server.url}/_mock/openapi.json", "--max-examples", "5",
             "--checks", "not_a_server_error,status_code_conformance,response_schema_conformance",
             "--phases", "examples,coverage,fuzzing", "--no-color",
             # faults and rate limits make the fake answer 503 on purpose (rate.bulk is documented as 503)
             "--exclude-path-regex", "^/_mock/(faults|rate-limits|settings)"],
            capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
