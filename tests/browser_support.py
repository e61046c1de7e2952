"""Headless Chromium for the dashboard's browser tests and screenshots: Debian's ``chromium`` package,
driven by Playwright (whose own browser downloads are not used)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: Flags for a sandboxed CI container: no GPU, no sandbox (root), nothing fetched in the background.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """The Chromium binary to drive: ``$CHROMIUM`` or the first of the usual names on PATH."""
    given = os.environ.get("CHROMIUM")
    if given:
        return given if Path(given).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


NO_CHROMIUM = ("no Chromium binary (apt-get install chromium, or set CHROMIUM=/path/to/chromium); "
               ".ci/run installs it")
