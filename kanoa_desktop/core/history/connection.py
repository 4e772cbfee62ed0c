"""Opening the history file, and telling damage from a disk that cannot be written.

Only real corruption moves a file aside: SQLite's own ``PRAGMA integrity_check`` reports
it, or SQLite says the file is not a database. A damaged file is renamed
``history.sqlite3.damaged-<timestamp>`` and a fresh one is created.

Everything else is :func:`trouble_of` an exception: a full disk, a read-only folder, a file
locked by another program, a drive that went away. The file is kept as it is and, where
SQLite can still read it, opened read-only so the history shows; the store keeps new
writes in memory and writes them when the disk allows. :func:`open_database` never raises
for any of these; its :class:`Opened` says what the user should know.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from kanoa_desktop.core.config.disk import (
    LOCKED,
    TROUBLES,
    UNREACHABLE,
    describe,
    says_corrupt,
    trouble_of,
)
from kanoa_desktop.core.history import schema
from kanoa_desktop.core.history.records import HistoryProblem

log = logging.getLogger(__name__)

# How long opening the history waits for another connection's lock before keeping this
# session's writes in memory (a locked file is in use, not damaged: it is never moved).
LOCKED_WAIT_S = 10.0

DAMAGED, NEWER = "damaged", "newer"
SUSPECT = "suspect"  # a write met SQLite's word for damage: checked when the file reopens
PASSING = (*TROUBLES, SUSPECT)  # problems that end when the waiting writes are written


@dataclass
class Opened:
    """The connection :func:`open_database` made, and what the user should know.

    ``writable`` is False for a file opened read-only or a stand-in in memory (``in_memory``:
    the file could not be read either); the store then keeps its writes waiting."""

    db: sqlite3.Connection
    problem: HistoryProblem | None = None
    writable: bool = True
    in_memory: bool = False


def trouble_problem(kind: str, path: Path, detail: str, *, shown: bool = True) -> HistoryProblem:
    """What happened and what to do, for the window's banner and the command line.
    ``shown`` False: the earlier conversations cannot be read either."""
    what, todo = describe(kind, path, "the history", detail)
    meanwhile = (
        "Nothing is lost: new answers are kept in memory and saved as soon as the history "
        "can be written." + ("" if shown else " Earlier conversations cannot be shown until then.")
    )
    return HistoryProblem(
        f"{what} {meanwhile} {todo}",
        kind=kind,
        cause=what,
        meanwhile=meanwhile,
        remedy=todo,
    )


BUSY_TIMEOUT_S = 5.0  # how long one statement waits for another connection's lock


def connect(
    target: str, *, uri: bool = False, busy_s: float = BUSY_TIMEOUT_S
) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each flush is one
    # short transaction. check_same_thread=False: the store's lock serialises use.
    db = sqlite3.connect(
        target, isolation_level=None, check_same_thread=False, timeout=busy_s, uri=uri
    )
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
    """None when SQLite finds the database sound, else what it reports. Raises what the
    check raises (a locked file, a full disk: not damage)."""
    rows = db.execute("PRAGMA integrity_check").fetchall()
    result = [r[0] for r in rows]
    if result != ["ok"]:
        return "; ".join(result[:3])
    version = schema.version(db)
    if schema.SCHEMA_VERSION >= version >= 1:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = schema.REQUIRED_TABLES - names
        if missing:
            return f"tables missing: {', '.join(sorted(missing))}"
    return None


def _ready(db: sqlite3.Connection) -> Opened:
    """Configure and migrate a sound file; a newer app's file gets a note."""
    configure(db)
    if schema.migrate(db):
        return Opened(db)
    note = HistoryProblem(
        "The history file was written by a newer kanoa desktop. It is used as is; "
        "update kanoa desktop if anything looks wrong.",
        kind=NEWER,
    )
    return Opened(db, note)


