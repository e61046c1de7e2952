"""Type strategies for the types this package defines, registered when the package is imported, so
``st.from_type(BatchCall)`` and ``st.builds(...)`` with these annotations just work."""

from __future__ import annotations

from hypothesis import strategies as st

from . import delivery, invalid, valid
from .scenarios import Scenario, scenarios


def register_type_strategies() -> None:
    st.register_type_strategy(valid.SingleUpdateCall, valid.single_updates())
    st.register_type_strategy(valid.BatchCall, valid.batch_files())
    st.register_type_strategy(valid.BatchSpec, valid.batch_specs())
    # the 50 MB and 500,000-row examples stay out of type-driven generation: ask for them by rule
    st.register_type_strategy(invalid.InvalidCall, st.one_of(invalid.invalid_single_updates(),
                                                             invalid.invalid_batch_files(include_huge=False)))
    st.register_type_strategy(delivery.DeliveryCall, delivery.delivery_requests())
    st.register_type_strategy(Scenario, scenarios())
