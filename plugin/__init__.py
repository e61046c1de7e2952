"""pytest plugin for target-profile-mock: the ``target_profiles`` and ``target_profile_server`` fixtures.

Registered through the ``pytest11`` entry point as ``target_profiles`` (``-p no:target_profiles``
disables it). The handle class is imported lazily so that registering the plugin stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BatchNotFoundError", "ProfileNotFoundError", "Settings", "TargetProfiles"]


def __getattr__(name: str) -> Any:
    if name in ("TargetProfiles", "ProfileNotFoundError", "BatchNotFoundError"):
        from . import handle

        return getattr(handle, name)
    if name == "Settings":
        from .options import Settings

        return Settings
    raise AttributeError(name)
