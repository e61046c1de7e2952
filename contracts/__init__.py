"""The Adobe Target Profile API wire contract as code.

Rules and limits (:mod:`target_profile_mock.contracts.rules`), parsers and serialisers of the wire formats
(:mod:`.single`, :mod:`.batch`, :mod:`.xmlbodies`,
:mod:`target_profile_mock.contracts.profile_json`) and validators that name the rule a request breaks.
This package imports neither Flask nor pytest.
"""

from .batch import BatchFile, encode_batch, encode_cell, parse_batch
from .ids import check_third_party_id, check_tnt_id, client_code_from_host
from .profile_json import format_timestamp, not_found_body, profile_body
from .rules import LIMITS, RULES, Limits, Rule, Severity, Violation, rule
from .single import SingleUpdate, SingleUpdateRequest, build_single_update, parse_single_update
from .xmlbodies import (
    BatchStatusBody,
    batch_refused,
    batch_status,
    batch_submitted,
    parse_batch_status,
    parse_response,
    update_failure,
    update_success,
)

__all__ = [
    "LIMITS",
    "RULES",
    "BatchFile",
    "BatchStatusBody",
    "Limits",
    "Rule",
    "Severity",
    "SingleUpdate",
    "SingleUpdateRequest",
    "Violation",
    "batch_refused",
    "batch_status",
    "batch_submitted",
    "build_single_update",
    "check_third_party_id",
    "check_tnt_id",
    "client_code_from_host",
    "encode_batch",
    "encode_cell",
    "format_timestamp",
    "not_found_body",
    "parse_batch",
    "parse_batch_status",
    "parse_response",
    "parse_single_update",
    "profile_body",
    "rule",
    "update_failure",
    "update_success",
]
