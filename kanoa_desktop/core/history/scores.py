"""Score runs in the history: which items were scored, how, and by which conversation.

Every scored item is a question like any other: its own conversation in the history, with
the figure, the question, the answer, tokens and cost (recorded by the question's runner).
This module adds what makes them a *run* (tables in :mod:`.schema`, step 4):

- ``score_runs``: one row per run: its identity ``key`` (what went in: suite and seed or
  key bytes, profiles, prompt), a title, the spec (JSON: what a report needs to say how
  the run was made) and its state (``running``, ``done``, ``stopped``, ``incomplete``).
- ``score_conversations``: every conversation a run started. The history's list leaves
  them out (a 64-item run is not 64 entries); they go when the run is deleted, and a run
  whose conversations were all purged goes with the last one.
- ``score_results``: one row per (run, profile, item): ``state`` ``scored`` or
  ``failed``, and the item's score as JSON (one mapping, :func:`to_row`/:func:`from_row`,
  for every column the scorer keeps).

A result is committed the moment its item is scored, so a run stopped, crashed or cut off
by a dying server keeps everything it scored and can continue (:meth:`ScoreRecords.latest_open`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: For the history list: a conversation a score run started is not listed on its own.
NOT_A_SCORED_ITEM = (
    "NOT EXISTS (SELECT 1 FROM score_conversations sc WHERE sc.conversation_id = c.id)"
)


def prune_empty(db: sqlite3.Connection) -> None:
    """Remove finished runs left without any conversation (their items all purged)."""
    db.execute(
        "DELETE FROM score_runs WHERE id NOT IN (SELECT run_id FROM score_conversations) "
        "AND state != 'running'"
    )


RUN_STATES = ("running", "done", "stopped", "incomplete")


@dataclass(frozen=True)
class StoredRun:
    """A score run as recorded: ``results`` maps (profile index, item id) to the stored
    score's fields (see :func:`from_row`) for scored and failed items."""

    id: int
    key: str
    title: str
    created: float
    updated: float
    spec: dict[str, Any]
    state: str
    results: dict[tuple[int, str], dict[str, Any]]


@dataclass(frozen=True)
class RunSummary:
    id: int
    title: str
    created: float
    updated: float
    state: str
    scored: int
    spec: dict[str, Any]


def to_row(fields: Mapping[str, Any]) -> str:
    """A score's fields as stored (JSON; tuples become lists)."""
    return json.dumps(dict(fields), ensure_ascii=False, sort_keys=True)


