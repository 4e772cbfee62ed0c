"""Where a batch keeps its answers: one SQLite row per answered item, by content.

A row is keyed by the batch (its sources), the item (file and part) and the item's
fingerprint (core/batch/plan.py), so an answer is found again only for the same request;
an item asked again after its file changed replaces the rows of the file's old bytes.
Rows map to :class:`ItemResult` by one mapping (:data:`COLUMNS`, :func:`from_row`), the
schema included, never field by field per query.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kanoa_desktop.core.batch.plan import BatchError
from kanoa_desktop.core.config import disk, paths

FILE_NAME = "batches.sqlite3"


@dataclass(frozen=True)
class ItemResult:
    """What one item gave: ``state`` "done" or "error" (``error``/``hint`` say why), with
    what was asked (``question``, ``context``, ``server``, ``model``) and the item's
    identity (``fingerprint``; ``content``: its file's SHA-256)."""

    key: str
    label: str
    kind: str
    path: str
    state: str
    fingerprint: str = ""
    content: str = ""
    model: str = ""
    server: str = ""
    question: str = ""
    context: str = ""
    answer: str = ""
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    estimated: bool = False
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    duration_s: float | None = None
    cost: float | None = None
    error: str = ""
    hint: str = ""
    warnings: str = ""
    finish_reason: str | None = None
    thumbnail: bytes | None = field(default=None, repr=False)
    finished: float = 0.0

    @property
    def ok(self) -> bool:
        return self.state == "done"


COLUMNS = tuple(f.name for f in fields(ItemResult))
_SQL_TYPES = {
    "str": "TEXT NOT NULL DEFAULT ''",
    "bool": "INTEGER NOT NULL DEFAULT 0",
    "float": "REAL NOT NULL DEFAULT 0",
    "int | None": "INTEGER",
    "float | None": "REAL",
    "str | None": "TEXT",
    "bytes | None": "BLOB",
}
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS batches "
    "(key TEXT PRIMARY KEY, created REAL NOT NULL, spec TEXT NOT NULL DEFAULT '{}')",
    "CREATE TABLE IF NOT EXISTS answers (batch TEXT NOT NULL, "
    + ", ".join(f'"{f.name}" {_SQL_TYPES[str(f.type)]}' for f in fields(ItemResult))
    + ', PRIMARY KEY (batch, "key", fingerprint))',
]
_NAMES = ", ".join(f'"{c}"' for c in COLUMNS)


def from_row(row: Iterable[Any]) -> ItemResult:
    """An :class:`ItemResult` from a row of ``SELECT`` :data:`COLUMNS`."""
    values = dict(zip(COLUMNS, row, strict=True))
    values["estimated"] = bool(values["estimated"])
    return ItemResult(**values)


class BatchStore:
    """The answers of every batch (WAL: a row is on disk when :meth:`put` returns,
    whatever happens to the process next). Raises :class:`BatchError` when the file
    cannot be opened (a folder in the way, no permission, not a database)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else paths.data_dir() / FILE_NAME
        self._lock = threading.RLock()
        self._waiting: list[Callable[[sqlite3.Connection], Any]] = []
        self.problem: str | None = None  # why writes wait, while they do
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=10.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self._db.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            kind = disk.trouble_of(exc, self.path.parent)
            if kind is not None and not isinstance(exc, NotADirectoryError | FileExistsError):
                what, todo = disk.describe(kind, self.path, "the batch state", str(exc))
                raise BatchError(what, f"{todo} Or give --state another file.") from exc
            raise BatchError(
                f"The batch state {self.path} cannot be opened ({_reason(exc)}).",
                "Give --state a file in a folder you can write (or leave it out).",
            ) from exc

    # -- writes: a full, read-only or locked disk keeps them here, in order, until it
    # takes them (tried again with each later write and on close); ``problem`` says why.

    @property
    def pending(self) -> int:
        """How many writes wait in memory for the disk."""
        return len(self._waiting)

    def unsaved_note(self) -> str | None:
        """A sentence for the user while writes wait (None when all are kept): what
        happened, what to do, and what it means for a rerun."""
        if not self._waiting:
            return None
        return (
            f"Answers not kept for a rerun: {self.problem} The report has them; a rerun "
            "asks the items whose answers were not kept again."
        )

    def _write(self, write: Callable[[sqlite3.Connection], Any]) -> None:
        with self._lock:
            self._waiting.append(write)
            self._write_waiting()

    def _write_waiting(self) -> None:
        while self._waiting:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._waiting[0](self._db)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as exc:
                kind = disk.trouble_of(exc, self.path.parent)
                if kind is None:
                    self._waiting.pop(0)
                    raise
                self.problem = " ".join(disk.describe(kind, self.path, "the batch state", str(exc)))
                return
            self._waiting.pop(0)
        self.problem = None

    def begin(self, batch: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Record this run's plan of ``batch``; returns the plan of its previous run."""
        with self._lock:
            row = self._db.execute("SELECT spec FROM batches WHERE key = ?", (batch,)).fetchone()
        self._write(
            lambda db: db.execute(
                "INSERT INTO batches(key, created, spec) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET spec = excluded.spec",
                (batch, time.time(), json.dumps(spec, ensure_ascii=False)),
            )
        )
        try:
            return dict(json.loads(row[0])) if row else {}
        except (TypeError, ValueError):
            return {}

    def results(self, batch: str) -> list[ItemResult]:
        """Every answer kept for ``batch``, whatever its fingerprint."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_NAMES} FROM answers WHERE batch = ?", (batch,)
            ).fetchall()
        return [from_row(r) for r in rows]

    def put(self, batch: str, result: ItemResult) -> None:
        """Keep ``result``; the item's answers for other bytes of its file go."""

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                'DELETE FROM answers WHERE batch = ? AND "key" = ? AND content != ?',
                (batch, result.key, result.content),
            )
            db.execute(
                f"INSERT OR REPLACE INTO answers(batch, {_NAMES}) "
                f"VALUES ({', '.join('?' * (len(COLUMNS) + 1))})",
                (batch, *(getattr(result, c) for c in COLUMNS)),
            )

        self._write(write)

    def forget(self, batch: str, results: Iterable[ItemResult]) -> None:
        rows = [(batch, r.key, r.fingerprint) for r in results]
        self._write(
            lambda db: db.executemany(
                'DELETE FROM answers WHERE batch = ? AND "key" = ? AND fingerprint = ?', rows
            )
        )

    def close(self) -> None:
        """Write what waits if the disk allows, and close; ``pending`` then says how many
        writes (answers, mostly) could not be kept: a rerun asks those items again."""
        with self._lock:
            if self._waiting:
                with contextlib.suppress(sqlite3.Error, OSError):
                    self._write_waiting()
            with contextlib.suppress(sqlite3.Error):
                self._db.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NotADirectoryError | FileExistsError):
        return "a file is in the way of its folder"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)
