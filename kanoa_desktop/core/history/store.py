"""The history: every question and answer, stored as it happens, in one SQLite file.

Plain synchronous Python (no Qt). :class:`HistoryStore` owns one connection to
``paths.data_dir() / "history.sqlite3"`` in WAL mode; every method takes a lock, so a store
may be shared between the GUI thread and a worker pool.

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
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kanoa_desktop.core.config import paths
from kanoa_desktop.core.endpoint.chat import data_url
from kanoa_desktop.core.history import scores

log = logging.getLogger(__name__)

FILE_NAME = "history.sqlite3"
SCHEMA_VERSION = 3
FLUSH_INTERVAL_S = 1.0
FIGURE_REF_PREFIX = "kanoa-figure:sha256:"
TITLE_LENGTH = 80

RETRIED = "retried"  # finish_reason of a failed turn that was asked again
STATES = ("streaming", "done", "stopped", "error", "interrupted")

_SCHEMA_V1 = """
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the UI passes ids around
    title TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    profile_name TEXT NOT NULL DEFAULT '',
    endpoint TEXT NOT NULL DEFAULT '',
    server_kind TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL DEFAULT '{}',
    system_prompt TEXT NOT NULL DEFAULT '',
    context TEXT NOT NULL DEFAULT '',
    focus TEXT NOT NULL DEFAULT '',
    table_name TEXT NOT NULL DEFAULT '',
    table_summary TEXT NOT NULL DEFAULT '',
    deleted_at REAL
);
CREATE INDEX conversations_updated ON conversations(updated);
CREATE TABLE figures (
    hash TEXT PRIMARY KEY,
    mime TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    width INTEGER,
    height INTEGER,
    original_width INTEGER,
    original_height INTEGER,
    size_bytes INTEGER NOT NULL,
    data BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE conversation_figures (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    hash TEXT NOT NULL REFERENCES figures(hash),
    position INTEGER NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (conversation_id, hash)
);
CREATE TABLE turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL DEFAULT '',
    user_message TEXT NOT NULL,
    answer TEXT NOT NULL DEFAULT '',
    reasoning TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'streaming',
    finish_reason TEXT,
    error_title TEXT,
    error_message TEXT,
    prompt_tokens INTEGER,
    output_tokens INTEGER,
    estimated INTEGER NOT NULL DEFAULT 1,
    ttft_s REAL,
    tokens_per_s REAL,
    duration_s REAL,
    cost REAL,
    energy_wh REAL,
    passages TEXT NOT NULL DEFAULT '[]',
    started REAL NOT NULL,
    finished REAL
);
CREATE INDEX turns_conversation ON turns(conversation_id, idx);
CREATE INDEX turns_state ON turns(state);
CREATE VIRTUAL TABLE turns_fts USING fts5(question, answer);
CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns BEGIN
    DELETE FROM turns_fts WHERE rowid = old.id;
