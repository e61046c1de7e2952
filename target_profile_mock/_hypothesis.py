"""The ``hypothesis`` entry point.

Hypothesis calls the package (its entry point names :mod:`target_profile_mock` itself), which calls
:func:`_register`, while ``import hypothesis`` runs, possibly because the strategies
package itself is being imported. So this module imports nothing that imports Hypothesis: the strategy
types register themselves when :mod:`target_profile_mock.contracts.strategies` is imported (a user must
import them to name them), and the one type defined outside it is given a resolver that imports the
strategies only when Hypothesis first asks for it. Nothing here may break ``import hypothesis``.
"""

from __future__ import annotations

import warnings
from typing import Any


def _single_update_requests(_type: type) -> Any:
    from target_profile_mock.contracts.single import SingleUpdateRequest
    from target_profile_mock.contracts.strategies import single_updates

    return single_updates().map(
        lambda c: SingleUpdateRequest(c.request.method, c.request.path, c.request.query,  # type: ignore[arg-type]
                                      c.request.body or None, c.request.headers))


def _register() -> None:
    try:
        from hypothesis import strategies as st

        from target_profile_mock.contracts.single import SingleUpdateRequest

        st.register_type_strategy(SingleUpdateRequest, _single_update_requests)
    except Exception as exc:  # a broken install must not take `import hypothesis` down with it
        warnings.warn(f"target-profile-mock did not register its Hypothesis strategies: {exc!r}", stacklevel=2)
