"""A stateful fake of Adobe Target's Profile APIs, in process or as a standalone server."""

from .app import create_app
from .backend import ControlError, MockBackend
from .clock import Clock
from .config import MockConfig
from .lifecycle import Lifecycle

__version__ = "0.1.0"

__all__ = ["Clock", "ControlError", "Lifecycle", "MockBackend", "MockConfig", "__version__", "create_app"]
