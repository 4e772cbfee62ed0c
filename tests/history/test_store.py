"""HistoryStore: recording, flushing by time, recovery, search, editing, usage, damage."""

from __future__ import annotations

import json
import sqlite3

from kanoa_desktop.core.config import paths
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.chat import user_message
from kanoa_desktop.core.endpoint.events import Finished, FirstToken, RequestSent, TextDelta, Usage
from kanoa_desktop.core.endpoint.stats import StreamStats
from kanoa_desktop.core.history.store import (
    FIGURE_REF_PREFIX,
    SCHEMA_VERSION,
    HistoryStore,
    fts_query,
    safe_endpoint,
)

from .conftest import figure, record


def _answer_in_db(store: HistoryStore, turn_id: int) -> str:
    # Read through a second connection, as a restarted app would.
    db = sqlite3.connect(store.path)
    try:
        return db.execute("SELECT answer FROM turns WHERE id = ?", (turn_id,)).fetchone()[0]
    finally:
        db.close()


def test_store_lives_in_the_data_dir_in_wal_mode_with_the_schema_version(store):
    assert store.path == paths.data_dir() / "history.sqlite3"
    assert store.problem is None
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_append_writes_at_most_once_per_interval_by_the_injected_clock(store, clock):
    rec = store.begin_turn(None, user_message=user_message("q"), model="m")
    for piece in ("a", "b", "c"):
        rec.append(piece)
    assert rec.writes == 0 and _answer_in_db(store, rec.turn_id) == ""
    clock.advance(0.99)
    rec.append("d")
    assert rec.writes == 0
    clock.advance(0.02)
    rec.append("e")
    assert rec.writes == 1 and _answer_in_db(store, rec.turn_id) == "abcde"
    rec.append("f")
    clock.advance(1.0)
    assert rec.flush_if_due() is True  # a timer flushes when deltas stop arriving
    assert _answer_in_db(store, rec.turn_id) == "abcdef"


def test_finish_writes_the_rest_and_the_stats(store, clock):
    rec = store.begin_turn(None, user_message=user_message("q"), model="m")
    stats = StreamStats(price_in_per_million=1.0, price_out_per_million=2.0)
    for ev in (
        RequestSent(10.0, "u", "m"),
        FirstToken(10.5, 0.5),
        TextDelta(10.5, "Hel"),
        TextDelta(11.5, "lo"),
        Usage(11.6, 100, 3),
        Finished(11.7, "stop", "Hello"),
    ):
        stats.feed(ev)
        if isinstance(ev, TextDelta):
            rec.append(ev.text)
    rec.finish("done", stats=stats, energy_wh=0.25)
    turn = store.load_conversation(rec.conversation_id).turns[0]
    assert (turn.answer, turn.state, turn.finish_reason) == ("Hello", "done", "stop")
    assert (turn.prompt_tokens, turn.output_tokens, turn.estimated) == (100, 3, False)
    assert turn.ttft_s == 0.5 and turn.energy_wh == 0.25
    assert abs(turn.cost - (100 * 1.0 + 3 * 2.0) / 1e6) < 1e-12
    assert abs(turn.tokens_per_s - 2 / 1.2) < 1e-9


def test_a_streaming_turn_is_interrupted_on_the_next_open_with_its_text(clock):
    first = HistoryStore(clock=clock)
    rec = first.begin_turn(None, user_message=user_message("q"), model="m")
    rec.append("kept ")
    clock.advance(1.0)
    rec.append("text")
    rec.append(" lost")  # buffered, never flushed: the "crash" comes now
    beside = HistoryStore(clock=clock)  # another process opening while it streams
    assert beside.interrupted_on_open == 0
    assert beside.load_conversation(rec.conversation_id).turns[0].state == "streaming"
    beside.close()
    first.close()  # no finish: its writer goes away as a killed process's does
    second = HistoryStore(clock=clock)
    assert second.interrupted_on_open == 1
    turn = second.load_conversation(rec.conversation_id).turns[0]
    assert (turn.state, turn.answer) == ("interrupted", "kept text")
    assert second.list_conversations()[0].interrupted
    assert second.list_conversations(search="kept")  # the partial answer is searchable
    third = HistoryStore(clock=clock)
    assert third.interrupted_on_open == 0


