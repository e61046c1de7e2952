"""Every generated valid request is accepted by the fake, and its state then matches the model."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategy_support import fake_state, fresh_backend, model_state, send
from target_profile_mock.contracts.batch import parse_batch
from target_profile_mock.contracts.model import ProfileModel
from target_profile_mock.contracts.single import parse_single_update
from target_profile_mock.contracts.strategies import (
    BatchCall,
    BatchSpec,
    SingleUpdateCall,
    batch_files,
    batch_specs,
    single_updates,
)
from target_profile_mock.contracts.xmlbodies import parse_batch_status, parse_response
from target_profile_mock.mockserver import create_app

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(call=single_updates(), seed_first=st.booleans(),
       seeded=st.dictionaries(st.sampled_from("abc"), st.text(max_size=3)))
def test_valid_single_updates_are_accepted_and_match_the_model(call: SingleUpdateCall, seed_first: bool,
                                                               seeded: dict[str, str]) -> None:
    be = fresh_backend()
    model = ProfileModel()
    kind = "tntId" if call.id_kind == "mboxPC" else "thirdPartyId"
    if seed_first:
        be.seed_profile("demo", **{("tnt_id" if kind == "tntId" else "third_party_id"): call.profile_id},
                        attributes=seeded)
        model.seed({kind: call.profile_id}, seeded)
    resp = send(create_app(be).test_client(), call.request)
    assert resp.status == 200, resp.body
    assert parse_response(resp.body)["success"] == "true"
    model.single_update(call.id_kind, call.profile_id, call.attributes)
    assert fake_state(be, "demo") == model_state(model)
    # the update never creates a profile (EL-SINGLE)
    assert len(be.profiles("demo")) == int(seed_first)


@SETTINGS
@given(call=single_updates())
def test_single_updates_parse_back_to_what_they_mean(call: SingleUpdateCall) -> None:
    r = call.request
    parsed = parse_single_update(r.method, r.query, content_type=r.headers.get("Content-Type", ""), body=r.body,
                                 target_length=len(r.target.encode()))
    assert parsed.accepted, parsed.errors
    assert (parsed.id_kind, parsed.profile_id) == (call.id_kind, call.profile_id)
    assert parsed.attributes == call.effective_attributes


@SETTINGS
@given(call=batch_files(max_rows=30), seeded=st.sets(st.integers(0, 29), max_size=10))
def test_valid_batch_files_are_accepted_and_applied_at_completion(call: BatchCall, seeded: set[int]) -> None:
    be = fresh_backend()
    model = ProfileModel()
    kind = "tntId" if call.key == "pcId" else "thirdPartyId"
    rows = list(call.rows())
    for i in sorted(seeded):
        if i < len(rows):
            be.seed_profile("demo", **{("tnt_id" if kind == "tntId" else "third_party_id"): rows[i][0]},
                            attributes={"seeded": "yes"})
            model.seed({kind: rows[i][0]}, {"seeded": "yes"})
    client = create_app(be).test_client()
    resp = send(client, call.request)
    assert resp.status == 200, resp.body
    fields = parse_response(resp.body)
    assert fields["success"] == "true"
    batch_id = fields["batchStatus"].split("batchId=")[1]
    model.submit_batch(batch_id, call.version, call.key, call.attributes, rows)
    assert fake_state(be, "demo") == model_state(model)  # nothing applied before completion
    status = client.get(fields["batchStatus"].split("localhost", 1)[1] + "&showDetails=true")
    body = parse_batch_status(status.data)
    assert body.status == "complete"
    counters = model.complete_batch(batch_id)
    assert body.counters == counters
    assert fake_state(be, "demo") == model_state(model)


@settings(max_examples=25, deadline=None)
@given(spec=batch_specs(max_rows=2_000))
def test_the_fake_reads_back_every_row_of_an_expanded_file(spec: BatchSpec) -> None:
    call = BatchCall(spec, "demo")
    parsed = parse_batch(call.body)
    assert parsed.accepted, parsed.errors
    assert parsed.key == spec.key and parsed.attributes == spec.attributes
    assert list(parsed.records()) == list(call.records())


def test_expansion_is_deterministic_and_reaches_the_documented_row_limit() -> None:
    spec = BatchSpec(2, "thirdPartyId", ("a", "b"), (("c1", ("x", "")), ("c2", ("", "y"))), 500_000, seed=7)
    first = BatchCall(spec, "demo").body
    assert first == BatchCall(spec, "demo").body
    parsed = parse_batch(first)
    assert parsed.accepted and parsed.row_count == 500_000
    assert parsed.rows[-1] == ("gen-7-499999", "", "y~499999")
