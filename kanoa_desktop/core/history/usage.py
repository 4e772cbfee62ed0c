"""Tokens and cost per model and per local day, read from the recorded turns."""

from __future__ import annotations

import sqlite3

from kanoa_desktop.core.history.records import UsageRow

_BY_MODEL_AND_DAY = (
    "SELECT t.model AS model, date(t.started, 'unixepoch', 'localtime') AS day, "
    "COUNT(*) AS turns, COALESCE(SUM(t.prompt_tokens), 0) AS prompt_tokens, "
    "COALESCE(SUM(t.output_tokens), 0) AS output_tokens, COALESCE(SUM(t.cost), 0.0) AS cost, "
    "MAX(t.estimated) AS estimated FROM turns t WHERE t.started >= ? "
    "GROUP BY t.model, day ORDER BY day DESC, t.model"
)


def since(db: sqlite3.Connection, started: float) -> list[UsageRow]:
    """Usage of the turns started at or after ``started`` (epoch seconds), newest day
    first. Turns of purged conversations are gone with them."""
    return [UsageRow.from_row(r) for r in db.execute(_BY_MODEL_AND_DAY, (started,)).fetchall()]