def test_figures_are_stored_once_and_messages_hold_references(store):
    fig = figure("blue", "bars.png")
    a = record(store, "first", "one", figures=[fig])
    b = record(store, "second", "two", figures=[fig])
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT COUNT(*) FROM figures").fetchone()[0] == 1
    stored = db.execute("SELECT user_message FROM turns").fetchall()
    db.close()
    for (raw,) in stored:
        assert "data:image" not in raw and FIGURE_REF_PREFIX in raw
    conv = store.load_conversation(a.conversation_id)
    assert conv.figures[0].data == fig.data and conv.figures[0].name == "bars.png"
    assert conv.figures[0].hash != "" and (conv.figures[0].width, conv.figures[0].height) == (
        fig.sent_size
    )
    url = conv.turns[0].user_message["content"][0]["image_url"]["url"]
    assert url == fig.data_url()
    assert store.load_conversation(b.conversation_id).figures[0].hash == conv.figures[0].hash


def test_reopened_conversation_continues_with_the_same_messages(store):
    fig = figure()
    rec = record(
        store,
        "What is shown?",
        "A rise.",
        figures=[fig],
        system_prompt="Be brief.",
        context="Assay 3",
        focus="peaks",
        table_summary="rows: 10",
        table_name="t.csv",
    )
    record(store, "And then?", "A fall.", conversation_id=rec.conversation_id)
    conv = store.load_conversation(rec.conversation_id)
    assert (conv.context, conv.focus, conv.table_summary, conv.table_name) == (
        "Assay 3",
        "peaks",
        "rows: 10",
        "t.csv",
    )
    chat = conv.conversation()
    msgs = chat.messages_for(user_message("Why?"))
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    assert msgs[1]["content"][0]["image_url"]["url"] == fig.data_url()
    assert [m["content"] for m in msgs[2:4]] == ["A rise.", "And then?"]
    assert msgs[4] == {"role": "assistant", "content": "A fall."}
    assert conv.prepared_figures()[0].data == fig.data


def test_search_matches_words_of_questions_and_answers_newest_first(store):
    a = record(store, "Plot of growth curves", "Exponential phase then plateau.")
    b = record(store, "Western blot bands", "Band at 50 kDa suggests the plateau protein.")
    record(store, "Unrelated", "Nothing here.")
    assert [c.id for c in store.list_conversations(search="plateau")] == [
        b.conversation_id,
        a.conversation_id,
    ]
    assert [c.id for c in store.list_conversations(search="expon")] == [a.conversation_id]
    assert [c.id for c in store.list_conversations(search="growth plateau")] == [a.conversation_id]
    assert store.list_conversations(search='" OR * NEAR(') == []  # not an FTS syntax error
    assert len(store.list_conversations()) == 3
    assert len(store.list_conversations(limit=2)) == 2
    assert len(store.list_conversations(limit=2, offset=2)) == 1


def test_filter_by_model_and_list_models(store):
    record(store, "a", "x", model="gemma-3-4b")
    record(store, "b", "y", model="smollm2")
    assert store.models() == ["gemma-3-4b", "smollm2"]
    assert [c.title for c in store.list_conversations(model="smollm2")] == ["b"]


def test_rename_delete_undo_and_purge(store):
    rec = record(store, "old title", "answer")
    cid = rec.conversation_id
    assert (
        store.rename(cid, "  New   title ") and store.list_conversations()[0].title == "New title"
    )
    assert store.rename(cid, "   ") is False
    assert store.delete(cid)
    assert store.list_conversations() == [] and store.load_conversation(cid) is None
    assert store.undo_delete(cid) == 1
    assert store.load_conversation(cid).title == "New title"
    store.delete(cid)
    assert store.purge_deleted() == 1
    assert store.undo_delete(cid) == 0
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM turns_fts").fetchone()[0] == 0
    db.close()


def test_delete_all_can_be_undone_and_a_new_session_purges_it(store, clock):
    ids = {record(store, f"q{i}", "a", figures=[figure()]).conversation_id for i in range(3)}
    assert set(store.delete_all()) == ids and store.list_conversations() == []
    assert store.undo_delete(ids) == 3 and len(store.list_conversations()) == 3
    store.delete_all()
    store.close()
    reopened = HistoryStore(clock=clock)
    db = sqlite3.connect(reopened.path)
    counts = [
        db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("conversations", "figures")
    ]
    db.close()
    assert counts == [0, 0]


