"""target-profile-mock: a stateful fake of Adobe Target's Profile APIs, its contract as code, and a pytest plugin.

Subpackages: :mod:`target_profile_mock.contracts` (rules, wire formats, validators; with
``.strategies`` for Hypothesis), :mod:`target_profile_mock.mockserver` (the Flask fake and the standalone
server) and :mod:`target_profile_mock.plugin` (the pytest plugin). The names used most are re-exported
here and imported on first use, so ``import target_profile_mock`` stays cheap (pytest and Hypothesis
import it at start-up through their entry points).
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# In a wheel, setuptools maps the repository's contracts/, mockserver/ and plugin/ folders under this
# package. In a source checkout they stand beside this folder instead, so the package looks there too.
_here = Path(__file__).resolve().parent
if not (_here / "contracts").is_dir() and (_here.parent / "contracts" / "__init__.py").is_file():
    __path__.append(str(_here.parent))

_EXPORTS = {
    "MockBackend": "target_profile_mock.mockserver.backend",
    "ControlError": "target_profile_mock.mockserver.backend",
    "MockConfig": "target_profile_mock.mockserver.config",
    "Clock": "target_profile_mock.mockserver.clock",
    "Lifecycle": "target_profile_mock.mockserver.lifecycle",
    "create_app": "target_profile_mock.mockserver.app",
    "LiveServer": "target_profile_mock.mockserver.server",
    "TargetProfiles": "target_profile_mock.plugin.handle",
    "mock_target": "target_profile_mock.plugin.inprocess",
    "ContractViolation": "target_profile_mock.plugin.inprocess",
    "RULES": "target_profile_mock.contracts.rules",
    "LIMITS": "target_profile_mock.contracts.rules",
}
_MODULES = {
    "contracts": "target_profile_mock.contracts",
    "mockserver": "target_profile_mock.mockserver",
    "plugin": "target_profile_mock.plugin",
    "strategies": "target_profile_mock.contracts.strategies",
}

__all__ = [
    "LIMITS",
    "RULES",
    "Clock",
    "ContractViolation",
    "ControlError",
    "Lifecycle",
    "LiveServer",
    "MockBackend",
    "MockConfig",
    "TargetProfiles",
    "__version__",
    "contracts",
    "create_app",
    "mock_target",
    "mockserver",
    "plugin",
    "strategies",
]

if TYPE_CHECKING:
    from target_profile_mock import contracts, mockserver, plugin
    from target_profile_mock.contracts import strategies
    from target_profile_mock.contracts.rules import LIMITS, RULES
    from target_profile_mock.mockserver.app import create_app
    from target_profile_mock.mockserver.backend import ControlError, MockBackend
    from target_profile_mock.mockserver.clock import Clock
    from target_profile_mock.mockserver.config import MockConfig
    from target_profile_mock.mockserver.lifecycle import Lifecycle
    from target_profile_mock.mockserver.server import LiveServer
    from target_profile_mock.plugin.handle import TargetProfiles
    from target_profile_mock.plugin.inprocess import ContractViolation, mock_target


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'target_profile_mock' has no attribute {name!r}")


class _Package(types.ModuleType):
    """This package's module type. Calling the package is the ``hypothesis`` entry point.

    The entry point names the package alone, not a function in it: if another ``target_profile_mock``
    shadows this one on ``sys.path``, Hypothesis then loads a module it cannot call and skips it, where
    ``target_profile_mock._hypothesis:_register`` would have raised inside ``import hypothesis``.
    """

    def __call__(self) -> None:
        try:
            from target_profile_mock._hypothesis import _register
        except Exception as exc:  # a broken install must not take `import hypothesis` down with it
            warnings.warn(f"target-profile-mock did not register its Hypothesis strategies: {exc!r}", stacklevel=2)
            return
        _register()


sys.modules[__name__].__class__ = _Package
