"""The history: every question and answer, stored as it happens, in one SQLite file.

Plain synchronous Python (no Qt). :class:`HistoryStore` owns one connection to
``paths.data_dir() / "history.sqlite3"`` in WAL mode; every method takes a lock, so a store
may be shared between the GUI thread and a worker pool. This module is the history's
public face: the records and helpers its callers use are importable from here.

What a caller may rely on:

- A streamed answer is recorded through a :class:`TurnRecorder`: ``append`` buffers text and
  writes it (one small ``UPDATE``, committed) at most once per ``flush_interval_s`` (1 s), so
  a process killed mid-stream loses at most about a second. On the next open (by the
  window), a turn still ``streaming`` whose process is gone becomes ``interrupted``
  (``store.interrupted_on_open`` says how many); one another process is still writing is
  left alone (see ``liveness``).
- Figures are stored once, keyed by the sha256 of the bytes that were sent. The stored user
  message holds ``kanoa-figure:sha256:<hex>`` references instead of data URLs;
  :meth:`HistoryStore.load_conversation` rebuilds the data URLs.
- No API key is ever written: a profile contributes its name, API base (without user info
  or query string) and generation parameters only.
- Nothing is lost to a disk that cannot be written (full, read-only, locked, gone): the
  file is kept, ``store.problem`` says what happened and what to do, and each write waits
  in memory (``store.pending`` counts them) until a later write or :meth:`retry` finds the
  disk writable again; subscribers (:meth:`subscribe`) hear each change. Ids handed out
  meanwhile are placeholders (negative) that every method accepts.
- Only a file SQLite itself finds damaged is moved aside (``history.sqlite3.damaged-<time>``)
  and replaced by a fresh one; opening never raises for any of these.
- Deleting is soft until :meth:`HistoryStore.purge_deleted` (or the next open), so a delete
  can be undone; purged content is overwritten (``secure_delete``).

The package, by concept: ``schema`` (tables, migrations), ``connection`` (opening, damage
and disk trouble), ``records`` (the records and the one row mapping per table),
``conversations``, ``figures``, ``comparisons``, ``usage``, ``liveness`` (who is writing
a streaming turn), ``recorder`` (:class:`TurnRecorder`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanoa_desktop.core.config import disk, paths
from kanoa_desktop.core.history import (
    comparisons,
    connection,
    conversations,
    liveness,
    scores,
    usage,
)
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
RETRY_INTERVAL_S = 2.0  # waiting writes are tried again at most this often, on later writes

_Write = Callable[[sqlite3.Connection], Any]
WAITING = object()  # what a write returns when it waits in memory for the disk
_Done = Callable[[Any], None]


@dataclass
class _Append:
    """A streaming turn's next text, as a write (merged with the next while they wait)."""

    store: HistoryStore
    turn: int
    text: str
    reasoning: str

    def __call__(self, db: sqlite3.Connection) -> None:
        real = self.store.real_id(self.turn)
        if real is not None:
            conversations.append_text(db, real, self.text, self.reasoning, time.time())


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
        # its deletes may still be undone.
        self.path = Path(path) if path is not None else paths.data_dir() / FILE_NAME
        self.clock = clock
        self.flush_interval_s = flush_interval_s
        self.interrupted_on_open = 0
        self.session_started = time.time()
        self._lock = threading.RLock()
        self._waiting: list[tuple[_Write, _Done | None]] = []
        self._ids: dict[int, int] = {}  # placeholder -> id, once its row is written
        self._last_ref = 0
        self._listeners: list[Callable[[HistoryProblem | None], None]] = []
        self._presence: liveness.Presence | None = None
        opened = connection.open_database(self.path)
        self._db = opened.db
        self._writable = opened.writable
        self.in_memory = opened.in_memory
        self.problem: HistoryProblem | None = opened.problem
        self._last_try = clock()
        if recover and self._writable:
            self._recover()

    # -- the write path ------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """How many writes wait in memory for the disk."""
        return len(self._waiting)

    @property
    def blocked(self) -> bool:
        """True while writes cannot reach the file: they wait in memory (see ``problem``)."""
        passing = self.problem is not None and self.problem.kind in connection.PASSING
        return bool(self._waiting) or not self._writable or passing

    def subscribe(self, listener: Callable[[HistoryProblem | None], None]) -> None:
        """Call ``listener(problem)`` whenever ``problem`` changes (None: all written). It
        runs on the thread that wrote."""
        self._listeners.append(listener)

    def _set_problem(self, problem: HistoryProblem | None) -> None:
        if problem == self.problem:
            return
        self.problem = problem
        for listener in list(self._listeners):
            listener(problem)

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
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _run(self, write: _Write, done: _Done | None) -> Any:
        with self._transaction() as db:
            result = write(db)
        if done is not None:
            done(result)
        return result

    def _trouble(self, exc: BaseException) -> bool:
        """True (and the problem said) when ``exc`` is the disk refusing a write."""
        kind = disk.trouble_of(exc, self.path.parent)
        if kind is None:
            if not disk.says_corrupt(exc):
                return False
            # Reopening runs SQLite's integrity check: only then is the file moved aside.
            self._writable = False
            problem = HistoryProblem(
                f"The history file reports damage ({exc}). New answers are kept in memory "
                "and saved once the file is checked; if it stays, restart kanoa desktop.",
                kind=connection.SUSPECT,
            )
        else:
            if kind == disk.UNREACHABLE:
                self._writable = False  # a drive that went away: open the file again later
            shown = not self.in_memory
            problem = connection.trouble_problem(kind, self.path, str(exc), shown=shown)
        if problem != self.problem:  # the faces say it (banner, stderr); the log, the cause
            log.info("history writes kept in memory (%s): %s", problem.kind, exc)
        self._set_problem(problem)
        return True

    def _write(self, write: _Write, done: _Done | None = None, *, keep: bool = True) -> Any:
        """Run ``write(db)`` in one transaction after the writes waiting before it, then
        ``done(result)``; returns the result, or :data:`WAITING` when the disk refused and
        the write waits in memory (``keep``; else it is dropped, as a heartbeat is)."""
        with self._lock:
            if self._waiting and self.clock() - self._last_try >= RETRY_INTERVAL_S:
                self._write_waiting()
            if not self._waiting and self._writable:
                try:
                    return self._run(write, done)
                except (sqlite3.Error, OSError) as exc:
                    if not self._trouble(exc):
                        raise
            if not keep:
                return WAITING
            last = self._waiting[-1][0] if self._waiting else None
            if isinstance(write, _Append) and self._appends_to(last, write.turn):
                last.text += write.text  # one write per turn, not one per flush
                last.reasoning += write.reasoning
            else:
                self._waiting.append((write, done))
            return WAITING

    def _appends_to(self, write: Any, turn_id: int) -> bool:
        if not isinstance(write, _Append):
            return False
        real = self.real_id(write.turn)
        return write.turn == turn_id or real is not None and real == self.real_id(turn_id)

    def retry(self) -> bool:
        """Write what waits, now; True when nothing waits any more."""
        with self._lock:
            if self._waiting or self.problem is not None and not self._writable:
                self._write_waiting()
            return not self._waiting

    def _write_waiting(self) -> None:
        self._last_try = self.clock()
        if not self._writable and not self._reopen():
            return
        while self._waiting:
            write, done = self._waiting[0]
            try:
                self._run(write, done)
            except (sqlite3.Error, OSError) as exc:
                if self._trouble(exc):
                    return
                # Not the disk: this write cannot succeed; the ones after it still may.
                log.error("history write dropped: %s", exc, exc_info=exc)
            self._waiting.pop(0)
        if self.problem is not None and self.problem.kind in connection.PASSING:
            log.info("history: the writes kept in memory are saved")
            self._set_problem(None)

    def _reopen(self) -> bool:
        """Open the file for writing again (it was read-only, locked or gone)."""
        # No wait for a lock, no integrity check (unless a write met damage): this runs
        # on the thread that writes, the GUI's in the window.
        suspect = self.problem is not None and self.problem.kind == connection.SUSPECT
        opened = connection.open_database(self.path, locked_wait_s=0, check=suspect)
        if not opened.writable:
            opened.db.close()
            return False
        self._db.close()
        self._db, self._writable, self.in_memory = opened.db, True, False
        if opened.problem is not None:
            self._set_problem(opened.problem)
        return True

    def _ref(self) -> int:
        self._last_ref -= 1
        return self._last_ref

    def real_id(self, ref: int | None) -> int | None:
        """The id behind ``ref``: itself, or the row a placeholder became (None: not yet)."""
        if ref is None or ref >= 0:
            return ref
        return self._ids.get(ref)

    def _recover(self) -> None:
        folder, now = self.path.parent, time.time()

        def live(owner: str | None, beat: float | None) -> bool:
            return liveness.is_live(folder, owner, beat, now)

        try:
            with self._transaction() as db:
                self.interrupted_on_open = conversations.interrupt_stale(db, live)
            liveness.sweep(folder)
            # Deletes of an earlier session can no longer be undone: remove them for good.
            self.purge_deleted()
        except (sqlite3.Error, OSError) as exc:
            if disk.trouble_of(exc, folder) is None:
                raise
            # Reading works; recovery waits for a start that can write.
            log.info("history recovery skipped: %s", exc)

    def close(self) -> None:
        """Write what waits if the disk allows, and close. Recorders should be finished
        first; ``pending`` then says what could not be written."""
        with self._lock:
            if self._waiting:
                self._write_waiting()
                if self._waiting:
                    log.info("history: %d write(s) could not be saved", len(self._waiting))
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            if self._presence is not None:
                self._presence.close()

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
        with self._lock:
            if self._presence is None:
                self._presence = liveness.Presence(self.path.parent)
            conv_ref = self._ref() if conversation_id is None else conversation_id
            recorder = TurnRecorder(self, conv_ref, self._ref(), -1)
        figures = list(figures)

        def write(db: sqlite3.Connection) -> tuple[int, int, int]:
            cid = self.real_id(conv_ref)
            if cid is not None and not conversations.exists(db, cid):
                cid = None  # purged meanwhile: the question starts a new one
            if cid is None:
                names = [getattr(f, "name", "") for f in figures]
                cid = conversations.create(
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
                conversations.touch(db, cid, now, model, endpoint, focus)
            tid, idx = conversations.add_turn(
                db,
                cid,
                user_message=user_message,
                figures=figures,
                values={
                    "model": model,
                    "question": q,
                    "passages": passages_json(passages),
                    "started": now,
                    "owner": self._presence.token if self._presence else None,
                    "beat": time.time(),
                },
            )
            return cid, tid, idx

        def done(result: tuple[int, int, int]) -> None:
            cid, tid, idx = result
            if conv_ref < 0:
                self._ids[conv_ref] = cid
            self._ids[recorder.turn_id] = tid
            recorder.conversation_id, recorder.turn_id, recorder.index = cid, tid, idx

        self._write(write, done)
        return recorder

    def _append_text(self, turn_id: int, text: str, reasoning: str) -> bool:
        return self._write(_Append(self, turn_id, text, reasoning)) is not WAITING

    def _beat(self, turn_id: int) -> bool:
        def write(db: sqlite3.Connection) -> None:
            real = self.real_id(turn_id)
            if real is not None:
                conversations.beat(db, real, time.time())

        return self._write(write, keep=False) is not WAITING  # a late heartbeat says nothing

    def _finish(self, turn_id: int, conversation_id: int, values: dict[str, Any]) -> bool:
        if "answer" in values and "reasoning" in values:
            with self._lock:  # the whole text comes with it: appends still waiting go
                self._waiting = [w for w in self._waiting if not self._appends_to(w[0], turn_id)]

        def write(db: sqlite3.Connection) -> None:
            tid, cid = self.real_id(turn_id), self.real_id(conversation_id)
            if tid is not None and cid is not None:
                conversations.finish_turn(db, tid, cid, values)

        return self._write(write) is not WAITING

    def mark_retried(self, turn_id: int) -> None:
        """Mark a failed turn as asked again: it stays in the record and in exports, but
        :meth:`StoredConversation.conversation` leaves it out of the messages."""

        def write(db: sqlite3.Connection) -> None:
            real = self.real_id(turn_id)
            if real is not None:
                conversations.mark_retried(db, real)

        self._write(write)

    # -- reading -----------------------------------------------------------------------

    def list_conversations(
        self,
        search: str | None = None,
        model: str | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[ConversationSummary]:
        """Conversations newest first (by last activity). ``search`` matches every word
        (as a prefix) in a question or answer, or in the title; ``model`` is exact. Writes
        waiting for the disk are not among them yet."""
        with self._lock:
            return conversations.summaries(self._db, search, model, limit, offset)

    def models(self) -> list[str]:
        """Models of the conversations not deleted, sorted, for a filter."""
        with self._lock:
            return conversations.models(self._db)

    def load_conversation(self, conversation_id: int) -> StoredConversation | None:
        """Everything about one conversation, or None if there is none with this id (or it
        is deleted, or still waits for the disk). Messages carry their images as data URLs
        again."""
        with self._lock:
            real = self.real_id(conversation_id)
            return None if real is None else conversations.load(self._db, real)

    # -- editing -----------------------------------------------------------------------

    def _edit(self, conversation_id: int, edit: Callable[[sqlite3.Connection, int], Any]) -> bool:
        """Run ``edit(db, id)``: True when it changed the conversation, or waits to (the
        disk refused it for now); False when there is no such conversation."""

        def write(db: sqlite3.Connection) -> Any:
            real = self.real_id(conversation_id)
            return None if real is None else edit(db, real)

        result = self._write(write)
        return result is WAITING or bool(result)

    def rename(self, conversation_id: int, title: str) -> bool:
        """Set a conversation's title (blank keeps the old one); False if there is none."""
        title = " ".join(title.split())
        if not title:
            return False
        return self._edit(conversation_id, lambda db, cid: conversations.rename(db, cid, title))

    def delete(self, conversation_id: int) -> bool:
        """Hide a conversation (with the other panes of its comparison, if it is one);
        :meth:`undo_delete` brings it back until it is purged."""
        now = time.time()
        return self._edit(conversation_id, lambda db, cid: conversations.delete(db, cid, now))

    def delete_all(self) -> list[int]:
        """Hide every conversation; returns their ids (for :meth:`undo_delete`). Done now
        or not at all: while the disk refuses writes, nothing is hidden and [] returned."""
        now = time.time()
        ids = self._write(lambda db: conversations.delete_all(db, now), keep=False)
        return [] if ids is WAITING else ids

    def undo_delete(self, conversation_id: int | Iterable[int]) -> int:
        """Bring back deleted conversations not yet purged; returns how many came back."""
        refs = [conversation_id] if isinstance(conversation_id, int) else list(conversation_id)

        def write(db: sqlite3.Connection) -> int:
            ids = [i for i in map(self.real_id, refs) if i is not None]
            return conversations.undo_delete(db, ids)

        n = self._write(write)
        return 0 if n is WAITING else n

    def purge_deleted(self) -> int:
        """Remove deleted conversations, their turns and figures no longer used, for good."""

        def write(db: sqlite3.Connection) -> int:
            purged = conversations.purge_deleted(db)
            comparisons.prune_empty(db)
            scores.prune_empty(db)
            return purged

        n = self._write(write)
        return 0 if n is WAITING else n

    # -- comparisons -------------------------------------------------------------------

    def create_comparison(self, title: str) -> int:
        """Start a comparison entry; link each pane's conversation with
        :meth:`link_comparison` once it exists."""
        ref = self._ref()
        self._write(
            lambda db: comparisons.create(db, title), lambda cid: self._ids.update({ref: cid})
        )
        return self._ids.get(ref, ref)

    def link_comparison(self, comparison_id: int, conversation_id: int, pane: int) -> None:
        """Make ``conversation_id`` pane ``pane`` (0-based) of the comparison; its title
        becomes the comparison's, so the one listed entry reads as a comparison."""

        def write(db: sqlite3.Connection) -> None:
            comp, conv = self.real_id(comparison_id), self.real_id(conversation_id)
            if comp is not None and conv is not None:
                comparisons.link(db, comp, conv, pane)

        self._write(write)

    def comparison_of(self, conversation_id: int) -> int | None:
        """The comparison a conversation is a pane of, or None."""
        with self._lock:
            real = self.real_id(conversation_id)
            return None if real is None else comparisons.of(self._db, real)

    def load_comparison(self, comparison_id: int) -> StoredComparison | None:
        """A comparison with each pane's conversation, or None when it has no pane left."""
        with self._lock:
            real = self.real_id(comparison_id)
            return None if real is None else comparisons.load(self._db, real)

    # -- usage -------------------------------------------------------------------------

    def usage_totals(self) -> UsageTotals:
        """Tokens and cost per model and per local day, this session and all time.

        Counts turns of conversations not purged (a purged conversation takes its usage
        with it)."""
        with self._lock:
            db = self._db
            return UsageTotals(usage.since(db, self.session_started), usage.since(db, 0.0))


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
