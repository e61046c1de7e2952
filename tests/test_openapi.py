"""The OpenAPI description: valid 3.1, served by the fake, covering every route, and every schemathesis check
passes against the standalone server."""

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
from target_profile_mock.mockserver import MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.app import SERVED_METHODS
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
        path = re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", r.rule)
        path = path.replace("{profile_id}", "{profileId}").replace("{batch_id}", "{batchId}")
        assert path in spec_paths, f"{r.rule} is not in mockserver/openapi.json"
        # Adobe's routes take more methods than they serve, to refuse them in the API's words: the
        # description lists what is served, and a method it leaves out gets 405 with Allow
        served = set(SERVED_METHODS.get(r.endpoint, r.methods - {"HEAD", "OPTIONS"}))
        assert {m.upper() for m in spec_paths[path]} & set(r.methods) == served, r.rule


def test_package_data_ships_the_json() -> None:
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert '"*.json"' in text


#: Control routes that change how the edge routes answer (faults, limits, settings): tested on a server of
#: their own, so a fault or a bulk limit of 0 that schemathesis sets up never makes an edge call answer 5xx.
_MUTATING = "^/_mock/(faults|rate-limits|settings)"
#: Not for schemathesis: the journal stream stays open for its wait (tests/test_control_reads.py), and the
#: dashboard's HTML pages are for browsers (tests/test_dashboard*.py).
_NOT_FUZZED = "^/_mock/(journal/stream|ui/)"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("schemathesis", path=str(Path(sys.executable).parent)) is None,
                    reason="schemathesis is in the test extra")
@pytest.mark.parametrize("paths", [["--exclude-path-regex", f"{_MUTATING}|{_NOT_FUZZED}"],
                                   ["--include-path-regex", _MUTATING]],
                         ids=["edge-and-control", "mutating-control"])
def test_schemathesis_all_checks_pass_against_the_standalone_server(paths: list[str]) -> None:
    exe = str(Path(sys.executable).parent / "schemathesis")
    config = Path(__file__).resolve().parent / "schemathesis.toml"
    # the bulk limit answers 503 by design (LIMITS) once schemathesis passes 50 calls a minute: off here
    with LiveServer(create_app(MockBackend(MockConfig(bulk_calls_per_minute=None)))) as server:
        proc = subprocess.run(
            [exe, "--config-file", str(config), "run", f"{server.url}/_mock/openapi.json", "--max-examples", "5",
             "--phases", "examples,coverage,fuzzing", "--no-color", "--seed", "1", *paths],
            capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    assert re.search(r"\d+ generated, \d+ passed", proc.stdout), proc.stdout[-2000:]


def test_the_schemathesis_config_runs_every_check() -> None:
    text = (Path(__file__).resolve().parent / "schemathesis.toml").read_text()
    assert "[checks]\nenabled = true" in text
    # the only check switched off anywhere, and only for the operations named beside it
    assert re.findall(r"checks\.(\w+)\.enabled = false", text) == ["positive_data_acceptance"]
