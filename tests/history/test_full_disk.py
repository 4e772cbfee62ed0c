"""Issue 23, "Nothing lost, nothing mislabelled": a full disk, a read-only data folder and
a locked file are not damage. On a real small disk (tests/history/disk.py): the history
file is kept, the problem is said with what to do, a turn is kept in memory and written
when the disk allows, and nothing claims a save that did not happen."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanoa_desktop.core.endpoint.chat import user_message
from kanoa_desktop.core.history.export import ExportError, export
from kanoa_desktop.core.history.store import HistoryStore

from .conftest import record
from .disk import disk  # noqa: F401 - the fixture

CHUNK = "The seasonal cycle peaks in May. " * 120  # about 4 KB: a write needs new pages


def _history(disk) -> HistoryStore:  # noqa: F811
    return HistoryStore(disk.path / "data" / "history.sqlite3", recover=False)


def _with_earlier(disk, clock) -> Path:  # noqa: F811
    """The history on the small disk, holding one earlier conversation, closed."""
    path = disk.path / "data" / "history.sqlite3"
    store = HistoryStore(path, clock=clock)
    record(store, "Earlier question", "earlier answer")
    store.close()
    return path


def _titles(store: HistoryStore) -> set[str]:
    return {c.title for c in store.list_conversations()}


def _no_damage(disk) -> None:  # noqa: F811
    assert not list((disk.path / "data").glob("*.damaged-*"))
    assert (disk.path / "data" / "history.sqlite3").stat().st_size > 0


def test_a_disk_that_fills_mid_answer_keeps_the_history_and_writes_the_turn_once_freed(
    disk,  # noqa: F811
    clock,
):
    store = HistoryStore(disk.path / "data" / "history.sqlite3", clock=clock)
    record(store, "Earlier question", "earlier answer")
    rec = store.begin_turn(None, user_message=user_message("Describe the trend."), model="m")
    disk.fill()
    for _ in range(60):  # 240 KB streamed, flushed once a (fake) second
        clock.advance(1.0)
        rec.append(CHUNK)
    full = CHUNK * 60
    assert store.problem is not None and store.problem.kind == "full"
    assert "is full" in store.problem.message and "Free some space" in store.problem.message
    assert store.pending and store.blocked and not rec.saved
    rec.finish("done", "stop", answer=full, reasoning="")
    _no_damage(disk)
    reader = _history(disk)  # another process reads the same file meanwhile: all there
    assert _titles(reader) == {"Earlier question", "Describe the trend."}
    reader.close()

    disk.free()
    heard = []
    store.subscribe(heard.append)
    clock.advance(5.0)
    record(store, "After the space came back", "fine")  # a later write takes the rest along
    assert store.pending == 0 and store.problem is None and heard == [None] and rec.saved
    store.close()
    again = _history(disk)
    assert _titles(again) == {
        "Earlier question",
        "Describe the trend.",
        "After the space came back",
    }
    turn = again.load_conversation(rec.conversation_id).turns[0]
    assert (turn.state, turn.answer) == ("done", full)
    again.close()


def test_a_full_disk_at_start_shows_the_history_and_keeps_new_answers_until_freed(
    disk,  # noqa: F811
    clock,
):
    path = _with_earlier(disk, clock)
    disk.fill()
    full = HistoryStore(path, clock=clock)
    assert full.problem is not None and full.problem.kind == "full"
    assert full.problem.moved_to is None and "damaged" not in full.problem.message
    assert _titles(full) == {"Earlier question"}  # the intact history is shown
    rec = record(full, "While full", "kept in memory")
    assert rec.conversation_id < 0 and full.pending and not rec.saved
    _no_damage(disk)

    disk.free()
    assert full.retry()
    assert rec.saved and full.problem is None and rec.conversation_id > 0
    assert _titles(full) == {"Earlier question", "While full"}
    assert full.load_conversation(rec.conversation_id).turns[0].answer == "kept in memory"
    full.close()


def test_a_read_only_data_folder_shows_the_intact_history_and_saves_once_writable(
    disk,  # noqa: F811
    clock,
):
    path = _with_earlier(disk, clock)
    disk.read_only()
    ro = HistoryStore(path, clock=clock)
    problem = ro.problem
    assert problem is not None and problem.kind == "read-only"
    assert "read-only" in problem.message and "Make the folder writable" in problem.message
    assert "damaged" not in problem.message and "None" not in problem.message
    assert not ro.in_memory and _titles(ro) == {"Earlier question"}
    rec = record(ro, "While read-only", "kept in memory")
    assert ro.pending and not rec.saved
    _no_damage(disk)

    disk.writable()
    assert ro.retry() and rec.saved and ro.problem is None
    ro.close()
    again = _history(disk)
    assert _titles(again) == {"Earlier question", "While read-only"}
    again.close()


def test_an_export_to_a_full_disk_says_so_and_leaves_no_half_file(
    disk,  # noqa: F811
    clock,
):
    store = HistoryStore(disk.path / "data" / "history.sqlite3", clock=clock)
    rec = record(store, "Describe the trend.", CHUNK * 2)
    conv = store.load_conversation(rec.conversation_id)
    store.close()
    disk.fill()
    for fmt in ("markdown", "html", "pdf"):
        target = disk.path / f"conversation.{fmt}"
        with pytest.raises(ExportError) as caught:
            export(conv, target, fmt)
        assert "is full" in caught.value.message and "free some space" in caught.value.hint
        assert not target.exists() and not list(disk.path.glob(".conversation*"))


def test_edits_on_a_full_disk_wait_in_order_and_delete_all_is_refused(
    disk,  # noqa: F811
    clock,
):
    store = HistoryStore(disk.path / "data" / "history.sqlite3", clock=clock)
    keep = record(store, "Keep me", "a").conversation_id
    drop = record(store, "Drop me", "b").conversation_id
    disk.fill()
    assert store.rename(keep, "Kept, renamed") and store.delete(drop)  # accepted: they wait
    assert store.pending == 2 and store.problem.kind == "full"
    assert store.delete_all() == []  # not hidden later without an undo: refused now
    assert _titles(store) == {"Keep me", "Drop me"}  # the file as it is
    disk.free()
    assert store.retry()
    assert _titles(store) == {"Kept, renamed"}
    store.close()
