"""The fidelity table names every rule of the contract, so no behaviour goes undocumented."""

from __future__ import annotations

from pathlib import Path

from target_profile_mock.contracts import RULES

TABLE = (Path(__file__).resolve().parent.parent / "docs" / "fidelity.md").read_text(encoding="utf-8")


def test_every_rule_is_in_the_fidelity_table() -> None:
    missing = [rule_id for rule_id in RULES if f"`{rule_id}`" not in TABLE]
    assert not missing, f"rules missing from docs/fidelity.md: {missing}"


def test_every_source_tag_used_by_a_rule_is_defined() -> None:
    defined = {line.split("|")[1].strip() for line in TABLE.splitlines() if line.startswith("| ") and
               line.count("|") == 3}
    tags = {tag.strip().split(" ")[0] for r in RULES.values() for tag in r.source.replace(";", ",").split(",")}
    tags = {t for t in tags if t.isupper() or ("-" in t and t.split("-")[0].isupper())}
    assert tags <= defined, f"source tags without a definition in docs/fidelity.md: {sorted(tags - defined)}"
