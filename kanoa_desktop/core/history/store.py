"""The history: every question and answer, stored as it happens, in one SQLite file.

Plain synchronous Python (no Qt). :class:`HistoryStore` owns one connection to
``paths.data_dir() / "history.sqlite3"`` in WAL mode; every method takes a lock, so a store
may be shared between the GUI thread and a worker pool. This module is the history's
public face: the records and helpers its callers use are importable from here.

What a caller may rely on:

- A streamed answer is recorded through a :class:`TurnRecorder`: ``append`` buffers text and
  writes it (one small ``UPDATE``, committed) at most once per ``flush_interval_s`` (1 s), so
  a process killed mid-stream loses at most about a second. On the next open, any turn still
  ``streaming`` becomes ``interrupted`` (``store.interrupted_on_open`` says how many).
- Figures are stored once, keyed by the sha256 of the bytes that were sent. The stored user
  message holds ``kanoa-figure:sha256:<hex>`` references instead of data URLs;
  :meth:`HistoryStore.load_conversation` rebuilds the data URLs.
- No API key is ever written: a profile contributes its name, API base (without user info
  or query string) and generation parameters only.
- A damaged file (not a database, failing ``PRAGMA integrity_check``) is moved aside as
  ``history.sqlite3.damaged-<timestamp>`` and a fresh one is created; ``store.problem``
  then holds a plain message for the UI. If no file can be created at all the store runs
  in memory for this session, with a message saying so. Opening never raises for these.
- Deleting is soft until :meth:`HistoryStore.purge_deleted` (or the next open), so a delete
  can be undone; purged content is overwritten (``secure_delete``).

The package, by concept: ``schema`` (tables, migrations), ``connection`` (opening, damage,
locks), ``records`` (the records and the one row mapping per table), ``conversations``,
``figures``, ``comparisons``, ``usage``, ``recorder`` (:class:`TurnRecorder`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kanoa_desktop.core.config import paths
from kanoa_desktop.core.history import comparisons, connection, conversations, scores, usage
from kanoa_desktop.core.history.conversations import TITLE_LENGTH, fts_query, question_text
from kanoa_desktop.core.history.figures import FIGURE_REF_PREFIX
from kanoa_desktop.core.history.recorder import TurnRecorder
from kanoa_desktop.core.history.records import (
    RETRIED,
    STATES,
    ConversationSummary,
    HistoryProblem,
    StoredComparison,
    StoredConversation,
    StoredFigure,
    StoredTurn,
    UsageRow,
    UsageTotals,
    passages_json,
    profile_params,
    safe_endpoint,
)
from kanoa_desktop.core.history.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

FILE_NAME = "history.sqlite3"
FLUSH_INTERVAL_S = 1.0


class HistoryStore:
    """The history database. ``HistoryStore()`` opens (or creates) the user's file.

    After construction: ``problem`` is None or a :class:`HistoryProblem` for the UI;
    ``interrupted_on_open`` is how many turns a crash left streaming (now ``interrupted``).
    ``clock`` (monotonic seconds) is handed to recorders; tests inject a fake one.
    """

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        recover: bool = True,
    ) -> None:
        # recover=False for a reader beside a running window (kanoa-desktop history ...):
        # the window's streaming turn is not a crash, and its deletes may still be undone.
        self.path = Path(path) if path is not None else paths.data_dir() / FILE_NAME
        self.clock = clock
        self.flush_interval_s = flush_interval_s
        self.interrupted_on_open = 0
        self.session_started = time.time()
        self._lock = threading.RLock()
        opened = connection.open_database(self.path)
        self._db = opened.db
        self.problem: HistoryProblem | None = opened.problem
        self.in_memory = opened.in_memory
        if recover:
            try:
                self._recover()
            except sqlite3.OperationalError as exc:
                if not connection.is_locked(exc):
                    raise
                # Another program holds the write lock past the busy timeout: reading
                # works; the recovery of interrupted turns waits for the next start.
                log.warning("history recovery skipped: %s", exc)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, inside one write transaction."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _recover(self) -> None:
        with self._transaction() as db:
            self.interrupted_on_open = conversations.interrupt_streaming(db)
        # Deletes of an earlier session can no longer be undone: remove them for good.
        self.purge_deleted()

    def close(self) -> None:
        """Close the connection; pending recorders should be finished first."""
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    # -- recording ---------------------------------------------------------------------

    def begin_turn(
        self,
        conversation_id: int | None,
        *,
        user_message: Mapping[str, Any],
        question: str | None = None,
        model: str = "",
        profile: Any = None,
        params: Mapping[str, Any] | None = None,
        server_kind: str = "",
        system_prompt: str = "",
        context: str = "",
        focus: str = "",
        table_name: str = "",
        table_summary: str = "",
        figures: Sequence[Any] = (),
        passages: Any = None,
    ) -> TurnRecorder:
        """Record the start of a question; returns the recorder for its streamed answer.

        ``conversation_id`` None starts a new conversation (its title names the figures
        and table, then the focus or the question when it is more than "Interpret.").
        ``user_message`` is the message as sent, images as data URLs; ``figures``
        (PreparedFigure objects) only add names and sizes to the stored images.
        ``profile`` gives name, API base and parameters; its key is never read.
        ``question`` defaults to the message's text.
        """
        q = question_text(user_message) if question is None else question
        now = time.time()
        endpoint = safe_endpoint(getattr(profile, "api_base", "") or "")
        with self._transaction() as db:
            if conversation_id is not None and not conversations.exists(db, conversation_id):
                conversation_id = None  # purged meanwhile: the question starts a new one
            if conversation_id is None:
                names = [getattr(f, "name", "") for f in figures]
                conversation_id = conversations.create(
                    db,
                    {
                        "title": conversations.title_for(q, names, table_name, focus),
                        "created": now,
                        "updated": now,
                        "profile_name": getattr(profile, "name", "") or "",
                        "endpoint": endpoint,
                        "server_kind": server_kind,
                        "model": model,
                        "params": dict(params) if params is not None else profile_params(profile),
                        "system_prompt": system_prompt,
                        "context": context,
                        "focus": focus,
                        "table_name": table_name,
                        "table_summary": table_summary,
                    },
                )
            else:
                conversations.touch(db, conversation_id, now, model, endpoint, focus)
            turn_id, idx = conversations.add_turn(
                db,
                conversation_id,
                user_message=user_message,
                figures=figures,
                values={
                    "model": model,
                    "question": q,
                    "passages": passages_json(passages),
                    "started": now,
                },
            )
        return TurnRecorder(self, conversation_id, turn_id, idx)

    def _append_text(self, turn_id: int, text: str, reasoning: str) -> None:
        with self._lock:  # autocommit: one statement, one commit
            conversations.append_text(self._db, turn_id, text, reasoning)

    def _finish(self, turn_id: int, conversation_id: int, values: dict[str, Any]) -> None:
        with self._transaction() as db:
            conversations.finish_turn(db, turn_id, conversation_id, values)

    def mark_retried(self, turn_id: int) -> None:
        """Mark a failed turn as asked again: it stays in the record and in exports, but
        :meth:`StoredConversation.conversation` leaves it out of the messages."""
        with self._lock:
            conversations.mark_retried(self._db, turn_id)

    # -- reading -----------------------------------------------------------------------

    def list_conversations(
        self,
        search: str | None = None,
        model: str | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[ConversationSummary]:
        """Conversations newest first (by last activity). ``search`` matches every word
        (as a prefix) in a question or answer, or in the title; ``model`` is exact."""
        with self._lock:
            return conversations.summaries(self._db, search, model, limit, offset)

    def models(self) -> list[str]:
        """Models of the conversations not deleted, sorted, for a filter."""
        with self._lock:
            return conversations.models(self._db)

    def load_conversation(self, conversation_id: int) -> StoredConversation | None:
        """Everything about one conversation, or None if there is none with this id (or it
        is deleted). Messages carry their images as data URLs again."""
        with self._lock:
            return conversations.load(self._db, conversation_id)

    # -- editing -----------------------------------------------------------------------

    def rename(self, conversation_id: int, title: str) -> bool:
        """Set a conversation's title (blank keeps the old one); False if there is none."""
        title = " ".join(title.split())
        if not title:
            return False
        with self._lock:
            return conversations.rename(self._db, conversation_id, title)

    def delete(self, conversation_id: int) -> bool:
        """Hide a conversation (with the other panes of its comparison, if it is one);
        :meth:`undo_delete` brings it back until it is purged."""
        with self._lock:
            return conversations.delete(self._db, conversation_id, time.time())

    def delete_all(self) -> list[int]:
        """Hide every conversation; returns their ids (for :meth:`undo_delete`)."""
        with self._lock:
            return conversations.delete_all(self._db, time.time())

    def undo_delete(self, conversation_id: int | Iterable[int]) -> int:
        """Bring back deleted conversations not yet purged; returns how many came back."""
        ids = [conversation_id] if isinstance(conversation_id, int) else list(conversation_id)
        with self._lock:
            return conversations.undo_delete(self._db, ids)

    def purge_deleted(self) -> int:
        """Remove deleted conversations, their turns and figures no longer used, for good."""
        with self._transaction() as db:
            n = conversations.purge_deleted(db)
            comparisons.prune_empty(db)
            scores.prune_empty(db)
        return n

    # -- comparisons -------------------------------------------------------------------

    def create_comparison(self, title: str) -> int:
        """Start a comparison entry; link each pane's conversation with
        :meth:`link_comparison` once it exists."""
        with self._lock:
            return comparisons.create(self._db, title)

    def link_comparison(self, comparison_id: int, conversation_id: int, pane: int) -> None:
        """Make ``conversation_id`` pane ``pane`` (0-based) of the comparison; its title
        becomes the comparison's, so the one listed entry reads as a comparison."""
        with self._transaction() as db:
            comparisons.link(db, comparison_id, conversation_id, pane)

    def comparison_of(self, conversation_id: int) -> int | None:
        """The comparison a conversation is a pane of, or None."""
        with self._lock:
            return comparisons.of(self._db, conversation_id)

    def load_comparison(self, comparison_id: int) -> StoredComparison | None:
        """A comparison with each pane's conversation, or None when it has no pane left."""
        with self._lock:
            return comparisons.load(self._db, comparison_id)

    # -- usage -------------------------------------------------------------------------

    def usage_totals(self) -> UsageTotals:
        """Tokens and cost per model and per local day, this session and all time.

        Counts turns of conversations not purged (a purged conversation takes its usage
        with it)."""
        with self._lock:
            return UsageTotals(
                usage.since(self._db, self.session_started), usage.since(self._db, 0.0)
            )


__all__ = [
    "FIGURE_REF_PREFIX",
    "MIGRATIONS",
    "RETRIED",
    "SCHEMA_VERSION",
    "STATES",
    "TITLE_LENGTH",
    "ConversationSummary",
    "HistoryProblem",
    "HistoryStore",
    "StoredComparison",
    "StoredConversation",
    "StoredFigure",
    "StoredTurn",
    "TurnRecorder",
    "UsageRow",
    "UsageTotals",
    "fts_query",
    "passages_json",
    "profile_params",
    "question_text",
    "safe_endpoint",
]