def from_row(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _store_parts(store: Any):
    # The store's connection and lock, for reads: one place to follow if the store changes.
    return store._db, store._lock


class ScoreRecords:
    """Score runs kept in a :class:`~kanoa_desktop.core.history.store.HistoryStore`'s
    database (same file, same lock). Writes go through the store's own write path: when
    the disk refuses one it waits in memory with the store's other writes and is saved,
    in order, when the disk is back (a conversation an item started may then still be a
    placeholder id: it is resolved when the write runs)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def _exec(self, sql: str, args: tuple = ()) -> Any:
        db, lock = _store_parts(self.store)
        with lock:
            return db.execute(sql, args)

    def _write(self, write) -> Any:
        return self.store._write(write)

    def _real(self, ref: Any) -> Any:
        return self.store.real_id(ref) if isinstance(ref, int) else ref

    def create_run(self, key: str, title: str, spec: Mapping[str, Any]) -> int | None:
        """A new run's id; None when the disk refuses writes now (the run is then not kept:
        its items' questions still are)."""
        now = time.time()

        def write(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO score_runs(key, title, created, updated, spec, state) "
                "VALUES (?, ?, ?, ?, ?, 'running')",
                (key, " ".join(title.split())[:200], now, now, to_row(spec)),
            )
            return int(cur.lastrowid)

        run_id = self.store._write(write, keep=False)
        return run_id if isinstance(run_id, int) else None

    def set_state(self, run_id: int, state: str) -> None:
        if state not in RUN_STATES:
            raise ValueError(f"unknown run state {state!r}")
        now = time.time()
        self._write(
            lambda db: db.execute(
                "UPDATE score_runs SET state = ?, updated = ? WHERE id = ?", (state, now, run_id)
            )
        )

    def link_conversation(self, run_id: int, conversation_id: int) -> None:
        """Mark a conversation as one of the run's items (kept out of the history list)."""

        def write(db: sqlite3.Connection) -> None:
            real = self._real(conversation_id)
            if real is not None:
                db.execute(
                    "INSERT OR IGNORE INTO score_conversations(run_id, conversation_id) "
                    "VALUES (?, ?)",
                    (run_id, real),
                )

        self._write(write)

    def put(self, run_id: int, profile: int, item: str, state: str, fields: Mapping) -> None:
        """Record one item's score (``scored``) or failure (``failed``), replacing any
        earlier one for the same run, profile and item."""
        now = time.time()
        fields = dict(fields)

        def write(db: sqlite3.Connection) -> None:
            if "conversation_id" in fields:
                fields["conversation_id"] = self._real(fields["conversation_id"])
            db.execute(
                "INSERT OR REPLACE INTO score_results(run_id, profile, item, state, data, "
                "finished) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, profile, item, state, to_row(fields), now),
            )
            db.execute("UPDATE score_runs SET updated = ? WHERE id = ?", (now, run_id))

        self._write(write)

    def forget_failures(self, run_id: int) -> None:
        """Drop the failed results (before asking those items again)."""
        self._write(
            lambda db: db.execute(
                "DELETE FROM score_results WHERE run_id = ? AND state = 'failed'", (run_id,)
            )
        )

    def load(self, run_id: int) -> StoredRun | None:
        db, lock = _store_parts(self.store)
        with lock:
            head = db.execute("SELECT * FROM score_runs WHERE id = ?", (run_id,)).fetchone()
            rows = db.execute(
                "SELECT profile, item, state, data FROM score_results WHERE run_id = ?",
                (run_id,),
            ).fetchall()
        if head is None:
            return None
        results = {}
        for r in rows:
            fields = from_row(r["data"])
            fields["state"] = r["state"]
            results[(int(r["profile"]), str(r["item"]))] = fields
        return StoredRun(
            id=head["id"],
            key=head["key"],
            title=head["title"],
            created=head["created"],
            updated=head["updated"],
            spec=from_row(head["spec"]),
            state=head["state"],
            results=results,
        )

    def latest_open(self, key: str) -> int | None:
        """The newest run with this identity that did not finish (stopped, incomplete, or
        left running by a crash), or None: what a run with the same inputs continues."""
        row = self._exec(
            "SELECT id FROM score_runs WHERE key = ? AND state != 'done' "
            "ORDER BY updated DESC, id DESC LIMIT 1",
            (key,),
        ).fetchone()
        return int(row[0]) if row else None

    def list_runs(self, limit: int = 50) -> list[RunSummary]:
        rows = self._exec(
            "SELECT r.*, (SELECT COUNT(*) FROM score_results s WHERE s.run_id = r.id AND "
            "s.state = 'scored') AS scored FROM score_runs r ORDER BY r.updated DESC, "
            "r.id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            RunSummary(r["id"], r["title"], r["created"], r["updated"], r["state"],
                       int(r["scored"]), from_row(r["spec"]))
            for r in rows
        ]  # fmt: skip

    def delete_run(self, run_id: int) -> bool:
        """Delete a run, its results and (soft, until the history purges) its items'
        conversations. False when there is no such run."""
        now = time.time()

        def write(db: sqlite3.Connection) -> int:
            db.execute(
                "UPDATE conversations SET deleted_at = ? WHERE deleted_at IS NULL AND id IN "
                "(SELECT conversation_id FROM score_conversations WHERE run_id = ?)",
                (now, run_id),
            )
            return db.execute("DELETE FROM score_runs WHERE id = ?", (run_id,)).rowcount

        n = self._write(write)
        return isinstance(n, int) and n > 0


__all__ = [
    "NOT_A_SCORED_ITEM",
    "RUN_STATES",
    "RunSummary",
    "ScoreRecords",
    "StoredRun",
    "from_row",
    "prune_empty",
    "to_row",
]
