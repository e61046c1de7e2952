"""The error every control call raises, shared by the model and the HTTP layer."""

from __future__ import annotations

__all__ = ["ControlError"]


class ControlError(ValueError):
    """A control call that cannot be done; the message says why and what would work."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