def test_usage_totals_per_model_and_day_for_session_and_all_time(store, clock):
    def turn(model, p, o):
        rec = store.begin_turn(None, user_message=user_message("q"), model=model)
        stats = StreamStats(price_in_per_million=1.0, price_out_per_million=1.0)
        stats.feed(Usage(1.0, p, o))
        rec.finish("done", "stop", stats=stats)

    turn("old-model", 5, 5)
    db = sqlite3.connect(store.path)
    db.execute("UPDATE turns SET started = started - 3 * 86400")  # three days ago
    db.commit()
    db.close()
    turn("a", 100, 10)
    turn("a", 50, 5)
    turn("b", 7, 3)
    totals = store.usage_totals()
    session = {r.model: (r.turns, r.prompt_tokens, r.output_tokens) for r in totals.session}
    assert session == {"a": (2, 150, 15), "b": (1, 7, 3)}
    assert {r.model for r in totals.all_time} == {"a", "b", "old-model"}
    assert len({r.day for r in totals.all_time}) == 2
    p, o, cost = totals.total(totals.all_time)
    assert (p, o) == (162, 23) and abs(cost - 185 / 1e6) < 1e-12


def test_profile_gives_name_endpoint_and_params_but_never_credentials(store):
    profile = Profile(
        name="Lab", api_base="http://bob:hunter2@gpu.lab:8000/v1?api_key=sk-xyz", temperature=0.2
    )
    rec = store.begin_turn(None, user_message=user_message("q"), model="m", profile=profile)
    rec.finish("stopped")
    conv = store.load_conversation(rec.conversation_id)
    assert conv.profile_name == "Lab" and conv.endpoint == "http://gpu.lab:8000/v1"
    assert conv.params["temperature"] == 0.2
    raw = store.path.read_bytes() + store.path.with_name("history.sqlite3-wal").read_bytes()
    assert b"hunter2" not in raw and b"sk-xyz" not in raw


def test_safe_endpoint_and_fts_query_handle_odd_input():
    assert safe_endpoint("https://u:p@[::1]:9/v1?k=1#x") == "https://[::1]:9/v1"
    assert safe_endpoint("") == ""
    assert fts_query("  ") is None
    assert fts_query('a"b') == '"a"* "b"*'


# --------------------------------------------------------------------------- damage


def test_garbage_bytes_are_moved_aside_and_a_fresh_store_works(clock):
    path = paths.data_dir() / "history.sqlite3"
    path.write_bytes(b"this is not a database at all \x00\xff" * 200)
    store = HistoryStore(clock=clock)
    assert store.problem is not None and store.problem.moved_to is not None
    assert (
        "damaged" in store.problem.message and store.problem.moved_to.name in store.problem.message
    )
    assert store.problem.moved_to.name.startswith("history.sqlite3.damaged-")
    assert store.problem.moved_to.read_bytes().startswith(b"this is not a database")
    rec = record(store, "after the damage", "works")
    assert store.load_conversation(rec.conversation_id).turns[0].answer == "works"


