"""Faults are asked after the contract checks, for every operation: a request the fake refuses gets its
refusal and never uses up a fault; the next valid request meets it."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from target_profile_mock.mockserver import MockBackend

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
GOOD_FILE = b"batch=thirdPartyId,a\nc1,x\n"


def _submit(client: FlaskClient, body: bytes = GOOD_FILE, **kwargs) -> str:
    r = client.post("/m2/demo/v2/profile/batchUpdate", data=body, headers=FORM, **kwargs)
    assert r.status_code == 200, r.data
    return r.data.decode().split("batchId=")[1].split("<")[0]


# (operation, a refused call, its status, a valid call); each call is (method, path, kwargs)
CASES = [
    ("single-update", ("GET", "/m2/demo/profile/update?profile.a=1", {}), 400,
     ("GET", "/m2/demo/profile/update?mbox3rdPartyId=c1&profile.a=1", {})),
    ("single-update", ("PUT", "/m2/demo/profile/update?mbox3rdPartyId=c1&profile.a=1", {}), 405,
     ("POST", "/m2/demo/profile/update?mbox3rdPartyId=c1&profile.a=1", {})),
    ("batch-submit", ("POST", "/m2/demo/v2/profile/batchUpdate", {"data": b"thirdPartyId,a\nc1,x\n", "headers": FORM}),
     400, ("POST", "/m2/demo/v2/profile/batchUpdate", {"data": GOOD_FILE, "headers": FORM})),
    ("batch-submit", ("POST", "/m2/demo/profile/batchUpdate", {"data": b"batch=ecid,a\nc1,x\n", "headers": FORM}),
     400, ("POST", "/m2/demo/profile/batchUpdate", {"data": GOOD_FILE, "headers": FORM})),
    ("batch-submit", ("GET", "/m2/demo/v2/profile/batchUpdate", {}), 405,
     ("POST", "/m2/demo/v2/profile/batchUpdate", {"data": GOOD_FILE, "headers": FORM})),
    ("batch-status", ("GET", "/m2/demo/profile/batchStatus?batchId=demo-1-12345678", {}), 404,
     ("GET", "/m2/demo/profile/batchStatus?batchId={batch}", {})),
    ("batch-status", ("GET", "/m2/demo/profile/batchStatus", {}), 400,
     ("GET", "/m2/demo/v2/profile/batchStatus?batchId={batch}", {})),
    ("batch-status", ("GET", "/m2/other/profile/batchStatus?batchId={batch}", {}), 404,
     ("GET", "/m2/demo/profile/batchStatus?batchId={batch}", {})),
    ("fetch", ("POST", "/rest/v1/profiles/thirdPartyId/c1?client=demo", {}), 405,
     ("GET", "/rest/v1/profiles/thirdPartyId/c1?client=demo", {})),
    ("token", ("GET", "/demo/target/authentication/token?authorizationScope=nope", {}), 400,
     ("GET", "/demo/target/authentication/token?authorizationScope=profile_api", {})),
]


@pytest.mark.parametrize(("operation", "refused", "status", "valid"), CASES,
                         ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_a_refused_call_never_uses_up_a_fault(client: FlaskClient, backend: MockBackend, operation, refused,
                                              status, valid) -> None:
    backend.seed_profile("demo", third_party_id="c1")
    batch = _submit(client) if operation == "batch-status" else ""
    polls_before = backend.batch(batch)["polls"] if batch else 0
    backend.faults.add(503, operation=operation, times=1)
    method, path, kwargs = refused
    r = client.open(path.format(batch=batch), method=method, **kwargs)
    assert r.status_code == status, r.data
    [rule] = backend.faults.list()
    assert rule["hits"] == 0 and rule["times"] == 1
    assert backend.journal.entries()[-1].fault is None
    method, path, kwargs = valid
    r = client.open(path.format(batch=batch), method=method, **kwargs)
    assert r.status_code == 503, r.data
    assert backend.faults.list() == []
    assert backend.journal.entries()[-1].fault == "status 503"
    if batch:  # neither the refused look nor the faulted poll moved the batch
        assert backend.batch(batch)["polls"] == polls_before


@pytest.mark.parametrize("operation", ["single-update", "batch-submit", "batch-status", "fetch"])
def test_an_auth_refusal_never_uses_up_a_fault(client: FlaskClient, backend: MockBackend, operation) -> None:
    batch = _submit(client)
    backend.set_auth("demo", True)
    backend.faults.add(503, operation=operation, times=1)
    path = {"single-update": "/m2/demo/profile/update?mbox3rdPartyId=c1&profile.a=1",
            "batch-submit": "/m2/demo/v2/profile/batchUpdate",
            "batch-status": f"/m2/demo/profile/batchStatus?batchId={batch}",
            "fetch": "/rest/v1/profiles/thirdPartyId/c1?client=demo"}[operation]
    method = "POST" if operation == "batch-submit" else "GET"
    r = client.open(path, method=method, data=GOOD_FILE if method == "POST" else None, headers=FORM)
    assert r.status_code == 401
    assert backend.faults.list()[0]["hits"] == 0


def test_a_bulk_file_over_the_size_limit_never_uses_up_a_fault(client: FlaskClient, backend: MockBackend) -> None:
    backend.configure(batch_max_bytes=100)
    backend.faults.add(503, operation="batch-submit", times=1)
    r = client.post("/m2/demo/v2/profile/batchUpdate", data=b"batch=thirdPartyId,a\n" + b"c1,x\n" * 50, headers=FORM)
    assert r.status_code == 413
    assert backend.faults.list()[0]["hits"] == 0


def test_a_bulk_call_over_the_rate_limit_never_uses_up_a_fault(client: FlaskClient, backend: MockBackend) -> None:
    backend.configure("demo", bulk_calls_per_minute=1)
    _submit(client)
    backend.faults.add(503, operation="batch-submit", times=1, message="injected")
    r = client.post("/m2/demo/v2/profile/batchUpdate", data=GOOD_FILE, headers=FORM)
    assert r.status_code == 503 and b"[rate.bulk]" in r.data
    assert backend.faults.list()[0]["hits"] == 0


def test_a_faulted_submit_applies_nothing_and_an_applied_one_stores_the_batch(client: FlaskClient,
                                                                              backend: MockBackend) -> None:
    backend.faults.add(503, operation="batch-submit", times=1)
    assert client.post("/m2/demo/v2/profile/batchUpdate", data=GOOD_FILE, headers=FORM).status_code == 503
    assert backend.batches("demo") == []
    backend.faults.add(503, operation="batch-submit", times=1, applied=True)
    assert client.post("/m2/demo/v2/profile/batchUpdate", data=GOOD_FILE, headers=FORM).status_code == 503
    assert len(backend.batches("demo")) == 1
