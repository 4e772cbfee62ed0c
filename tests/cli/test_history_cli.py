"""``kanoa-desktop history list/show/export`` over a real history file."""

from __future__ import annotations

import json

import pytest

from kanoa_desktop.cli import run_cli
from kanoa_desktop.core.endpoint.chat import user_message
from kanoa_desktop.core.history.store import HistoryStore
from tests.history.conftest import figure, record


@pytest.fixture
def seeded():
    store = HistoryStore()
    first = record(
        store, "What does the growth curve show?", "Exponential growth, doubling in 3 h."
    )
    second = record(
        store, "Why is the seasonal cycle so strong?", "Plants in the north.", figures=[figure()]
    )
    # A turn still streaming: a window beside the command line is answering right now.
    live = store.begin_turn(None, user_message=user_message("live question", []), model="m")
    live.append("partial")
    live.flush()
    ids = (first.conversation_id, second.conversation_id, live.conversation_id)
    yield store, ids
    store.close()


def test_list_json_newest_first_and_search(seeded, capsys):
    _store, (first, second, live) = seeded
    assert run_cli(["history", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [live, second, first]
    assert rows[1]["title"].startswith("Why is the seasonal cycle")
    assert rows[1]["turns"] == 1 and rows[1]["last_state"] == "done"
    assert run_cli(["history", "list", "--json", "--search", "doubling"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [first]


def test_listing_beside_a_running_window_leaves_its_streaming_turn_alone(seeded, capsys):
    store, (_first, _second, live) = seeded
    assert run_cli(["history", "list"]) == 0
    out = capsys.readouterr().out
    assert "live question" in out and "streaming" in out
    assert store.load_conversation(live).turns[0].state == "streaming"


def test_show_prints_the_conversation_as_markdown(seeded, capsys):
    _store, (first, _second, _live) = seeded
    assert run_cli(["history", "show", str(first)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# What does the growth curve show?")
    assert "Exponential growth, doubling in 3 h." in out


@pytest.mark.parametrize(
    "fmt,suffix,magic", [("md", ".md", b"# "), ("html", ".html", b"<!"), ("pdf", ".pdf", b"%PDF")]
)
def test_export_writes_each_format(seeded, capsys, tmp_path, fmt, suffix, magic):
    _store, (_first, second, _live) = seeded
    target = tmp_path / f"out{suffix}"
    assert run_cli(["history", "export", str(second), "--format", fmt, "-o", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert target.read_bytes()[:4].lstrip().startswith(magic[:2])


def test_an_unknown_id_says_so(seeded, capsys):
    assert run_cli(["history", "show", "9999"]) == 1
    err = capsys.readouterr().err
    assert "no conversation with id 9999" in err and "history list" in err
