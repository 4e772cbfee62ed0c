"""Conversations and their turns: recording, listing, searching, loading, deleting.

Functions over an open connection; :class:`~kanoa_desktop.core.history.store.HistoryStore`
calls them under its lock and owns the transactions' boundaries where it says so. Each
turn's question and answer are kept in the ``turns_fts`` full-text index.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kanoa_desktop.core.history import figures as figure_store
from kanoa_desktop.core.history import scores
from kanoa_desktop.core.history.records import (
    CONVERSATIONS,
    RETRIED,
    TURNS,
    ConversationSummary,
    StoredConversation,
    StoredTurn,
)

TITLE_LENGTH = 80

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

# The ids of a conversation and of the other panes of its comparison (two ? parameters).
_WITH_PANES = (
    "SELECT ? UNION SELECT cp.conversation_id FROM comparison_panes cp WHERE cp.comparison_id "
    "= (SELECT comparison_id FROM comparison_panes WHERE conversation_id = ?)"
)


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


def title_for(question: str, figure_names: Sequence[str], table_name: str, focus: str = "") -> str:
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


# --------------------------------------------------------------------------- writing


def index_turn(db: sqlite3.Connection, turn_id: int) -> None:
    db.execute("DELETE FROM turns_fts WHERE rowid = ?", (turn_id,))
    db.execute(
        "INSERT INTO turns_fts(rowid, question, answer) "
        "SELECT id, question, answer FROM turns WHERE id = ?",
        (turn_id,),
    )


def exists(db: sqlite3.Connection, conversation_id: int) -> bool:
    return (
        db.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        is not None
    )


def create(db: sqlite3.Connection, values: Mapping[str, Any]) -> int:
    """A new conversation from its field values; returns its id."""
    return CONVERSATIONS.insert(db, values)


def touch(
    db: sqlite3.Connection, conversation_id: int, now: float, model: str, endpoint: str, focus: str
) -> None:
    """A follow-up: the conversation shows the latest model, endpoint and focus (each turn
    keeps its own model), comes back if it was deleted, and moves to the top."""
    db.execute(
        "UPDATE conversations SET updated = ?, model = COALESCE(NULLIF(?, ''), model), "
        "endpoint = COALESCE(NULLIF(?, ''), endpoint), focus = COALESCE(NULLIF(?, ''), focus), "
        "deleted_at = NULL WHERE id = ?",
        (now, model, endpoint, focus, conversation_id),
    )


def add_turn(
    db: sqlite3.Connection,
    conversation_id: int,
    *,
    user_message: Mapping[str, Any],
    figures: Sequence[Any],
    values: Mapping[str, Any],
) -> tuple[int, int]:
    """Append a streaming turn (its images stored as figures); returns (turn id, index)."""
    idx = db.execute(
        "SELECT COUNT(*) FROM turns WHERE conversation_id = ?", (conversation_id,)
    ).fetchone()[0]
    stored = figure_store.strip_images(db, conversation_id, user_message, figures)
    turn_id = TURNS.insert(
        db,
        {
            **values,
            "conversation_id": conversation_id,
            "index": idx,
            "user_message": stored,
            "state": "streaming",
        },
    )
    index_turn(db, turn_id)
    return turn_id, idx


def append_text(
    db: sqlite3.Connection, turn_id: int, text: str, reasoning: str, beat: float
) -> None:
    # Appending on the SQL side sends only the new text.
    db.execute(
        "UPDATE turns SET answer = answer || ?, reasoning = reasoning || ?, beat = ? WHERE id = ?",
        (text, reasoning, beat, turn_id),
    )


def beat(db: sqlite3.Connection, turn_id: int, now: float) -> None:
    """A streaming turn's heartbeat (see ``liveness``)."""
    TURNS.update(db, turn_id, {"beat": now})


def finish_turn(
    db: sqlite3.Connection, turn_id: int, conversation_id: int, values: Mapping[str, Any]
) -> None:
    """Write a turn's final field values (one transaction is the caller's)."""
    TURNS.update(db, turn_id, values)
    db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), conversation_id))
    index_turn(db, turn_id)


def mark_retried(db: sqlite3.Connection, turn_id: int) -> None:
    db.execute(
        "UPDATE turns SET finish_reason = ? WHERE id = ? AND state = 'error'", (RETRIED, turn_id)
    )


