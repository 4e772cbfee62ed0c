"""Opening the history file: connect, check, migrate, and what to do when that fails.

:func:`open_database` never raises for a file it cannot use. A damaged file (not a
database, failing ``PRAGMA integrity_check``) is moved aside as
``history.sqlite3.damaged-<timestamp>`` and a fresh one is created. A file locked by
another connection is in use, not damaged: it is waited for, then left alone. When no file
can be used at all the history runs in memory for this session. Each case comes back
with a :class:`HistoryProblem` whose message says what happened and what to do.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from kanoa_desktop.core.history import schema
from kanoa_desktop.core.history.records import HistoryProblem

log = logging.getLogger(__name__)

# How long opening the history waits for another connection's lock before keeping this
# session's history in memory (a locked file is in use, not damaged: it is never moved).
LOCKED_WAIT_S = 10.0


@dataclass
class Opened:
    """The connection :func:`open_database` made, and what the user should know."""

    db: sqlite3.Connection
    problem: HistoryProblem | None = None
    in_memory: bool = False


def is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def connect(target: str) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each flush is one
    # short transaction. check_same_thread=False: the store's lock serialises use.
    db = sqlite3.connect(target, isolation_level=None, check_same_thread=False, timeout=5.0)
    db.row_factory = sqlite3.Row
    return db


def configure(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives the process being killed (only a power
    # loss may lose the last transactions), and a commit costs no fsync.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA secure_delete=ON")  # deleted conversations leave no readable trace


def damage_of(db: sqlite3.Connection) -> str | None:
    """None when the database is sound, else what is wrong."""
    rows = db.execute("PRAGMA integrity_check").fetchall()
    result = [r[0] for r in rows]
    if result != ["ok"]:
        return "; ".join(result[:3])
    version = schema.version(db)
    if version > schema.SCHEMA_VERSION:
        return None  # a newer app's file: handled by migrate, not damage
    if version >= 1:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = schema.REQUIRED_TABLES - names
        if missing:
            return f"tables missing: {', '.join(sorted(missing))}"
    return None


def _ready(opened: Opened) -> Opened:
    """Configure and migrate an opened file; a newer app's file gets a problem note."""
    configure(opened.db)
    if not schema.migrate(opened.db):
        opened.problem = HistoryProblem(
            "The history file was written by a newer kanoa desktop. It is used as is; "
            "update kanoa desktop if anything looks wrong."
        )
    return opened


def open_database(path: Path) -> Opened:
    """Open (or create) the history at ``path``; see the module docstring."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return in_memory(f"the folder {path.parent} cannot be created ({exc})")
    damage: str | None = None
    db: sqlite3.Connection | None = None
    deadline = time.monotonic() + LOCKED_WAIT_S
    while True:
        try:
            db = connect(str(path))
            damage = damage_of(db)
            if damage is None:
                return _ready(Opened(db))
            break
        except sqlite3.OperationalError as exc:
            if not is_locked(exc):
                damage = str(exc)
                break
            # Locked or busy is another connection at work (a second window, the
            # command line, a start-up opening it at the same moment): never damage.
            if db is not None:
                db.close()
                db = None
            if time.monotonic() > deadline:
                return in_memory(
                    f"{path.name} stayed locked by another program for {LOCKED_WAIT_S:.0f} s"
                )
            time.sleep(0.05)
        except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed", ...
            damage = str(exc)
            break
        except OSError as exc:
            if db is not None:
                db.close()
            return in_memory(f"{path} cannot be opened ({exc})")
    if db is not None:
        db.close()
    moved = move_aside(path)
    log.warning("history database damaged (%s); moved to %s", damage, moved)
    problem = HistoryProblem(
        "The history file was damaged and could not be read"
        + (f" ({damage})." if damage else ".")
        + (
            f" It was kept as {moved.name} in {moved.parent}, and a new, empty history "
            "was started. Your earlier conversations are not shown."
            if moved
            else " A new, empty history was started."
        ),
        moved,
    )
    try:
        opened = _ready(Opened(connect(str(path))))
    except (sqlite3.Error, OSError) as exc:
        return in_memory(f"a new history file could not be created ({exc})")
    opened.problem = opened.problem or problem
    return opened


def move_aside(path: Path) -> Path | None:
    """Rename a damaged file (and its WAL and shared-memory files) out of the way."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    try:
        os.replace(path, target)
    except OSError:
        return None
    for suffix in ("-wal", "-shm"):  # the log belongs to the damaged file, not the new one
        side = path.with_name(path.name + suffix)
        if side.exists():
            try:
                os.replace(side, target.with_name(target.name + suffix))
            except OSError:
                side.unlink(missing_ok=True)
    return target


def in_memory(why: str) -> Opened:
    """A history in memory for this session, with a problem saying why."""
    problem = HistoryProblem(
        f"The history cannot be saved: {why}. Conversations are kept for this session only;"
        " check that the data folder is writable and has free space, then restart."
    )
    db = connect(":memory:")
    db.execute("PRAGMA foreign_keys=ON")
    schema.migrate(db)
    return Opened(db, problem, in_memory=True)
