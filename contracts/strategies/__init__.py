"""Hypothesis strategies for the Adobe Target Profile API contract.

Building blocks (:func:`tnt_ids`, :func:`third_party_ids`, :func:`attribute_names`,
:func:`attribute_values`, :func:`profile_attributes`), valid requests (:func:`single_updates`,
:func:`batch_files`, :func:`batch_specs`, :func:`delivery_requests`), invalid requests tagged with the
rule they break and the outcome they get (:func:`invalid_calls`, :func:`invalid_single_updates`,
:func:`invalid_batch_files`, :func:`invalid_delivery_requests`),
and server-behaviour scenarios (:func:`scenarios`). All read :data:`target_profile_mock.contracts.RULES` and the
serialisers of :mod:`contracts`, so they agree with the validators and the fake.
"""

from ._http import HttpRequest, HttpResponse
from .building import attribute_names, attribute_values, profile_attributes, third_party_ids, tnt_ids
from .delivery import DELIVERY_RULES, DeliveryCall, delivery_requests, invalid_delivery_requests
from .invalid import (
    BREAKABLE_RULES,
    ExpectedOutcome,
    InvalidCall,
    invalid_batch_files,
    invalid_calls,
    invalid_single_updates,
)
from .scenarios import SCENARIO_KINDS, Scenario, register_scenario_kind, scenarios
from .valid import BatchCall, BatchSpec, SingleUpdateCall, batch_files, batch_specs, single_updates

__all__ = [
    "BREAKABLE_RULES",
    "DELIVERY_RULES",
    "SCENARIO_KINDS",
    "BatchCall",
    "BatchSpec",
    "DeliveryCall",
    "ExpectedOutcome",
    "HttpRequest",
    "HttpResponse",
    "InvalidCall",
    "Scenario",
    "SingleUpdateCall",
    "attribute_names",
    "attribute_values",
    "batch_files",
    "batch_specs",
    "delivery_requests",
    "invalid_batch_files",
    "invalid_calls",
    "invalid_delivery_requests",
    "invalid_single_updates",
    "profile_attributes",
    "register_scenario_kind",
    "scenarios",
    "single_updates",
    "third_party_ids",
    "tnt_ids",
]

from ._registry import register_type_strategies as _register_type_strategies

_register_type_strategies()
