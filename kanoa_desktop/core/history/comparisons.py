"""Comparisons: several models asked the same, one conversation per pane, one entry in
the history list (see ``schema``'s second migration)."""

from __future__ import annotations

import sqlite3
import time

from kanoa_desktop.core.history import conversations
from kanoa_desktop.core.history.records import COMPARISON_PANES, COMPARISONS, StoredComparison

TITLE_LENGTH = conversations.TITLE_LENGTH * 2


def create(db: sqlite3.Connection, title: str) -> int:
    values = {"title": " ".join(title.split())[:TITLE_LENGTH], "created": time.time()}
    return COMPARISONS.insert(db, values)


def link(db: sqlite3.Connection, comparison_id: int, conversation_id: int, pane: int) -> None:
    """Make the conversation a pane, titled as the comparison (one transaction is the
    caller's)."""
    values = {"comparison_id": comparison_id, "conversation_id": conversation_id, "pane": pane}
    COMPARISON_PANES.insert(db, values, or_="REPLACE")
    db.execute(
        "UPDATE conversations SET title = (SELECT title FROM comparisons WHERE id = ?) "
        "WHERE id = ?",
        (comparison_id, conversation_id),
    )


def of(db: sqlite3.Connection, conversation_id: int) -> int | None:
    row = db.execute(
        "SELECT comparison_id FROM comparison_panes WHERE conversation_id = ?", (conversation_id,)
    ).fetchone()
    return int(row[0]) if row else None


def load(db: sqlite3.Connection, comparison_id: int) -> StoredComparison | None:
    head = db.execute("SELECT * FROM comparisons WHERE id = ?", (comparison_id,)).fetchone()
    if head is None:
        return None
    links = db.execute(
        "SELECT conversation_id, pane FROM comparison_panes WHERE comparison_id = ? ORDER BY pane",
        (comparison_id,),
    ).fetchall()
    panes, numbers = [], []
    for row in links:
        conv = conversations.load(db, row["conversation_id"])
        if conv is not None:
            panes.append(conv)
            numbers.append(int(row["pane"]))
    if not panes:
        return None
    return StoredComparison.from_row(head, panes=panes, pane_numbers=numbers)


def prune_empty(db: sqlite3.Connection) -> None:
    """Remove comparisons whose every pane is gone."""
    db.execute(
        "DELETE FROM comparisons WHERE id NOT IN (SELECT comparison_id FROM comparison_panes)"
    )