END;
"""

# A comparison (core/ask/compare.py) is one history entry over one conversation per pane:
# the list shows its first recorded pane only, and deleting any pane deletes them all.
_SCHEMA_V2 = """
CREATE TABLE comparisons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE TABLE comparison_panes (
    comparison_id INTEGER NOT NULL REFERENCES comparisons(id) ON DELETE CASCADE,
    conversation_id INTEGER NOT NULL UNIQUE REFERENCES conversations(id) ON DELETE CASCADE,
    pane INTEGER NOT NULL,
    PRIMARY KEY (comparison_id, pane)
);
"""

# MIGRATIONS[n] takes a database at user_version n to n + 1.
# v3: score runs (core/history/scores.py).
MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2, scores.SCHEMA)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class HistoryProblem:
    """Something the user should know about the history file; ``message`` says what to do."""

    message: str
    moved_to: Path | None = None


@dataclass(frozen=True)
class StoredFigure:
    """A figure as sent, stored once by the sha256 of ``data``."""

    hash: str
    mime: str
    name: str
    data: bytes = field(repr=False)
    width: int | None = None
    height: int | None = None
    original_width: int | None = None
    original_height: int | None = None

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif"}.get(self.mime, "bin")

    def data_url(self) -> str:
        return data_url(self.data, self.mime)

    def prepared(self):  # -> PreparedFigure; imported lazily (figures pulls in numpy)
        """The figure as a :class:`~kanoa_desktop.core.inputs.figures.PreparedFigure` for the
        inputs panel. ``sha256`` is that of the sent bytes (the original file is not kept)."""
        from kanoa_desktop.core.inputs.figures import PreparedFigure

        sent = (self.width or 0, self.height or 0)
        orig = (self.original_width or sent[0], self.original_height or sent[1])
        return PreparedFigure(
            name=self.name,
            original_size=orig,
            sent_size=sent,
            mime=self.mime,
            data=self.data,
            sha256=self.hash,
            source_format="JPEG" if self.mime == "image/jpeg" else "PNG",
            notes=("restored from history",),
        )


@dataclass(frozen=True)
class StoredTurn:
    """One question and its answer as recorded. ``user_message`` has data URLs rebuilt."""

    id: int
    index: int
    model: str
    question: str
    user_message: dict[str, Any]
    answer: str
    reasoning: str
    state: str
    finish_reason: str | None
    error_title: str | None
    error_message: str | None
    prompt_tokens: int | None
    output_tokens: int | None
    estimated: bool
    ttft_s: float | None
    tokens_per_s: float | None
    duration_s: float | None
    cost: float | None
    energy_wh: float | None
    passages: list[dict[str, Any]]
    started: float
    finished: float | None


@dataclass(frozen=True)
class StoredConversation:
    """Everything needed to restore a conversation into the window or to export it."""

    id: int
    title: str
    created: float
    updated: float
    profile_name: str
    endpoint: str
    server_kind: str
    model: str
    params: dict[str, Any]
    system_prompt: str
    context: str
    focus: str
    table_name: str
    table_summary: str
    figures: list[StoredFigure]
    turns: list[StoredTurn]

    def conversation(self):  # -> chat.Conversation
        """A :class:`~kanoa_desktop.core.endpoint.chat.Conversation` to continue with follow-ups.

        Turns keep their partial answers; ``finish_reason`` is the server's for finished
        turns, else the state ("stopped", "error", "interrupted"). Failed turns marked with
        :meth:`HistoryStore.mark_retried` are left out, as the window left them out.
        """
        from kanoa_desktop.core.endpoint.chat import Conversation, Turn

        conv = Conversation(system_prompt=self.system_prompt)
        for t in self.turns:
            if t.finish_reason == RETRIED:
                continue  # the window dropped this failed turn and asked again
            reason = (t.finish_reason or "stop") if t.state == "done" else t.state
            conv.turns.append(Turn(user=t.user_message, assistant=t.answer, finish_reason=reason))
        return conv

    def prepared_figures(self) -> list:
        """The figures as PreparedFigure objects, in the order they were first sent."""
        return [f.prepared() for f in self.figures]

    @property
    def sources(self) -> list[str]:
        """Knowledge-base source labels used by any turn, first use first, no repeats."""
        seen: dict[str, None] = {}
        for t in self.turns:
            for p in t.passages:
                seen.setdefault(str(p.get("label") or p.get("file") or ""), None)
        return [s for s in seen if s]


@dataclass(frozen=True)
class ConversationSummary:
    """One row of the history list."""

    id: int
    title: str
    created: float
    updated: float
    model: str
    profile_name: str
    n_turns: int
    last_state: str
    interrupted: bool  # any turn interrupted (shown with an icon)
    comparison_id: int | None = None  # the row stands for a whole comparison


@dataclass(frozen=True)
class StoredComparison:
    """A comparison (several models asked the same) as recorded: one conversation per pane,
    in pane order (panes whose question never reached a server are absent)."""

    id: int
    title: str
    created: float
    panes: list[StoredConversation]
    pane_numbers: list[int]  # 0-based pane of each conversation in ``panes``


@dataclass(frozen=True)
class UsageRow:
    model: str
    day: str  # YYYY-MM-DD, local time
    turns: int
    prompt_tokens: int
    output_tokens: int
    cost: float
    estimated: bool  # some figures are estimates, not the server's count


@dataclass(frozen=True)
class UsageTotals:
    """Per model and per day: ``session`` since this store was opened, ``all_time``."""

    session: list[UsageRow]
    all_time: list[UsageRow]

    @staticmethod
    def total(rows: Iterable[UsageRow]) -> tuple[int, int, float]:
        rows = list(rows)
        return (
            sum(r.prompt_tokens for r in rows),
            sum(r.output_tokens for r in rows),
            sum(r.cost for r in rows),
        )


# --------------------------------------------------------------------------- helpers


def safe_endpoint(api_base: str) -> str:
    """The API base without user info (``user:pass@``), query or fragment: a URL may carry
    a credential, and the history must never hold one."""
    try:
        parts = urlsplit(api_base.strip())
    except ValueError:
        return ""
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def profile_params(profile: Any) -> dict[str, Any]:
    """The generation parameters of a profile worth keeping for reproducibility."""
    keys = ("temperature", "max_tokens", "top_p", "image_long_side", "vision", "max_images")
    return {k: getattr(profile, k) for k in keys if hasattr(profile, k)}


def passages_json(passages: Any) -> list[dict[str, Any]]:
    """Knowledge-base passages (a Grounding, or Passage objects, or dicts) as JSON rows."""
    if passages is None:
        return []
    if hasattr(passages, "passages"):
        passages = passages.passages
    rows: list[dict[str, Any]] = []
    for p in passages:
        if isinstance(p, Mapping):
            rows.append(dict(p))
            continue
        src = getattr(p, "source", None)
        row: dict[str, Any] = {"number": getattr(p, "number", None), "text": getattr(p, "text", "")}
        if getattr(p, "score", None) is not None:
            row["score"] = float(p.score)
        if src is not None:
            row.update(
                file=src.file,
                path=str(src.path),
                page=src.page,
                cell=src.cell,
                line_start=src.line_start,
                line_end=src.line_end,
                label=src.label(),
            )
        rows.append(row)
    return rows


_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[^,]*)?,", re.DOTALL)


def _decode_data_url(url: str) -> tuple[str, bytes] | None:
    m = _DATA_URL.match(url)
    if not m or ";base64" not in (m.group(2) or ""):
        return None
    try:
        data = base64.b64decode(url[m.end() :], validate=False)
    except (binascii.Error, ValueError):
        return None
    return (m.group(1) or "application/octet-stream"), data


def question_text(user_message: Mapping[str, Any]) -> str:
    """The text part of a user message (string content or its first text part)."""
    content = user_message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return ""


def fts_query(search: str) -> str | None:
    """A safe FTS5 MATCH expression: every word must occur (as a prefix). None if empty."""
    words = re.findall(r"\w+", search, flags=re.UNICODE)
    if not words:
        return None
    return " ".join('"' + w.replace('"', '""') + '"*' for w in words)


# Questions that say nothing about the subject: the app's default ("Interpret.") and kanoa's.
_GENERIC_QUESTIONS = {
    "",
    "interpret",
    "interpret this figure",
    "interpret these figures",
    "interpret this data",
    "interpret this table",
    "go on",
}


def _title_for(
    question: str, figure_names: Sequence[str], table_name: str, focus: str = ""
) -> str:
    """A title that tells conversations apart: the question when it says more than
    "Interpret.", else what was asked about (figure and table names) and the focus."""
    text = " ".join(question.split())
    if text.rstrip(".?! ").lower() not in _GENERIC_QUESTIONS:
        title = text
    else:
        focus = " ".join(focus.split())
        subject = ", ".join(n.strip() for n in [*figure_names, table_name] if n and n.strip())
        if subject and focus:
            title = f"{subject}: {focus}"
        else:
            title = subject or focus or text or "Conversation"
    return title if len(title) <= TITLE_LENGTH else title[: TITLE_LENGTH - 1].rstrip() + "…"


def _timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


# --------------------------------------------------------------------------- store


# How long opening the history waits for another connection's lock before keeping this
# session's history in memory (a locked file is in use, not damaged: it is never moved).
LOCKED_WAIT_S = 10.0


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


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
        self.problem: HistoryProblem | None = None
        self.interrupted_on_open = 0
        self.in_memory = False
        self.session_started = time.time()
        self._lock = threading.RLock()
        self._db = self._open()
        if recover:
            try:
                self._recover()
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc):
                    raise
                # Another program holds the write lock past the busy timeout: reading
                # works; the recovery of interrupted turns waits for the next start.
                log.warning("history recovery skipped: %s", exc)

    # -- opening -----------------------------------------------------------------------

    def _connect(self, target: str) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each flush is one
        # short transaction. check_same_thread=False: the lock serialises use.
        db = sqlite3.connect(target, isolation_level=None, check_same_thread=False, timeout=5.0)
        db.row_factory = sqlite3.Row
        return db

    def _configure(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the process being killed (only a power
        # loss may lose the last transactions), and a commit costs no fsync.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA secure_delete=ON")  # deleted conversations leave no readable trace

    def _check(self, db: sqlite3.Connection) -> str | None:
        """None when the database is sound, else what is wrong."""
        rows = db.execute("PRAGMA integrity_check").fetchall()
        result = [r[0] for r in rows]
        if result != ["ok"]:
            return "; ".join(result[:3])
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            return None  # a newer app's file: handled by the caller, not damage
        if version >= 1:
            names = {
                r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table')")
            }
            missing = {"conversations", "turns", "figures", "turns_fts"} - names
            if missing:
                return f"tables missing: {', '.join(sorted(missing))}"
        return None

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return self._memory_fallback(f"the folder {self.path.parent} cannot be created ({exc})")
        damage: str | None = None
        db: sqlite3.Connection | None = None
        deadline = time.monotonic() + LOCKED_WAIT_S
        while True:
            try:
                db = self._connect(str(self.path))
                damage = self._check(db)
                if damage is None:
                    self._configure(db)
                    self._migrate(db)
                    return db
                break
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc):
                    damage = str(exc)
                    break
                # Locked or busy is another connection at work (a second window, the
                # command line, a start-up opening it at the same moment): never damage.
                if db is not None:
                    db.close()
                    db = None
                if time.monotonic() > deadline:
                    return self._memory_fallback(
                        f"{self.path.name} stayed locked by another program for "
                        f"{LOCKED_WAIT_S:.0f} s"
                    )
                time.sleep(0.05)
            except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed", ...
                damage = str(exc)
                break
            except OSError as exc:
                if db is not None:
                    db.close()
                return self._memory_fallback(f"{self.path} cannot be opened ({exc})")
        if db is not None:
            db.close()
        moved = self._move_aside()
        log.warning("history database damaged (%s); moved to %s", damage, moved)
        self.problem = HistoryProblem(
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
            db = self._connect(str(self.path))
            self._configure(db)
            self._migrate(db)
            return db
        except (sqlite3.Error, OSError) as exc:
            return self._memory_fallback(f"a new history file could not be created ({exc})")

    def _move_aside(self) -> Path | None:
        target = self.path.with_name(f"{self.path.name}.damaged-{_timestamp()}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.damaged-{_timestamp()}-{n}")
        try:
            os.replace(self.path, target)
        except OSError:
            return None
        for suffix in ("-wal", "-shm"):  # the log belongs to the damaged file, not the new one
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                try:
                    os.replace(side, target.with_name(target.name + suffix))
                except OSError:
                    side.unlink(missing_ok=True)
        return target

    def _memory_fallback(self, why: str) -> sqlite3.Connection:
        self.in_memory = True
        self.problem = HistoryProblem(
            f"The history cannot be saved: {why}. Conversations are kept for this session only;"
            " check that the data folder is writable and has free space, then restart."
        )
        db = self._connect(":memory:")
        db.execute("PRAGMA foreign_keys=ON")
        self._migrate(db)
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self.problem = HistoryProblem(
                "The history file was written by a newer kanoa desktop. It is used as is; "
                "update kanoa desktop if anything looks wrong."
            )
            return
        for v in range(version, SCHEMA_VERSION):
            # One transaction per step (statement by statement: executescript would commit).
            db.execute("BEGIN IMMEDIATE")
            try:
                # Read again under the write lock: another connection opening the same
                # file at the same moment may have taken this step already.
                if db.execute("PRAGMA user_version").fetchone()[0] > v:
                    db.execute("COMMIT")
                    continue
                for statement in _statements(MIGRATIONS[v]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {v + 1}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _recover(self) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            rows = db.execute("SELECT id FROM turns WHERE state = 'streaming'").fetchall()
            for r in rows:
                db.execute(
                    "UPDATE turns SET state = 'interrupted', finish_reason = 'interrupted' "
                    "WHERE id = ?",
                    (r[0],),
                )
                self._index_turn(r[0])
            db.execute("COMMIT")
            self.interrupted_on_open = len(rows)
        # Deletes of an earlier session can no longer be undone: remove them for good.
        self.purge_deleted()

    def close(self) -> None:
        """Close the connection; pending recorders should be finished first."""
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    # -- writing -----------------------------------------------------------------------

    def _index_turn(self, turn_id: int) -> None:
        self._db.execute("DELETE FROM turns_fts WHERE rowid = ?", (turn_id,))
        self._db.execute(
            "INSERT INTO turns_fts(rowid, question, answer) "
            "SELECT id, question, answer FROM turns WHERE id = ?",
            (turn_id,),
        )

    def _store_figure(self, mime: str, data: bytes, meta: Any | None) -> str:
        digest = hashlib.sha256(data).hexdigest()
        sent = getattr(meta, "sent_size", None) or (None, None)
        orig = getattr(meta, "original_size", None) or (None, None)
        if sent == (None, None):
            sent = _image_size(data)
        self._db.execute(
            "INSERT OR IGNORE INTO figures(hash, mime, name, width, height, original_width, "
            "original_height, size_bytes, data, created) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                digest,
                mime,
                getattr(meta, "name", "") or "",
                sent[0],
                sent[1],
                orig[0],
                orig[1],
                len(data),
                data,
                time.time(),
            ),
        )
        return digest

    def _strip_images(
        self, conversation_id: int, message: Mapping[str, Any], figures: Sequence[Any]
    ) -> dict[str, Any]:
        """The message with every image data URL replaced by a figure-hash reference; the
        images are stored and linked to the conversation."""
        by_bytes = {bytes(f.data): f for f in figures if getattr(f, "data", None)}
        content = message.get("content")
        if not isinstance(content, list):
            return dict(message)
        parts: list[Any] = []
        for part in content:
            url = (
                part.get("image_url", {}).get("url")
                if isinstance(part, Mapping) and part.get("type") == "image_url"
                else None
            )
            decoded = _decode_data_url(url) if isinstance(url, str) else None
            if decoded is None:
                parts.append(part)
                continue
            mime, data = decoded
            meta = by_bytes.get(data)
            digest = self._store_figure(mime, data, meta)
            pos = self._db.execute(
                "SELECT COUNT(*) FROM conversation_figures WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()[0]
            self._db.execute(
                "INSERT OR IGNORE INTO conversation_figures(conversation_id, hash, position, name)"
                " VALUES (?,?,?,?)",
                (conversation_id, digest, pos, getattr(meta, "name", "") or ""),
            )
            new = dict(part)
            new["image_url"] = {**part["image_url"], "url": FIGURE_REF_PREFIX + digest}
            parts.append(new)
        return {**message, "content": parts}

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
        and table, then the focus or the question when it is more than "Interpret."). ``user_message`` is the message as sent, images as data
        URLs; ``figures`` (PreparedFigure objects) only add names and sizes to the stored
        images. ``profile`` gives name, API base and parameters; its key is never read.
        ``question`` defaults to the message's text.
        """
        q = question_text(user_message) if question is None else question
        now = time.time()
        endpoint = safe_endpoint(getattr(profile, "api_base", "") or "")
        prof_name = getattr(profile, "name", "") or ""
        par = dict(params) if params is not None else profile_params(profile)
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if (
                    conversation_id is not None
                    and not db.execute(
                        "SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)
                    ).fetchone()
                ):
                    conversation_id = None  # purged meanwhile: the question starts a new one
                if conversation_id is None:
                    title = _title_for(
                        q, [getattr(f, "name", "") for f in figures], table_name, focus
                    )
                    cur = db.execute(
                        "INSERT INTO conversations(title, created, updated, profile_name, "
                        "endpoint, server_kind, model, params, system_prompt, context, focus, "
                        "table_name, table_summary) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            title, now, now, prof_name, endpoint, server_kind, model,
                            json.dumps(par), system_prompt, context, focus, table_name,
                            table_summary,
                        ),
                    )  # fmt: skip
                    conversation_id = int(cur.lastrowid)
                else:
                    # A follow-up may use another model or endpoint: the conversation shows
                    # the latest; each turn keeps its own model.
                    db.execute(
                        "UPDATE conversations SET updated = ?, model = COALESCE(NULLIF(?, ''), "
                        "model), endpoint = COALESCE(NULLIF(?, ''), endpoint), deleted_at = NULL"
                        " WHERE id = ?",
                        (now, model, endpoint, conversation_id),
                    )
                    if focus:
                        db.execute(
                            "UPDATE conversations SET focus = ? WHERE id = ?",
                            (focus, conversation_id),
                        )
                idx = db.execute(
                    "SELECT COUNT(*) FROM turns WHERE conversation_id = ?", (conversation_id,)
                ).fetchone()[0]
                stored = self._strip_images(conversation_id, user_message, figures)
                cur = db.execute(
                    "INSERT INTO turns(conversation_id, idx, model, question, user_message, "
                    "state, passages, started) VALUES (?,?,?,?,?,'streaming',?,?)",
                    (
                        conversation_id,
                        idx,
                        model,
                        q,
                        json.dumps(stored, ensure_ascii=False),
                        json.dumps(passages_json(passages), ensure_ascii=False),
                        now,
                    ),
                )
                turn_id = int(cur.lastrowid)
                self._index_turn(turn_id)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return TurnRecorder(self, conversation_id, turn_id, idx)

    def _flush(self, turn_id: int, text: str, reasoning: str) -> None:
        with self._lock:
            # Appending on the SQL side sends only the new text; autocommit = one commit.
            self._db.execute(
                "UPDATE turns SET answer = answer || ?, reasoning = reasoning || ? WHERE id = ?",
                (text, reasoning, turn_id),
            )

    def _finish(self, turn_id: int, conversation_id: int, values: dict[str, Any]) -> None:
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(f"UPDATE turns SET {cols} WHERE id = ?", (*values.values(), turn_id))
                db.execute(
                    "UPDATE conversations SET updated = ? WHERE id = ?",
                    (time.time(), conversation_id),
                )
                self._index_turn(turn_id)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def mark_retried(self, turn_id: int) -> None:
        """Mark a failed turn as asked again: it stays in the record and in exports, but
        :meth:`StoredConversation.conversation` leaves it out of the messages."""
        with self._lock:
            self._db.execute(
                "UPDATE turns SET finish_reason = ? WHERE id = ? AND state = 'error'",
                (RETRIED, turn_id),
            )

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
        where = ["c.deleted_at IS NULL"]
        args: list[Any] = []
        match = fts_query(search or "")
        if search and match is None:
            return []
        if match is not None:
            where.append(
                "(c.id IN (SELECT t.conversation_id FROM turns t JOIN turns_fts f "
                "ON f.rowid = t.id WHERE turns_fts MATCH ?) OR c.title LIKE ? ESCAPE '\\')"
            )
            like = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args += [match, f"%{like}%"]
        if model:
            where.append("c.model = ?")
            args.append(model)
        # A comparison is one entry: only its first pane still in the history is listed.
        where.append(
            "NOT EXISTS (SELECT 1 FROM comparison_panes cp WHERE cp.conversation_id = c.id "
            "AND cp.pane > (SELECT MIN(cp2.pane) FROM comparison_panes cp2 JOIN conversations "
            "c2 ON c2.id = cp2.conversation_id WHERE cp2.comparison_id = cp.comparison_id "
            "AND c2.deleted_at IS NULL))"
        )
        where.append(scores.NOT_A_SCORED_ITEM)  # a score run's items are not entries
        sql = (
            "SELECT c.id, c.title, c.created, c.updated, c.model, c.profile_name, "
            "(SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id) AS n_turns, "
            "(SELECT state FROM turns t WHERE t.conversation_id = c.id ORDER BY idx DESC "
            "LIMIT 1) AS last_state, "
            "EXISTS(SELECT 1 FROM turns t WHERE t.conversation_id = c.id "
            "AND t.state = 'interrupted') AS interrupted, "
            "(SELECT cp.comparison_id FROM comparison_panes cp WHERE cp.conversation_id = c.id)"
            " AS comparison_id "
            f"FROM conversations c WHERE {' AND '.join(where)} "
            "ORDER BY c.updated DESC, c.id DESC LIMIT ? OFFSET ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (*args, limit, offset)).fetchall()
        return [
            ConversationSummary(
                id=r["id"],
                title=r["title"],
                created=r["created"],
                updated=r["updated"],
                model=r["model"],
                profile_name=r["profile_name"],
                n_turns=r["n_turns"],
                last_state=r["last_state"] or "",
                interrupted=bool(r["interrupted"]),
                comparison_id=r["comparison_id"],
            )
            for r in rows
        ]

    def models(self) -> list[str]:
        """Models of the conversations not deleted, sorted, for a filter."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT model FROM conversations WHERE deleted_at IS NULL "
                "AND model != '' ORDER BY model"
            ).fetchall()
        return [r[0] for r in rows]

    def load_conversation(self, conversation_id: int) -> StoredConversation | None:
        """Everything about one conversation, or None if there is none with this id (or it
        is deleted). Messages carry their images as data URLs again."""
        with self._lock:
            db = self._db
            c = db.execute(
                "SELECT * FROM conversations WHERE id = ? AND deleted_at IS NULL",
                (conversation_id,),
            ).fetchone()
            if c is None:
                return None
            fig_rows = db.execute(
                "SELECT f.*, cf.name AS link_name FROM conversation_figures cf JOIN figures f "
                "ON f.hash = cf.hash WHERE cf.conversation_id = ? ORDER BY cf.position",
                (conversation_id,),
            ).fetchall()
            turn_rows = db.execute(
                "SELECT * FROM turns WHERE conversation_id = ? ORDER BY idx", (conversation_id,)
            ).fetchall()
        figures = [
            StoredFigure(
                hash=r["hash"],
                mime=r["mime"],
                name=r["link_name"] or r["name"] or f"figure-{r['hash'][:8]}",
                data=bytes(r["data"]),
                width=r["width"],
                height=r["height"],
                original_width=r["original_width"],
                original_height=r["original_height"],
            )
            for r in fig_rows
        ]
        urls = {f.hash: f.data_url() for f in figures}
        turns = [
            StoredTurn(
                id=r["id"],
                index=r["idx"],
                model=r["model"],
                question=r["question"],
                user_message=_restore_images(json.loads(r["user_message"]), urls),
                answer=r["answer"],
                reasoning=r["reasoning"],
                state=r["state"],
                finish_reason=r["finish_reason"],
                error_title=r["error_title"],
                error_message=r["error_message"],
                prompt_tokens=r["prompt_tokens"],
                output_tokens=r["output_tokens"],
                estimated=bool(r["estimated"]),
                ttft_s=r["ttft_s"],
                tokens_per_s=r["tokens_per_s"],
                duration_s=r["duration_s"],
                cost=r["cost"],
                energy_wh=r["energy_wh"],
                passages=json.loads(r["passages"] or "[]"),
                started=r["started"],
                finished=r["finished"],
            )
            for r in turn_rows
        ]
        return StoredConversation(
            id=c["id"],
            title=c["title"],
            created=c["created"],
            updated=c["updated"],
            profile_name=c["profile_name"],
            endpoint=c["endpoint"],
            server_kind=c["server_kind"],
            model=c["model"],
            params=json.loads(c["params"] or "{}"),
            system_prompt=c["system_prompt"],
            context=c["context"],
            focus=c["focus"],
            table_name=c["table_name"],
            table_summary=c["table_summary"],
            figures=figures,
            turns=turns,
        )

    # -- editing -----------------------------------------------------------------------

    def rename(self, conversation_id: int, title: str) -> bool:
        """Set a conversation's title (blank keeps the old one); False if there is none."""
        title = " ".join(title.split())
        if not title:
            return False
        with self._lock:
            cur = self._db.execute(
                "UPDATE conversations SET title = ? WHERE id = ? AND deleted_at IS NULL",
                (title, conversation_id),
            )
        return cur.rowcount > 0

    def delete(self, conversation_id: int) -> bool:
        """Hide a conversation (with the other panes of its comparison, if it is one);
        :meth:`undo_delete` brings it back until it is purged."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE conversations SET deleted_at = ? WHERE deleted_at IS NULL AND id IN "
                f"({_WITH_PANES})",
                (time.time(), conversation_id, conversation_id),
            )
        return cur.rowcount > 0

    def delete_all(self) -> list[int]:
        """Hide every conversation; returns their ids (for :meth:`undo_delete`)."""
        with self._lock:
            ids = [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM conversations WHERE deleted_at IS NULL"
                ).fetchall()
            ]
            self._db.execute(
                "UPDATE conversations SET deleted_at = ? WHERE deleted_at IS NULL", (time.time(),)
            )
        return ids

    def undo_delete(self, conversation_id: int | Iterable[int]) -> int:
        """Bring back deleted conversations not yet purged; returns how many came back."""
        ids = [conversation_id] if isinstance(conversation_id, int) else list(conversation_id)
        n = 0
        with self._lock:
            for cid in ids:
                n += self._db.execute(
                    f"UPDATE conversations SET deleted_at = NULL WHERE id IN ({_WITH_PANES}) "
                    "AND deleted_at IS NOT NULL",
                    (cid, cid),
                ).rowcount
        return n

    def purge_deleted(self) -> int:
        """Remove deleted conversations, their turns and figures no longer used, for good."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                n = db.execute("DELETE FROM conversations WHERE deleted_at IS NOT NULL").rowcount
                db.execute(
                    "DELETE FROM figures WHERE hash NOT IN (SELECT hash FROM conversation_figures)"
                )
                db.execute(  # comparisons whose every pane is gone
                    "DELETE FROM comparisons WHERE id NOT IN "
                    "(SELECT comparison_id FROM comparison_panes)"
                )
                db.execute(scores.PURGE_EMPTY_RUNS)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return n

    # -- comparisons -------------------------------------------------------------------

    def create_comparison(self, title: str) -> int:
        """Start a comparison entry; link each pane's conversation with
        :meth:`link_comparison` once it exists."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO comparisons(title, created) VALUES (?, ?)",
                (" ".join(title.split())[: TITLE_LENGTH * 2], time.time()),
            )
        return int(cur.lastrowid)

    def link_comparison(self, comparison_id: int, conversation_id: int, pane: int) -> None:
        """Make ``conversation_id`` pane ``pane`` (0-based) of the comparison; its title
        becomes the comparison's, so the one listed entry reads as a comparison."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT OR REPLACE INTO comparison_panes(comparison_id, conversation_id, pane)"
                    " VALUES (?, ?, ?)",
                    (comparison_id, conversation_id, pane),
                )
                db.execute(
                    "UPDATE conversations SET title = (SELECT title FROM comparisons "
                    "WHERE id = ?) WHERE id = ?",
                    (comparison_id, conversation_id),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def comparison_of(self, conversation_id: int) -> int | None:
        """The comparison a conversation is a pane of, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT comparison_id FROM comparison_panes WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
        return int(row[0]) if row else None

    def load_comparison(self, comparison_id: int) -> StoredComparison | None:
        """A comparison with each pane's conversation, or None when it has no pane left."""
        with self._lock:
            head = self._db.execute(
                "SELECT * FROM comparisons WHERE id = ?", (comparison_id,)
            ).fetchone()
            links = self._db.execute(
                "SELECT conversation_id, pane FROM comparison_panes WHERE comparison_id = ? "
                "ORDER BY pane",
                (comparison_id,),
            ).fetchall()
        if head is None:
            return None
        panes, numbers = [], []
        for link in links:
            conv = self.load_conversation(link["conversation_id"])
            if conv is not None:
                panes.append(conv)
                numbers.append(int(link["pane"]))
        if not panes:
            return None
        return StoredComparison(head["id"], head["title"], head["created"], panes, numbers)

    # -- usage -------------------------------------------------------------------------

    def usage_totals(self) -> UsageTotals:
        """Tokens and cost per model and per local day, this session and all time.

        Counts turns of conversations not purged (a purged conversation takes its usage
        with it)."""
        sql = (
            "SELECT t.model AS model, date(t.started, 'unixepoch', 'localtime') AS day, "
            "COUNT(*) AS turns, COALESCE(SUM(t.prompt_tokens), 0) AS p, "
            "COALESCE(SUM(t.output_tokens), 0) AS o, COALESCE(SUM(t.cost), 0.0) AS cost, "
            "MAX(t.estimated) AS est FROM turns t WHERE t.started >= ? "
            "GROUP BY model, day ORDER BY day DESC, model"
        )
        with self._lock:
            session = self._db.execute(sql, (self.session_started,)).fetchall()
            all_time = self._db.execute(sql, (0.0,)).fetchall()

        def rows(rs: list[sqlite3.Row]) -> list[UsageRow]:
            return [
                UsageRow(
                    r["model"], r["day"], r["turns"], r["p"], r["o"], r["cost"], bool(r["est"])
                )
                for r in rs
            ]

        return UsageTotals(rows(session), rows(all_time))


# The ids of a conversation and of the other panes of its comparison (two ? parameters).
_WITH_PANES = (
    "SELECT ? UNION SELECT cp.conversation_id FROM comparison_panes cp WHERE cp.comparison_id "
    "= (SELECT comparison_id FROM comparison_panes WHERE conversation_id = ?)"
)


def _statements(script: str) -> list[str]:
    """Split a schema script into statements (triggers contain ';' inside BEGIN..END)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def _restore_images(message: dict[str, Any], urls: Mapping[str, str]) -> dict[str, Any]:
    content = message.get("content")
    if not isinstance(content, list):
        return message
    parts = []
    for part in content:
        url = part.get("image_url", {}).get("url") if isinstance(part, dict) else None
        if isinstance(url, str) and url.startswith(FIGURE_REF_PREFIX):
            digest = url[len(FIGURE_REF_PREFIX) :]
            part = {**part, "image_url": {**part["image_url"], "url": urls.get(digest, url)}}
        parts.append(part)
    return {**message, "content": parts}


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    try:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # noqa: BLE001 - any failure just means "size unknown"
        return (None, None)


# --------------------------------------------------------------------------- recorder


class TurnRecorder:
    """Records one streamed answer. Call :meth:`append` per delta, then :meth:`finish`.

    ``append`` never blocks on more than one small UPDATE, and only when at least
    ``flush_interval_s`` passed since the last write (by the store's monotonic clock).
    :meth:`flush_if_due` lets a timer write buffered text when deltas stop arriving.
    """

    def __init__(self, store: HistoryStore, conversation_id: int, turn_id: int, index: int) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.turn_id = turn_id
        self.index = index
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._last_flush = store.clock()
        self.finished = False
        self.writes = 0  # how many flushes reached the database (for tests and benches)

    def append(self, text: str) -> None:
        """Add answer text; written within about ``flush_interval_s``."""
        if self.finished or not text:
            return
        self._text.append(text)
        self.flush_if_due()

    def append_reasoning(self, text: str) -> None:
        """Add reasoning text (kept apart from the answer)."""
        if self.finished or not text:
            return
        self._reasoning.append(text)
        self.flush_if_due()

    def flush_if_due(self) -> bool:
        """Write buffered text if the interval has passed; True when it wrote."""
        if self.store.clock() - self._last_flush >= self.store.flush_interval_s:
            return self.flush()
        return False

    def flush(self) -> bool:
        """Write buffered text now; True when there was something to write."""
        self._last_flush = self.store.clock()
        if not (self._text or self._reasoning) or self.finished:
            return False
        text, reasoning = "".join(self._text), "".join(self._reasoning)
        self._text.clear()
        self._reasoning.clear()
        try:
            self.store._flush(self.turn_id, text, reasoning)
        except sqlite3.Error as exc:
            # Keep the text for the next try; the answer on screen is unaffected.
            self._text.insert(0, text)
            self._reasoning.insert(0, reasoning)
            log.warning("history write failed: %s", exc)
            return False
        self.writes += 1
        return True

    def finish(
        self,
        state: str = "done",
        finish_reason: str | None = None,
        *,
        stats: Any = None,
        answer: str | None = None,
        reasoning: str | None = None,
        error_title: str | None = None,
        error_message: str | None = None,
        energy_wh: float | None = None,
        passages: Any = None,
    ) -> None:
        """Close the turn: ``state`` is done, stopped, error or interrupted.

        ``stats`` (a :class:`~kanoa_desktop.core.endpoint.stats.StreamStats`) gives tokens, the
        estimated flag, TTFT, tokens/s, duration and cost. ``answer``/``reasoning``, when
        given, replace the recorded text (the full text from ``Finished``); otherwise the
        buffered text is written. A second call does nothing.
        """
        if self.finished:
            return
        if state not in STATES or state == "streaming":
            raise ValueError(f"not a final state: {state!r}")
        values: dict[str, Any] = {
            "state": state,
            "finish_reason": finish_reason or (stats.finish_reason if stats else None),
            "error_title": error_title,
            "error_message": error_message,
            "energy_wh": energy_wh,
            "finished": time.time(),
        }
        if stats is not None:
            now = time.monotonic()
            values.update(
                prompt_tokens=stats.prompt_tokens,
                output_tokens=stats.output_tokens,
                estimated=int(bool(stats.estimated)),
                ttft_s=stats.ttft_s,
                tokens_per_s=stats.tokens_per_s(now),
                duration_s=stats.elapsed(now),
                cost=stats.cost,
            )
        if passages is not None:
            values["passages"] = json.dumps(passages_json(passages), ensure_ascii=False)
        if answer is None or reasoning is None:
            self.flush()  # the buffered remainder, then the final values
        if answer is not None:
            values["answer"] = answer
        if reasoning is not None:
            values["reasoning"] = reasoning
        self.finished = True
        self.store._finish(self.turn_id, self.conversation_id, values)


__all__ = [
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
    "safe_endpoint",
]