def interrupt_stale(
    db: sqlite3.Connection, live: Callable[[str | None, float | None], bool]
) -> int:
    """Mark each turn still ``streaming`` whose writer is gone (``live(owner, beat)`` is
    False) as ``interrupted``; returns how many."""
    rows = db.execute("SELECT id, owner, beat FROM turns WHERE state = 'streaming'").fetchall()
    stale = [r["id"] for r in rows if not live(r["owner"], r["beat"])]
    for turn_id in stale:
        TURNS.update(db, turn_id, {"state": "interrupted", "finish_reason": "interrupted"})
        index_turn(db, turn_id)
    return len(stale)


# --------------------------------------------------------------------------- reading


def summaries(
    db: sqlite3.Connection, search: str | None, model: str | None, limit: int, offset: int
) -> list[ConversationSummary]:
    """See :meth:`HistoryStore.list_conversations`."""
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
        "(SELECT finish_reason FROM turns t WHERE t.conversation_id = c.id ORDER BY idx "
        "DESC LIMIT 1) AS last_finish_reason, "
        "EXISTS(SELECT 1 FROM turns t WHERE t.conversation_id = c.id "
        "AND t.state = 'interrupted') AS interrupted, "
        "(SELECT cp.comparison_id FROM comparison_panes cp WHERE cp.conversation_id = c.id)"
        " AS comparison_id "
        f"FROM conversations c WHERE {' AND '.join(where)} "
        "ORDER BY c.updated DESC, c.id DESC LIMIT ? OFFSET ?"
    )
    rows = db.execute(sql, (*args, limit, offset)).fetchall()
    return [ConversationSummary.from_row(r) for r in rows]


def models(db: sqlite3.Connection) -> list[str]:
    rows = db.execute(
        "SELECT DISTINCT model FROM conversations WHERE deleted_at IS NULL "
        "AND model != '' ORDER BY model"
    ).fetchall()
    return [r[0] for r in rows]


def load(db: sqlite3.Connection, conversation_id: int) -> StoredConversation | None:
    """See :meth:`HistoryStore.load_conversation`."""
    c = db.execute(
        "SELECT * FROM conversations WHERE id = ? AND deleted_at IS NULL", (conversation_id,)
    ).fetchone()
    if c is None:
        return None
    figures = figure_store.conversation_figures(db, conversation_id)
    turn_rows = db.execute(
        "SELECT * FROM turns WHERE conversation_id = ? ORDER BY idx", (conversation_id,)
    ).fetchall()
    urls = {f.hash: f.data_url() for f in figures}
    turns = [
        StoredTurn.from_row(r, lambda message: figure_store.restore_images(message, urls))
        for r in turn_rows
    ]
    return StoredConversation.from_row(c, figures=figures, turns=turns)


# --------------------------------------------------------------------------- editing


def rename(db: sqlite3.Connection, conversation_id: int, title: str) -> bool:
    cur = db.execute(
        "UPDATE conversations SET title = ? WHERE id = ? AND deleted_at IS NULL",
        (title, conversation_id),
    )
    return cur.rowcount > 0


def delete(db: sqlite3.Connection, conversation_id: int, now: float) -> bool:
    cur = db.execute(
        f"UPDATE conversations SET deleted_at = ? WHERE deleted_at IS NULL AND id IN ({_WITH_PANES})",
        (now, conversation_id, conversation_id),
    )
    return cur.rowcount > 0


def delete_all(db: sqlite3.Connection, now: float) -> list[int]:
    ids = [
        r[0] for r in db.execute("SELECT id FROM conversations WHERE deleted_at IS NULL").fetchall()
    ]
    db.execute("UPDATE conversations SET deleted_at = ? WHERE deleted_at IS NULL", (now,))
    return ids


def undo_delete(db: sqlite3.Connection, ids: Iterable[int]) -> int:
    n = 0
    for cid in ids:
        n += db.execute(
            f"UPDATE conversations SET deleted_at = NULL WHERE id IN ({_WITH_PANES}) "
            "AND deleted_at IS NOT NULL",
            (cid, cid),
        ).rowcount
    return n


def purge_deleted(db: sqlite3.Connection) -> int:
    """Remove deleted conversations and the figures only they used (one transaction is
    the caller's); returns how many conversations went."""
    n = db.execute("DELETE FROM conversations WHERE deleted_at IS NOT NULL").rowcount
    figure_store.purge_unused(db)
    return n
