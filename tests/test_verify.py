"""``target-profile-mock verify``: cassettes replayed against a fresh fake, differences reported by rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from target_profile_mock.mockserver import cli
from target_profile_mock.mockserver.verify import FORMAT, VERSION, compare_bodies

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "cassettes" / "adobe-docs"


def _cassette(tmp_path: Path, exchanges: list[dict[str, Any]], *, name: str = "c.json",
              setup: dict[str, Any] | None = None) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"format": FORMAT, "version": VERSION, "setup": setup or {},
                                "exchanges": exchanges}))
    return path


def _verify(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, str, str]:
    code = cli.main(["verify", *map(str, paths)])
    out, err = capsys.readouterr()
    return code, out, err


# --- the shipped cassettes: Adobe's documented examples ----------------------------------------------
def test_the_fake_answers_every_documented_example_as_documented(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _verify(capsys, SHIPPED)
    assert code == 0, out
    files = sorted(SHIPPED.glob("*.json"))
    assert len(files) >= 4
    assert out.startswith(f"verify: {len(files)} cassette(s), ")
    assert ", 0 differ" in out.splitlines()[0]


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.json")), ids=lambda p: p.name)
def test_every_shipped_cassette_names_its_source(path: Path) -> None:
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and data["version"] == VERSION
    assert data["source"], "a shipped cassette says which Adobe page its exchanges come from"
    for src in data["source"]:
        assert src["url"].startswith("https://") and src["date"] and src["title"]
    assert data["exchanges"]


def test_a_cassette_edited_to_disagree_is_reported_with_exit_1(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads((SHIPPED / "bulk-status.json").read_text())
    detailed = data["exchanges"][2]["response"]
    detailed["body"] = detailed["body"].replace("<status>complete</status>", "<status>stuck</status>")
    detailed["body"] = detailed["body"].replace("    <failedUpdates>0</failedUpdates>\n", "")
    edited = tmp_path / "bulk-status.json"
    edited.write_text(json.dumps(data))
    code, out, _ = _verify(capsys, edited)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "verify: 1 cassette(s), 3 exchange(s), 1 differ"
    # grouped by rule, each line naming the exchange as recorded, where, and both values
    assert "body.value (1): a value differs" in out
    assert ("  bulk-status.json #3 GET /m2/demo/profile/batchStatus?batchId=demo-1701473848678-13029383"
            "&showDetails=true: /response/status: recorded 'stuck', fake 'complete'") in lines
    assert "body.extra (1): the fake's answer has an element or key the recorded one lacks" in out
    assert any("/response/failedUpdates: recorded nothing, fake '<failedUpdates>0</failedUpdates>'" in x for x in lines)


def test_the_command_line_verifies_and_exits_non_zero_on_a_difference(tmp_path: Path) -> None:
    bad = _cassette(tmp_path, [{"request": {"method": "GET", "url": "https://demo.tt.omtrdc.net/rest/v1/profiles/x?client=demo"},
                                "response": {"status": 200, "body": "{}"}}])
    proc = subprocess.run([sys.executable, "-m", "target_profile_mock", "verify", str(SHIPPED), str(bad)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stderr
    assert "status (1): the HTTP status differs" in proc.stdout
    assert "c.json #1 GET /rest/v1/profiles/x?client=demo: status: recorded 200, fake 404" in proc.stdout


# --- comparing ---------------------------------------------------------------------------------------
def test_ids_the_server_issued_are_followed_in_later_requests(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # the recorded batch id is not the fake's; the status poll must reach the fake's batch (else 404)
    submit = ("<response><success>true</success><batchStatus>http://mboxedge1.tt.omtrdc.net/m2/demo/profile/"
              "batchStatus?batchId=demo-1-2</batchStatus><message>Batch submitted for processing</message></response>")
    path = _cassette(tmp_path, [
        {"request": {"method": "POST", "url": "http://demo.tt.omtrdc.net/m2/demo/v2/profile/batchUpdate",
                     "headers": {"Content-Type": "application/x-www-form-urlencoded"}, "body": "batch=pcId,a\n1,x\n"},
         "response": {"status": 200, "body": submit}},
        {"request": {"method": "GET", "url": "http://mboxedge1.tt.omtrdc.net/m2/demo/profile/batchStatus?batchId=demo-1-2"},
         "response": {"status": 200, "body": "<response><batchId>demo-1-2</batchId><status>incomplete</status>"
                                             "<batchSize>1</batchSize></response>"}},
    ], setup={"settings": {"lifecycle": "seconds=5"}})
    code, out, _ = _verify(capsys, path)
    assert code == 0, out


def test_recorded_timing_moves_the_fakes_clock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = "<response><batchId>demo-1-2</batchId><status>{}</status><batchSize>1</batchSize></response>"
    url = "http://demo.tt.omtrdc.net/m2/demo/profile/batchStatus?batchId=demo-1-2"
    path = _cassette(tmp_path, [
        {"request": {"method": "POST", "url": "http://demo.tt.omtrdc.net/m2/demo/v2/profile/batchUpdate",
                     "body": "batch=pcId,a\n1,x\n"},
         "response": {"status": 200, "body": "<response><success>true</success><batchStatus>http://demo.tt.omtrdc."
                                             "net/m2/demo/profile/batchStatus?batchId=demo-1-2</batchStatus>"
                                             "<message>Batch submitted for processing</message></response>"}, "at": 0},
        {"request": {"method": "GET", "url": url}, "response": {"status": 200, "body": status.format("incomplete")},
         "at": 1.0},
        {"request": {"method": "GET", "url": url}, "response": {"status": 200, "body": status.format("complete")},
         "at": 6.5},
    ], setup={"settings": {"lifecycle": "seconds=5"}})
    code, out, _ = _verify(capsys, path)
    assert code == 0, out


def test_a_redacted_token_is_replaced_by_the_fakes_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exchange = {"request": {"method": "GET", "url": "https://demo.tt.omtrdc.net/m2/demo/profile/update?"
                                                    "mbox3rdPartyId=c-1&profile.a=1",
                            "headers": {"Authorization": "Bearer REDACTED"}},
                "response": {"status": 200, "body": "<response><success>true</success><pcId></pcId>"
                                                    "<message>Request successfully submitted</message></response>"}}
    path = _cassette(tmp_path, [exchange], setup={"settings": {"auth": True}})
    assert _verify(capsys, path)[0] == 0
    exchange["request"]["headers"] = {}  # no token at all: the fake refuses, as recorded it did not
    path = _cassette(tmp_path, [exchange], setup={"settings": {"auth": True}})
    code, out, _ = _verify(capsys, path)
    assert code == 1 and "status: recorded 200, fake 401" in out


def test_json_bodies_compare_structurally_modulo_timestamps() -> None:
    recorded = '{"a": {"value": "1", "modifiedAt": "2017-07-31T20:34:55.625-04:00"}, "b": [1, 2]}'
    same = '{"b": [1, 2], "a": {"modifiedAt": "2026-01-01T00:00:00.000Z", "value": "1"}}'
    assert compare_bodies(recorded, same) == []
    diffs = compare_bodies(recorded, '{"a": {"value": 1, "modifiedAt": "yesterday"}, "b": [1], "c": true}')
    assert sorted((rule, where) for rule, where, _, _ in diffs) == [
        ("body.extra", "$.c"), ("body.missing", "$.b[1]"), ("body.shape", "$.a.modifiedAt"),
        ("body.value", "$.a.value")]
    assert compare_bodies('{"a": 1}', "<response/>") == [("body.format", "body", "JSON", "<response/>")]


def test_xml_bodies_compare_structurally_modulo_whitespace() -> None:
    assert compare_bodies("<r>\n  <a>1</a>\n  <b/>\n</r>", "<r><a>1</a><b></b></r>") == []
    assert compare_bodies("<r><a>1</a></r>", "<r><a>2</a></r>") == [("body.value", "/r/a", "1", "2")]
    assert compare_bodies("<r><a>1</a><a>2</a></r>", "<r><a>1</a></r>") == [
        ("body.missing", "/r/a[2]", "<a>2</a>", None)]
    assert compare_bodies("true Request successfully submitted", "true  Request successfully\nsubmitted") == []


# --- bad cassettes -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not a JSON file"),
    ('{"format": "something else"}', "'format' must be 'target-profile-mock cassette'"),
    (json.dumps({"format": FORMAT, "version": 99, "exchanges": []}), "cassette version 99 is not supported"),
    (json.dumps({"format": FORMAT, "version": 1, "exchanges": [{"request": {"method": "GET", "url": "/x"},
                                                                "response": {"status": 200}}]}),
     "exchange #1 request: 'url' must be an absolute http(s) URL"),
    (json.dumps({"format": FORMAT, "version": 1, "setup": {"settings": {"nope": 1}}, "exchanges": []}),
     "setup.settings (with --setting): MockConfig.__init__() got an unexpected keyword argument 'nope'"),
    (json.dumps({"format": FORMAT, "version": 1, "setup": {"seed": [], "offers": {}}, "exchanges": []}),
     "setup has unknown keys ['seed']; use settings, profiles, offers, client_code"),
])
def test_a_bad_cassette_is_refused_with_exit_2_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    code, out, err = _verify(capsys, path)
    assert code == 2 and out == ""
    assert err.startswith(f"target-profile-mock verify: error: {path}: ") and message in err
