"""A stateful fake of Adobe Target's Profile APIs, in process or as a standalone server."""

from .. import __version__
from .app import create_app
from .backend import ControlError, MockBackend
from .clock import Clock
from .config import MockConfig
from .lifecycle import Lifecycle

__all__ = ["Clock", "ControlError", "Lifecycle", "MockBackend", "MockConfig", "__version__", "create_app"]
