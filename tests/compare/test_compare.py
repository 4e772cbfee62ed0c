"""Comparisons against real servers: the llama.cpp server and the vLLM test server stream
side by side, one pane is stopped, the comparison is one history entry and exports."""

from __future__ import annotations

import asyncio
import socket

import pytest

from kanoa_desktop.cli import run_cli
from kanoa_desktop.core.ask.compare import (
    Comparison,
    ComparisonEnded,
    ComparisonError,
    profiles_for_models,
)
from kanoa_desktop.core.ask.compare_report import comparison_markdown, export_comparison
from kanoa_desktop.core.ask.outbox import Outbox
from kanoa_desktop.core.ask.pipeline import AnswerDelta, TurnEnded
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.inputs.figures import prepare_figure
from tests.batch.conftest import png_bytes
from tests.servers.vllm_server import VLLMTestServer


@pytest.fixture
async def pool():
    p = ClientPool()
    yield p
    await p.aclose()


@pytest.fixture
def history(tmp_path):
    store = HistoryStore(tmp_path / "history.sqlite3")
    yield store
    store.close()


def _pdf_text(path) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(path))
    try:
        return "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    finally:
        doc.close()


@pytest.mark.llama
async def test_llama_and_vllm_stream_side_by_side_one_is_stopped_and_it_is_recorded_and_exported(
    llama_server, history, pool, tmp_path
):
    events = []
    with VLLMTestServer(tokens_per_second=30, answer_tokens=3000) as vllm:
        profiles = [
            Profile(name="llama.cpp", api_base=llama_server.api_base, max_tokens=40,
                    temperature=0.0),
            Profile(name="vLLM", api_base=vllm.api_base, max_tokens=3000, temperature=0.0),
        ]  # fmt: skip
        cmp = Comparison(profiles, Services(pool, history=history), listener=events.append,
                         outbox=Outbox(context="A colour test."))  # fmt: skip
        task = cmp.start("Name three colours.")

        def deltas(pane):
            return [
                e for e in events if isinstance(e, AnswerDelta) and cmp.pane_of(e.runner) == pane
            ]

        # Both panes stream at the same time: each has text before the other has ended.
        while not (deltas(0) and len(deltas(1)) >= 5):
            assert not task.done()
            await asyncio.sleep(0.02)
        assert not any(isinstance(e, TurnEnded) for e in events[: events.index(deltas(1)[0])])
        cmp.stop(1)
        ended = await task
        assert vllm.wait_for(lambda s: s.aborted == 1, timeout=5)
        vllm_model = vllm.model

    assert [e.state for e in ended] == ["done", "stopped"]
    assert ended[0].answer.strip() and ended[1].answer.strip()
    (last,) = [e for e in events if isinstance(e, ComparisonEnded)]
    rows = last.results
    assert [r.model for r in rows] == [llama_server.model, vllm_model]
    assert rows[0].finish in ("Finished", "Cut at max tokens")
    assert rows[1].finish == "Stopped by you"
    assert all(r.ttft_s is not None and r.ttft_s > 0 for r in rows)
    assert all(r.output_tokens and r.cost and r.tokens_per_s for r in rows)

    (entry,) = history.list_conversations()
    assert entry.comparison_id == cmp.comparison_id
    assert entry.title.startswith("Compare llama.cpp vs vLLM: Name three colours")
    stored = history.load_comparison(cmp.comparison_id)
    assert [c.turns[0].answer for c in stored.panes] == [e.answer for e in ended]
    assert [c.turns[0].state for c in stored.panes] == ["done", "stopped"]

    md = export_comparison(stored, tmp_path / "cmp.md").read_text()
    assert md.count("| llama.cpp (") == 1 and md.count("| vLLM (") == 1
    assert "| Stopped by you |" in md and "*Stopped by you.*" in md
    assert md.count("### llama.cpp") == 2 and md.count("### vLLM") == 2  # answer + reproducibility
    assert llama_server.api_base.split("//")[1] in md and vllm_model in md
    html = export_comparison(stored, tmp_path / "cmp.html").read_text()
    assert html.count('<div class="pane">') == 2 and html.count('class="repro"') == 2
    pdf = export_comparison(stored, tmp_path / "cmp.pdf")
    text = _pdf_text(pdf)
    assert llama_server.model in text and vllm_model in text and "Reproducibility" in text