def test_a_database_failing_integrity_check_is_moved_aside(clock):
    store = HistoryStore(clock=clock)
    for i in range(200):
        record(store, f"question {i} " + "x" * 200, "answer " * 50)
    store.close()
    path = store.path
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    data = bytearray(path.read_bytes())
    # Overwrite interior pages (not the header) with noise: a torn or bit-rotted file.
    for page in range(3, min(12, len(data) // page_size)):
        start = page * page_size
        data[start + 8 : start + page_size] = bytes((i * 37) % 251 for i in range(page_size - 8))
    path.write_bytes(bytes(data))
    reopened = HistoryStore(clock=clock)
    assert reopened.problem is not None and reopened.problem.moved_to is not None
    assert reopened.list_conversations() == []
    record(reopened, "fresh", "start")
    assert len(reopened.list_conversations()) == 1


def test_a_data_folder_that_cannot_be_made_keeps_answers_until_it_can(tmp_path, clock):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("file")
    store = HistoryStore(blocker / "history.sqlite3", clock=clock)
    assert store.in_memory and store.problem.kind == "unreachable"
    assert f"{blocker} is a file, not a folder" in store.problem.message
    assert "kept in memory" in store.problem.message
    rec = record(store, "q", "a")
    assert store.pending and not rec.saved and rec.conversation_id < 0
    assert store.load_conversation(rec.conversation_id) is None
    heard = []
    store.subscribe(heard.append)
    blocker.unlink()  # the folder can be made now
    assert store.retry()
    assert heard == [None] and store.problem is None and rec.saved
    assert store.load_conversation(rec.conversation_id).turns[0].answer == "a"
    assert [c.title for c in store.list_conversations()] == ["q"]
    store.close()
    again = HistoryStore(blocker / "history.sqlite3")
    assert again.list_conversations()[0].n_turns == 1
    again.close()


def test_a_newer_schema_is_used_with_a_message(clock):
    path = paths.data_dir() / "history.sqlite3"
    store = HistoryStore(clock=clock)
    store.close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    newer = HistoryStore(clock=clock)
    assert newer.problem is not None and "newer" in newer.problem.message
    assert newer.problem.moved_to is None and path.exists()


def test_stored_passages_keep_their_sources(store):
    from pathlib import Path

    from kanoa_desktop.core.kb.retrieval import Passage, Source

    passages = [
        Passage(
            1,
            "Growth was slow.",
            Source("notes.md", Path("/kb/notes.md"), line_start=3, line_end=4),
        )
    ]
    rec = store.begin_turn(None, user_message=user_message("q"), model="m", passages=passages)
    rec.finish("done", "stop")
    conv = store.load_conversation(rec.conversation_id)
    assert conv.turns[0].passages[0]["label"] == "notes.md, lines 3\u20134"
    assert conv.sources == ["notes.md, lines 3\u20134"]
    assert json.loads(json.dumps(conv.turns[0].passages)) == conv.turns[0].passages


def test_a_retried_failed_turn_stays_recorded_but_leaves_the_messages(store):
    rec = record(store, "first", "one")
    failed = store.begin_turn(rec.conversation_id, user_message=user_message("second"), model="m")
    failed.append("par")
    failed.finish("error", error_title="Server error", error_message="500")
    store.mark_retried(failed.turn_id)
    record(store, "second", "two", conversation_id=rec.conversation_id)
    conv = store.load_conversation(rec.conversation_id)
    assert [t.state for t in conv.turns] == ["done", "error", "done"]
    assert conv.turns[1].error_title == "Server error" and conv.turns[1].answer == "par"
    assert [t.assistant for t in conv.conversation().turns] == ["one", "two"]


def test_a_follow_up_to_a_purged_conversation_starts_a_new_one(store):
    rec = record(store, "first", "one")
    store.delete(rec.conversation_id)
    store.purge_deleted()
    again = record(store, "follow-up", "two", conversation_id=rec.conversation_id)
    assert again.conversation_id != rec.conversation_id
    assert store.load_conversation(again.conversation_id).title == "follow-up"


def test_interpret_conversations_are_titled_by_their_figures_tables_and_focus(store):
    from kanoa_desktop.core.history.conversations import title_for as _title_for

    def title(question, **kw):
        rec = store.begin_turn(None, user_message=user_message(question), question=question, **kw)
        rec.finish("done", "stop")
        return store.load_conversation(rec.conversation_id).title

    a = title("Interpret.", figures=[figure(name="western_blot.png")], focus="the 50 kDa band")
    b = title("Interpret.", table_name="growth_curve.csv", focus="the doubling time")
    c = title("Interpret this data.", table_name="growth_curve.csv")
    assert a == "western_blot.png: the 50 kDa band"
    assert b == "growth_curve.csv: the doubling time"
    assert c == "growth_curve.csv"
    assert len({a, b, c}) == 3
    # A real question stays the title; nothing at all still gives a title.
    assert title("Why does strain B plateau?", table_name="g.csv") == "Why does strain B plateau?"
    assert _title_for("", [], "") == "Conversation"
    assert len(_title_for("Interpret.", ["x" * 200], "")) == 80


def test_the_marks_of_processes_that_are_gone_are_swept_on_open(clock):
    writer = HistoryStore(clock=clock)
    record(writer, "q", "a")
    live = paths.data_dir() / "history.live"
    (mark,) = live.glob("*.lock")
    crashed = live / "999999-0123abcd.lock"
    crashed.write_text("")  # a process killed after its last answer leaves its mark
    HistoryStore(clock=clock).close()  # opening (as the window does) sweeps
    assert not crashed.exists() and mark.exists()  # the running writer's stays
    writer.close()
    assert not mark.exists()
