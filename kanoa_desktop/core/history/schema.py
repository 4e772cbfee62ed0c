"""The history's tables, and the migrations that bring an older file up to them.

``MIGRATIONS[n]`` takes a database at ``PRAGMA user_version`` n to n + 1; :func:`migrate`
applies the missing steps, one transaction each, and is safe when two connections open
the same file at the same moment (each step reads the version again under the lock).
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 4

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

# Who is writing a streaming turn, and when it last said so (see ``liveness``): a turn is
# marked interrupted only when its writer is gone.
_SCHEMA_V3 = """
ALTER TABLE turns ADD COLUMN owner TEXT;
ALTER TABLE turns ADD COLUMN beat REAL;
"""

# A score run (core/score, core/history/scores.py): every conversation it started (left out
# of the list), and one committed result per profile and item.
_SCHEMA_V4 = """
CREATE TABLE score_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    spec TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL DEFAULT 'running'
);
CREATE INDEX score_runs_key ON score_runs(key, updated);
CREATE TABLE score_conversations (
    run_id INTEGER NOT NULL REFERENCES score_runs(id) ON DELETE CASCADE,
    conversation_id INTEGER NOT NULL UNIQUE REFERENCES conversations(id) ON DELETE CASCADE
);
CREATE INDEX score_conversations_run ON score_conversations(run_id);
CREATE TABLE score_results (
    run_id INTEGER NOT NULL REFERENCES score_runs(id) ON DELETE CASCADE,
    profile INTEGER NOT NULL,
    item TEXT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    finished REAL NOT NULL,
    PRIMARY KEY (run_id, profile, item)
);
"""

# MIGRATIONS[n] takes a database at user_version n to n + 1.
MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4)

# Tables whose absence in a migrated file means the file is not (or no longer) ours.
REQUIRED_TABLES = frozenset({"conversations", "turns", "figures", "turns_fts"})


def version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection) -> bool:
    """Bring ``db`` to :data:`SCHEMA_VERSION`. False (and nothing done) when the file was
    written by a newer app, which is then used as is."""
    start = version(db)
    if start > SCHEMA_VERSION:
        return False
    for v in range(start, SCHEMA_VERSION):
        # One transaction per step (statement by statement: executescript would commit).
        db.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another connection opening the same
            # file at the same moment may have taken this step already.
            if version(db) > v:
                db.execute("COMMIT")
                continue
            for statement in statements(MIGRATIONS[v]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {v + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return True


def statements(script: str) -> list[str]:
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
