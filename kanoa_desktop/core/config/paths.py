"""Where kanoa desktop keeps its files.

Config (profiles, settings), data (history, knowledge-base indexes) and cache follow the
platform's conventions through platformdirs. Setting ``KANOA_DESKTOP_HOME`` puts all three
under one folder instead: tests use it so they never touch a developer's real files, and a
user can use it for a portable install.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_DIR_NAME = "kanoa-desktop"
HOME_ENV = "KANOA_DESKTOP_HOME"


def _root() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else None


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """Folder for human-readable settings and profiles (created if missing)."""
    root = _root()
    if root is not None:
        return _ensure(root / "config")
    return _ensure(Path(platformdirs.user_config_dir(APP_DIR_NAME, appauthor=False)))


def data_dir() -> Path:
    """Folder for history and knowledge-base databases (created if missing)."""
    root = _root()
    if root is not None:
        return _ensure(root / "data")
    return _ensure(Path(platformdirs.user_data_dir(APP_DIR_NAME, appauthor=False)))


def cache_dir() -> Path:
    """Folder for caches that may be deleted at any time (created if missing)."""
    root = _root()
    if root is not None:
        return _ensure(root / "cache")
    return _ensure(Path(platformdirs.user_cache_dir(APP_DIR_NAME, appauthor=False)))
