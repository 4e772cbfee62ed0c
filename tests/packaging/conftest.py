"""Helpers for the packaging tests: the desktop validators must be installed, never skipped."""

from __future__ import annotations

import shutil

import pytest

# Debian/Ubuntu packages providing each tool (CI installs them before `make test`).
TOOL_PACKAGES = {
    "desktop-file-validate": "desktop-file-utils",
    "update-desktop-database": "desktop-file-utils",
    "update-mime-database": "shared-mime-info",
    "appstreamcli": "appstream",
    "gtk-update-icon-cache": "gtk-update-icon-cache",
}


def require_tool(name: str) -> str:
    """The tool's path; a missing tool FAILS the test (a skipped validator proves nothing)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed. Install it with "
            f"`sudo apt-get install {TOOL_PACKAGES.get(name, name)}` and run the tests again.",
            pytrace=False,
        )
    return path
