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
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kanoa_desktop.core.batch.plan import BatchError
from kanoa_desktop.core.config import paths

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
            raise BatchError(
                f"The batch state {self.path} cannot be opened ({_reason(exc)}).",
                "Give --state a file in a folder you can write (or leave it out).",
            ) from exc

    def begin(self, batch: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Record this run's plan of ``batch``; returns the plan of its previous run."""
        with self._lock:
            row = self._db.execute("SELECT spec FROM batches WHERE key = ?", (batch,)).fetchone()
            self._db.execute(
                "INSERT INTO batches(key, created, spec) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET spec = excluded.spec",
                (batch, time.time(), json.dumps(spec, ensure_ascii=False)),
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
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    'DELETE FROM answers WHERE batch = ? AND "key" = ? AND content != ?',
                    (batch, result.key, result.content),
                )
                self._db.execute(
                    f"INSERT OR REPLACE INTO answers(batch, {_NAMES}) "
                    f"VALUES ({', '.join('?' * (len(COLUMNS) + 1))})",
                    (batch, *(getattr(result, c) for c in COLUMNS)),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def forget(self, batch: str, results: Iterable[ItemResult]) -> None:
        with self._lock:
            self._db.executemany(
                'DELETE FROM answers WHERE batch = ? AND "key" = ? AND fingerprint = ?',
                [(batch, r.key, r.fingerprint) for r in results],
            )

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NotADirectoryError | FileExistsError):
        return "a file is in the way of its folder"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)
