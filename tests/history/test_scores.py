"""Score runs in the history: a run's conversations are not entries of the list, a deleted
run takes them along, purging leaves no empty run, and an older file gains the tables."""

from __future__ import annotations

import sqlite3

import pytest

from kanoa_desktop.core.history import schema
from kanoa_desktop.core.history.scores import ScoreRecords
from kanoa_desktop.core.history.store import HistoryStore


def _turn(store: HistoryStore, question: str) -> int:
    rec = store.begin_turn(None, user_message={"role": "user", "content": question},
                           model="m")  # fmt: skip
    rec.finish("done", "stop", answer="ANSWER: 1")
    return rec.conversation_id


def test_a_runs_conversations_are_kept_out_of_the_list_and_go_with_the_run(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    records = ScoreRecords(store)
    plain = _turn(store, "An ordinary question")
    run = records.create_run("key-1", "Score charts-v1", {"source": {"suite": "charts-v1"}})
    items = [_turn(store, f"item {i}") for i in range(3)]
    for i, cid in enumerate(items):
        records.link_conversation(run, cid)
        records.put(run, 0, f"item {i}", "scored", {"correct": i % 2 == 0, "conversation_id": cid})
    records.put(run, 0, "item 3", "failed", {"error": "down"})
    assert [c.id for c in store.list_conversations()] == [plain]
    assert store.load_conversation(items[0]).turns[0].answer == "ANSWER: 1"  # still a record
    stored = records.load(run)
    assert stored.results[(0, "item 0")]["correct"] is True
    assert stored.results[(0, "item 3")]["state"] == "failed"
    assert records.latest_open("key-1") == run
    records.set_state(run, "done")
    assert records.latest_open("key-1") is None
    (summary,) = records.list_runs()
    assert (summary.scored, summary.state) == (3, "done")

    assert records.delete_run(run)
    assert records.load(run) is None and records.list_runs() == []
    assert all(store.load_conversation(c) is None for c in items)  # deleted with it
    assert [c.id for c in store.list_conversations()] == [plain]
    store.purge_deleted()
    assert store._db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 1
    store.close()


def test_purging_a_runs_last_conversation_removes_the_finished_run(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    records = ScoreRecords(store)
    run = records.create_run("k", "t", {})
    cid = _turn(store, "item")
    records.link_conversation(run, cid)
    records.set_state(run, "stopped")
    running = records.create_run("k2", "t2", {})  # a run that has asked nothing yet
    store.delete_all()
    store.purge_deleted()
    assert [r.id for r in records.list_runs()] == [running]
    store.close()


@pytest.mark.parametrize("version", [2, 3])
def test_an_older_file_gains_the_score_tables_and_keeps_its_conversations(tmp_path, version):
    # 3 is main's step before score (turns.owner/beat); 2 a file from before that.
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    for step in schema.MIGRATIONS[:version]:
        for statement in schema.statements(step):
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {version}")
    db.execute("INSERT INTO conversations(title, created, updated) VALUES ('old one', 1.0, 1.0)")
    db.commit()
    db.close()
    store = HistoryStore(path)
    assert store.problem is None
    assert [c.title for c in store.list_conversations()] == ["old one"]
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 4
    tables = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"score_runs", "score_conversations", "score_results"} <= tables
    columns = {r[1] for r in store._db.execute("PRAGMA table_info(turns)")}
    assert {"owner", "beat"} <= columns  # step 3 kept (or made) on the way
    assert ScoreRecords(store).list_runs() == []
    store.close()
