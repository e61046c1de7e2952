"""The rules table: every rule is complete, sourced, and every rule the code names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from target_profile_mock.contracts.rules import LIMITS, RULES, Rule, Severity, Violation, rule

ROOT = Path(__file__).resolve().parent.parent

#: The source tags of the contract reference (its section 0), plus the markers used for choices, plus the
#: Delivery API sources the fidelity table defines (EL-DELIVERY-ID, SDK-PY).
KNOWN_TAGS = {
    "EL-DELIVERY-ID", "SDK-PY",
    "EL-BULK", "EL-BULK-2023-12-01", "EL-SINGLE", "EL-FETCH", "EL-PROFILES", "EL-OVERVIEW", "EL-SETTINGS",
    "DOCS-SETTINGS-OLD", "EL-METHODS-BULK", "TGT-METHODS-OLD", "RN-2020", "DOC-CHANGES", "LIMITS", "LIFETIME",
    "3RDPARTY", "GLOSSARY", "PRIVACY", "SLATE-2017", "IO-1.4", "IO-OLD-PAGE", "ADOBEIO-AUTH", "DEVTGT-INTRO",
    "ADMIN-OAS", "DELIVERY-OAS", "COMMUNITY-752595",
}
_TAG_RE = re.compile(r"[A-Z][A-Z0-9.-]*[A-Z0-9]")


def test_rule_ids_are_unique_and_keyed_by_id() -> None:
    from target_profile_mock.contracts import rules as mod

    ids = [r.id for r in mod._RULE_LIST]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert all(RULES[i].id == i for i in RULES)
    assert len(RULES) == len(ids)


@pytest.mark.parametrize("r", list(RULES.values()), ids=list(RULES))
def test_every_rule_is_complete(r: Rule) -> None:
    assert re.fullmatch(r"[a-z0-9]+(\.[a-z0-9-]+)+", r.id), r.id
    assert r.severity in (Severity.ERROR, Severity.DEVIATION)
    for text in (r.summary, r.documented, r.fix, r.source):
        assert text.strip(), f"{r.id} has an empty field"
    tags = set(_TAG_RE.findall(r.source))
    assert tags & KNOWN_TAGS, f"{r.id}: source {r.source!r} names no tag of the contract reference"


@pytest.mark.parametrize("r", [r for r in RULES.values() if r.is_error], ids=lambda r: r.id)
def test_error_rules_answer_with_a_client_or_server_error_status(r: Rule) -> None:
    assert 400 <= r.status <= 599, f"{r.id} refuses with HTTP {r.status}"


def test_deviations_are_not_errors() -> None:
    deviations = [r for r in RULES.values() if r.severity is Severity.DEVIATION]
    assert deviations and not any(r.is_error for r in deviations)
    assert {"single.json-body", "auth.access-token-header", "token.scope-alias", "tenant.literal-client",
            "single.both-identifiers"} <= {r.id for r in deviations}


def test_documented_statuses_of_key_rules() -> None:
    assert rule("single.get-too-large").status == 414
    assert rule("single.post-too-large").status == 413
    assert rule("rate.bulk").status == 503  # LIMITS: "503 HTTP status"
    assert rule("auth.missing-token").status == 401
    assert rule("auth.invalid-token").status == 401


def test_unknown_rule_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"no rule 'single\.nope'.*single\.identifier-missing"):
        rule("single.nope")


def test_every_rule_the_code_names_exists() -> None:
    # a misspelt id would be a KeyError, i.e. a 500, the first time that branch runs
    named: set[str] = set()
    for pkg in ("contracts", "mockserver", "plugin", "target_profile_mock"):
        for path in (ROOT / pkg).rglob("*.py"):
            named |= set(re.findall(r"""\brule\(\s*["']([a-z0-9.-]+)["']""", path.read_text()))
    assert named, "the scan found no rule references"
    assert named - set(RULES) == set()


def test_limits_are_the_documented_numbers() -> None:
    assert LIMITS.single_get_bytes == 8 * 1024
    assert LIMITS.single_post_bytes == 60 * 1024
    assert LIMITS.third_party_id_max_chars == 256
    assert LIMITS.batch_max_rows == 500_000
    assert LIMITS.bulk_calls_per_minute == 50
    assert LIMITS.single_updates_per_day == 1_000_000


def test_violation_message_and_explanation_name_the_rule() -> None:
    v = Violation(rule("single.identifier-missing"), "no id here", "identifier")
    assert v.rule_id == "single.identifier-missing"
    assert v.severity is Severity.ERROR
    assert v.message == "[single.identifier-missing] no id here"
    text = v.explain()
    assert text.startswith("error single.identifier-missing: no id here")
    assert rule("single.identifier-missing").fix in text
    assert rule("single.identifier-missing").documented in text
    d = v.to_dict()
    assert d["rule"] == "single.identifier-missing" and d["severity"] == "error" and d["where"] == "identifier"
