"""Why a write did not reach the disk, told apart from damage: a full disk, a read-only
folder, a file locked by another program, a drive that went away. SQLite's errors and
OSErrors alike; a store keeps its writes for later on these, and only on SQLite's own word
for damage (:func:`says_corrupt`, then its integrity check) may it set a file aside."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

# What keeps a write from the disk.
FULL, READ_ONLY, LOCKED, UNREACHABLE = "full", "read-only", "locked", "unreachable"
TROUBLES = (FULL, READ_ONLY, LOCKED, UNREACHABLE)

# SQLite's primary result codes (sqlite3.Error.sqlite_errorcode & 0xff).
_SQLITE = {
    3: READ_ONLY,  # SQLITE_PERM
    5: LOCKED,  # SQLITE_BUSY
    6: LOCKED,  # SQLITE_LOCKED
    8: READ_ONLY,  # SQLITE_READONLY
    13: FULL,  # SQLITE_FULL
    23: READ_ONLY,  # SQLITE_AUTH
}
_CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_ERRNO = {
    errno.ENOSPC: FULL,
    errno.EDQUOT: FULL,
    errno.EROFS: READ_ONLY,
    errno.EACCES: READ_ONLY,
    errno.EPERM: READ_ONLY,
}
# An I/O error with less than this free is a full disk (SQLite reports a full disk met
# while mapping its shared memory as "disk I/O error").
_NEARLY_FULL_BYTES = 1 << 20


def says_corrupt(exc: BaseException) -> bool:
    """SQLite itself says the file is damaged or not a database."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _CORRUPT


def trouble_of(exc: BaseException, folder: Path | None) -> str | None:
    """What kept a write or an open from the disk (:data:`TROUBLES`), or None when ``exc``
    is none of these (a bug, or SQLite saying the file is corrupt). ``folder`` (the data
    folder) lets an unspecific I/O error be told apart: gone, full, or read-only."""
    if isinstance(exc, OSError) and exc.errno in _ERRNO:
        return _ERRNO[exc.errno]
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _SQLITE:
        return _SQLITE[code & 0xFF]
    if says_corrupt(exc) or not isinstance(exc, (sqlite3.OperationalError, OSError)):
        return None
    if folder is None:
        return UNREACHABLE
    try:
        if not folder.is_dir():
            return UNREACHABLE
        if shutil.disk_usage(folder).free < _NEARLY_FULL_BYTES:
            return FULL
    except OSError:
        return UNREACHABLE
    if not os.access(folder, os.W_OK):
        return READ_ONLY
    return UNREACHABLE


def describe(kind: str, path: Path, name: str, detail: str = "") -> tuple[str, str]:
    """What happened to the writes of ``path`` (``name``, e.g. "the history") in a
    :data:`TROUBLES` ``kind``, and what to do: two sentences."""
    title = name[:1].upper() + name[1:]
    folder = path.parent
    what = {
        FULL: f"The disk that holds {name} ({folder}) is full.",
        READ_ONLY: f"{title} folder {folder} cannot be written (it is read-only).",
        LOCKED: f"{title} file {path.name} is locked by another program.",
        UNREACHABLE: f"{title} file {path} cannot be reached ({detail}).",
    }[kind]
    todo = {
        FULL: "Free some space on that disk.",
        READ_ONLY: "Make the folder writable (its permissions, or how its drive is mounted).",
        LOCKED: "Close the other program (another kanoa desktop?) or wait for it to finish.",
        UNREACHABLE: "Check that the folder exists and that its drive is connected.",
    }[kind]
    return what, todo


def os_reason(exc: OSError, folder: Path) -> str:
    """Why a file could not be written, and what to do, as a sentence fragment."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk that holds {folder} is full (free some space, or choose another folder)"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{folder} cannot be written (check its permissions, or choose another folder)"
    return f"{exc.strerror or exc} (check that {folder} exists and can be written)"
