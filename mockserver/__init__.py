"""A stateful fake of Adobe Target's Profile APIs, in process or as a standalone server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import __version__
from .backend import ControlError, MockBackend
from .clock import Clock
from .config import MockConfig
from .lifecycle import Lifecycle

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["Clock", "ControlError", "Lifecycle", "MockBackend", "MockConfig", "__version__", "create_app"]


def __getattr__(name: str) -> Any:
    # the HTTP layer (Flask) loads on first use: the model works without it
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
