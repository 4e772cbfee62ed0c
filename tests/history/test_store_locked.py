"""A history file locked by another connection is in use, not damaged: it is never moved
aside. (Two opens at the same moment, a start-up's and a question's, once read "database
is locked" as damage and moved the user's history away.)"""

from __future__ import annotations

import sqlite3
import threading
import time

from kanoa_desktop.core.history import connection
from kanoa_desktop.core.history.store import HistoryStore

from .conftest import record


def _locked(path, mode: str = "EXCLUSIVE"):
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=DELETE")  # a rollback journal: EXCLUSIVE locks readers
    holder.execute(f"BEGIN {mode}")
    return holder


def test_a_lock_that_lasts_keeps_the_file_and_the_answers_until_it_is_free(tmp_path, monkeypatch):
    path = tmp_path / "history.sqlite3"
    HistoryStore(path).close()  # a real history file
    monkeypatch.setattr(connection, "LOCKED_WAIT_S", 0.3)
    holder = _locked(path)
    try:
        store = HistoryStore(path)
        assert store.in_memory and store.problem is not None
        assert store.problem.kind == "locked" and "locked" in store.problem.message
        rec = record(store, "asked while locked", "kept")
        assert store.pending and not rec.saved
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not list(tmp_path.glob("*.damaged-*")) and path.exists()
    assert store.retry() and rec.saved and store.problem is None
    assert [c.title for c in store.list_conversations()] == ["asked while locked"]
    store.close()


def test_a_lock_released_meanwhile_is_waited_for(tmp_path):
    path = tmp_path / "history.sqlite3"
    HistoryStore(path).close()
    holder = _locked(path)

    def release():
        time.sleep(0.3)
        holder.execute("ROLLBACK")
        holder.close()

    t = threading.Thread(target=release)
    t.start()
    store = HistoryStore(path)
    t.join()
    assert not store.in_memory and store.problem is None
    assert not list(tmp_path.glob("*.damaged-*"))
    store.close()


def test_two_opens_at_the_same_moment_both_work(tmp_path):
    for round_ in range(5):
        path = tmp_path / f"h{round_}.sqlite3"
        stores: list[HistoryStore] = []
        go = threading.Barrier(2)

        def open_it(path=path, stores=stores, go=go):
            go.wait()
            stores.append(HistoryStore(path))

        threads = [threading.Thread(target=open_it) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(stores) == 2 and not any(s.in_memory or s.problem for s in stores)
        for s in stores:
            s.close()
    assert not list(tmp_path.glob("*.damaged-*"))