def open_database(path: Path, *, locked_wait_s: float | None = None, check: bool = True) -> Opened:
    """Open (or create) the history at ``path``; see the module docstring.
    ``locked_wait_s`` (default :data:`LOCKED_WAIT_S`) is how long a lock is waited for
    (0: one try, a statement waiting a tenth of a second); ``check`` False skips SQLite's
    integrity check (a file checked earlier, reopened)."""
    busy_s = BUSY_TIMEOUT_S if locked_wait_s is None or locked_wait_s > 0 else 0.1
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        error: OSError = exc
        if path.parent.exists() and not path.parent.is_dir():
            error = NotADirectoryError(f"{path.parent} is a file, not a folder")
        return _kept_aside(path, trouble_of(error, None) or UNREACHABLE, error)
    deadline = time.monotonic() + (LOCKED_WAIT_S if locked_wait_s is None else locked_wait_s)
    while True:
        db: sqlite3.Connection | None = None
        try:
            db = connect(str(path), busy_s=busy_s)
            damage = damage_of(db) if check else None
            if damage is None:
                opened = _ready(db)
                db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                return opened
            break
        except (sqlite3.Error, OSError) as exc:
            if db is not None:
                db.close()
            if says_corrupt(exc):
                damage = str(exc)  # "file is not a database", "malformed": SQLite's word
                db = None
                break
            kind = trouble_of(exc, path.parent)
            if kind is None:
                raise
            if kind == LOCKED and time.monotonic() < deadline:
                # Another connection at work (a second window, the command line, a
                # start-up opening it at the same moment): wait, never damage.
                time.sleep(0.05)
                continue
            return _kept_aside(path, kind, exc)
    if db is not None:
        db.close()
    return _replace_damaged(path, damage)


def _replace_damaged(path: Path, damage: str) -> Opened:
    try:
        moved = move_aside(path)
    except OSError as exc:
        # Damaged, and the folder cannot even be written: keep the file as it is.
        log.warning("history database damaged (%s); cannot move it aside: %s", damage, exc)
        opened = _kept_aside(path, trouble_of(exc, path.parent) or UNREACHABLE, exc)
        opened.problem = HistoryProblem(
            f"The history file is damaged ({damage}) and could not be moved aside ({exc}). "
            "New answers are kept in memory and saved once a new history can be written. "
            "Check that the data folder is writable.",
            kind=opened.problem.kind if opened.problem else UNREACHABLE,
        )
        return opened
    log.warning("history database damaged (%s); moved to %s", damage, moved)
    problem = HistoryProblem(
        f"The history file was damaged and could not be read ({damage}). It was kept as "
        f"{moved.name} in {moved.parent}, and a new, empty history was started. Your earlier "
        "conversations are not shown.",
        moved,
        kind=DAMAGED,
    )
    try:
        opened = _ready(connect(str(path)))
    except (sqlite3.Error, OSError) as exc:
        kind = trouble_of(exc, path.parent)
        if kind is None:
            raise
        return _kept_aside(path, kind, exc)
    opened.problem = opened.problem or problem
    return opened


def _kept_aside(path: Path, kind: str, exc: BaseException) -> Opened:
    """The file cannot be opened for writing: read it as it is if SQLite can (immutable,
    since nothing here may write it), else a stand-in in memory."""
    log.info("history cannot be written (%s): %s", kind, exc)
    if kind != LOCKED and path.is_file():
        db = None
        try:
            db = connect(f"file:{quote(str(path))}?immutable=1", uri=True)
            if damage_of(db) is None and schema.version(db) == schema.SCHEMA_VERSION:
                db.execute("PRAGMA query_only=ON")
                return Opened(db, trouble_problem(kind, path, str(exc)), writable=False)
        except (sqlite3.Error, OSError) as read_exc:
            log.info("history cannot be read either: %s", read_exc)
        if db is not None:
            db.close()
    db = connect(":memory:")
    db.execute("PRAGMA foreign_keys=ON")
    schema.migrate(db)
    problem = trouble_problem(kind, path, str(exc), shown=not path.is_file())
    return Opened(db, problem, writable=False, in_memory=True)


def move_aside(path: Path) -> Path:
    """Rename a damaged file (and its WAL and shared-memory files) out of the way; raises
    OSError when it cannot be renamed."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):  # the log belongs to the damaged file, not the new one
        side = path.with_name(path.name + suffix)
        if side.exists():
            try:
                os.replace(side, target.with_name(target.name + suffix))
            except OSError:
                side.unlink(missing_ok=True)
    return target