async def test_a_follow_up_goes_to_every_pane_each_in_its_own_conversation(history, pool):
    with VLLMTestServer(tokens_per_second=400, answer_tokens=6, extra_models=("other",)) as s:
        base = Profile(name="lab", api_base=s.api_base, max_tokens=16, temperature=0.0)
        fig = prepare_figure(png_bytes(), name="plot.png")
        cmp = Comparison(profiles_for_models(base, [s.model, "other"]),
                         Services(pool, history=history), outbox=Outbox([fig]))  # fmt: skip
        first = await cmp.ask("What is plotted?")
        second = await cmp.ask("And the trend?")
        chats = [r.body for r in s.received if r.path.endswith("/chat/completions")]

    assert [e.state for e in first + second] == ["done"] * 4
    follow_ups = [b for b in chats if len(b["messages"]) > 2]
    assert sorted(b["model"] for b in follow_ups) == sorted([s.model, "other"])
    for body in follow_ups:
        pane = 0 if body["model"] == s.model else 1
        # Each pane continues its own conversation: its own first answer, and the figure.
        assert body["messages"][-2] == {"role": "assistant", "content": first[pane].answer}
        assert "data:image/" in str(body["messages"][-3]["content"])
    (entry,) = history.list_conversations()
    stored = history.load_comparison(entry.comparison_id)
    assert [len(c.turns) for c in stored.panes] == [2, 2]
    assert cmp.panes[0].label == f"lab · {s.model}"
    text = comparison_markdown(stored)
    assert "## Question 1" in text and "## Question 2" in text and "And the trend?" in text
    # The model's own headings nest under each pane's heading.
    assert "\n##### What the figure shows" in text and "\n## What the figure" not in text


async def test_deleting_a_comparison_deletes_every_pane_and_undo_brings_all_back(history, pool):
    with VLLMTestServer(tokens_per_second=400, answer_tokens=4) as s:
        p = Profile(name="a", api_base=s.api_base, max_tokens=8)
        cmp = Comparison([p, Profile(name="b", api_base=s.api_base, max_tokens=8)],
                         Services(pool, history=history))  # fmt: skip
        await cmp.ask("Hi?")
    ids = [pane.runner.conversation_id for pane in cmp.panes]
    assert history.comparison_of(ids[1]) == cmp.comparison_id
    assert history.delete(ids[1])
    assert history.list_conversations() == []
    assert all(history.load_conversation(i) is None for i in ids)
    assert history.undo_delete(ids[0]) == 2
    assert [e.comparison_id for e in history.list_conversations()] == [cmp.comparison_id]
    history.delete(ids[0])
    history.purge_deleted()
    assert history.load_comparison(cmp.comparison_id) is None
    assert history._db.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0] == 0


async def test_one_or_five_panes_are_refused_with_a_message(pool):
    p = Profile(name="x")
    for n in (1, 5):
        with pytest.raises(ComparisonError) as err:
            Comparison([p] * n, Services(pool))
        assert "2 to 4" in err.value.message


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_compare_command_prints_the_table_writes_markdown_and_fails_when_a_pane_fails(
    tmp_path, capsys
):
    figure = tmp_path / "plot.png"
    figure.write_bytes(png_bytes())
    with VLLMTestServer(tokens_per_second=400, answer_tokens=6, extra_models=("other",)) as s:
        store = ProfileStore()
        store.load()
        store.add(Profile(name="lab", api_base=s.api_base, max_tokens=12))
        store.add(Profile(name="down", api_base=f"http://127.0.0.1:{_dead_port()}/v1",
                          request_timeout_s=5))  # fmt: skip
        store.save()
        out = tmp_path / "cmp.md"
        code = run_cli(["compare", str(figure), "--profile", "lab", "--model", s.model,
                        "--model", "other", "--markdown", str(out)])  # fmt: skip
        printed = capsys.readouterr()
        failing = run_cli(["compare", str(figure), "--profile", "lab", "--profile", "down"])
        failed = capsys.readouterr()
    assert code == 0, printed.err
    assert f"| lab · {s.model} ({s.model}) |" in printed.out
    assert "| lab · other (other) |" in printed.out
    text = out.read_text()
    assert text.count("### lab") == 4 and (tmp_path / "cmp_figures").is_dir()
    assert "![plot.png](cmp_figures/" in text
    assert failing == 1
    assert "[down] Error: " in failed.err and "error: " in failed.out
    history = HistoryStore(recover=False)
    try:
        assert len(history.list_conversations()) == 2  # two comparisons, one entry each
    finally:
        history.close()


def test_a_history_file_from_before_comparisons_is_migrated_and_keeps_its_conversations(tmp_path):
    import sqlite3

    from kanoa_desktop.core.history import schema as S

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for statement in S.statements(S.MIGRATIONS[0]):
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO conversations(title, created, updated, model) VALUES ('old one', 1, 1, 'm')"
    )
    db.close()
    history = HistoryStore(path)
    try:
        assert history._db.execute("PRAGMA user_version").fetchone()[0] == S.SCHEMA_VERSION
        (row,) = history.list_conversations()
        assert row.title == "old one" and row.comparison_id is None
        assert history.comparison_of(row.id) is None
    finally:
        history.close()
