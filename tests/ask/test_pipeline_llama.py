"""The ask pipeline headless (no Qt) against the real llama.cpp server: it answers, grounds,
records, and ends every turn exactly once with its partial text, whatever happens."""

from __future__ import annotations

import asyncio
import sys

import pytest

from kanoa_desktop.core.ask.outbox import Outbox
from kanoa_desktop.core.ask.pipeline import (
    AnswerDelta,
    Asked,
    ConversationRunner,
    Notice,
    Sources,
    TurnEnded,
    TurnStarted,
)
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.pricing import parse_kanoa_pricing
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.inputs.figures import prepare_figure

pytestmark = pytest.mark.llama


class Recorder:
    def __init__(self) -> None:
        self.events: list = []

    def __call__(self, ev) -> None:
        self.events.append(ev)

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def history(tmp_path):
    store = HistoryStore(tmp_path / "history.sqlite3")
    yield store
    store.close()


@pytest.fixture
async def pool():
    p = ClientPool()
    yield p
    await p.aclose()


def _profile(server, **kw) -> Profile:
    values = dict(api_base=server.api_base, model="", max_tokens=48, temperature=0.0)
    values.update(kw)
    return Profile(**values)


def _assert_one_turn_end(rec: Recorder) -> TurnEnded:
    assert len(rec.of(TurnStarted)) == 1
    ended = rec.of(TurnEnded)
    assert len(ended) == 1, [type(e).__name__ for e in rec.events]
    assert rec.events[-1] is ended[0]
    return ended[0]


async def test_a_question_is_answered_priced_for_the_served_model_and_recorded(
    llama_server, history, pool
):
    rec = Recorder()
    # kanoa's pricing.json names the model the server reports; the profile names none.
    kanoa = parse_kanoa_pricing(
        {"vllm": {llama_server.model: {"input_price": 1.0, "output_price": 2.0}}}
    )
    runner = ConversationRunner(
        _profile(llama_server), Services(pool, history=history, pricing=kanoa), listener=rec
    )
    ended = await runner.ask("Name three colours.")
    assert ended is _assert_one_turn_end(rec)
    assert ended.state == "done" and ended.error is None
    assert ended.answer and ended.answer == "".join(e.text for e in rec.of(AnswerDelta))
    assert ended.stats.price_out_per_million == 2.0  # the override for the served model
    assert ended.cost == pytest.approx(
        (ended.stats.prompt_tokens * 1.0 + ended.stats.output_tokens * 2.0) / 1e6
    )
    asked = rec.of(Asked)[0]
    assert asked.asked == "Name three colours."  # what the user asked, not the prompt
    conv = history.load_conversation(runner.conversation_id)
    assert conv.turns[0].answer == ended.answer and conv.turns[0].state == "done"
    assert conv.turns[0].output_tokens == ended.stats.output_tokens
    assert not runner.busy


async def test_grounding_in_a_knowledge_base_sends_passages_and_reports_sources(
    llama_server, history, pool, tmp_path
):
    from kanoa_desktop.core.kb.index import KnowledgeBase

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "glacier.md").write_text("# Glacier\n\nThe Fjallsjokull glacier retreated 40 m.\n")
    kb = KnowledgeBase([folder])
    kb.index()
    try:
        rec = Recorder()
        runner = ConversationRunner(
            _profile(llama_server), Services(pool, history=history, knowledge_base=lambda: kb),
            listener=rec,
        )  # fmt: skip
        ended = await runner.ask("How far did the glacier retreat?")
        assert ended.state == "done"
        sent = runner.last_request["messages"][-1]["content"]
        assert "Fjallsjokull" in sent  # the passage went with the question
        sources = rec.of(Sources)
        assert len(sources) == 1 and sources[0].grounding.passages
        assert "Fjallsjokull" not in rec.of(Asked)[0].asked  # never shown as "You"
        stored = history.load_conversation(runner.conversation_id)
        assert stored.sources
    finally:
        kb.close()


async def test_stop_mid_stream_ends_the_turn_once_with_its_partial_text(
    llama_server, history, pool
):
    rec = Recorder()
    runner = ConversationRunner(
        _profile(llama_server, max_tokens=400), Services(pool, history=history), listener=rec
    )
    task = runner.start("Write a long story about a lighthouse.")
    while not rec.of(AnswerDelta):
        await asyncio.sleep(0.01)
    runner.stop()
    ended = await task  # a stop by the user is a normal end, not an exception
    assert _assert_one_turn_end(rec) is ended
    assert ended.state == "stopped" and ended.note == "Stopped by you."
    partial = "".join(e.text for e in rec.of(AnswerDelta))
    assert ended.answer == partial and partial
    stored = history.load_conversation(runner.conversation_id).turns[0]
    assert stored.state == "stopped" and stored.answer == partial
    assert stored.output_tokens and stored.output_tokens > 0  # stats recorded too
    assert not runner.busy and runner.conversation.turns[0].assistant == partial


async def test_a_new_conversation_mid_stream_records_the_old_turn_in_its_own_conversation(
    llama_server, history, pool
):
    old_events, new_events = Recorder(), Recorder()
    services = Services(pool, history=history)
    old = ConversationRunner(_profile(llama_server, max_tokens=400), services, listener=old_events)
    task = old.start("Describe the sea at length.")
    while not old_events.of(AnswerDelta):
        await asyncio.sleep(0.01)
    # The window's Ctrl+N: stop the old runner, start a fresh one at once.
    old.stop("you started a new conversation")
    new = ConversationRunner(_profile(llama_server), services, listener=new_events)
    ended_new = await new.ask("Say hello.")
    ended_old = await task
    assert _assert_one_turn_end(old_events).state == "stopped"
    assert ended_old.note == "Stopped by you (you started a new conversation)."
    assert not any(isinstance(e, TurnEnded) and e.runner is new for e in old_events.events)
    assert ended_new.state == "done"
    assert old.conversation_id != new.conversation_id
    old_stored = history.load_conversation(old.conversation_id)
    assert [t.answer for t in old_stored.turns] == [ended_old.answer]
    assert len(history.load_conversation(new.conversation_id).turns) == 1


async def test_a_dead_server_ends_the_turn_once_with_a_clear_error(history, pool):
    from tests.servers.llama import free_port

    rec = Recorder()
    profile = Profile(api_base=f"http://127.0.0.1:{free_port()}/v1", model="m")
    runner = ConversationRunner(profile, Services(pool, history=history), listener=rec)
    ended = await runner.ask("Anyone there?")
    assert _assert_one_turn_end(rec) is ended
    assert ended.state == "error" and ended.can_retry
    assert isinstance(ended.error, E.ConnectionRefused)
    assert "Nothing is listening" in ended.error.message and ended.error.hint
    assert not runner.busy and runner.can_retry()


async def test_an_unexpected_exception_ends_the_turn_and_frees_the_runner(
    llama_server, history, pool
):
    def broken_kb():
        raise TimeoutError("the embedding worker timed out")

    rec = Recorder()
    services = Services(pool, history=history, knowledge_base=broken_kb)
    runner = ConversationRunner(_profile(llama_server), services, listener=rec)
    ended = await runner.ask("Hello?")
    assert _assert_one_turn_end(rec) is ended
    assert ended.state == "error" and "TimeoutError" in ended.error.message
    assert not runner.busy
    # ... and the next question goes through.
    services.knowledge_base = lambda: None
    assert (await runner.ask("Hello?")).state == "done"


async def test_an_embedding_failure_falls_back_to_keywords_with_a_notice(
    llama_server, history, pool, tmp_path
):
    from kanoa_desktop.core.kb.index import KnowledgeBase

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# Basalt\n\nBasalt columns form as lava cools.\n")
    kb = KnowledgeBase([folder])
    kb.index()
    try:
        rec = Recorder()
        # This llama-server was started without --embeddings: /v1/embeddings fails.
        runner = ConversationRunner(
            _profile(llama_server, kb_embeddings_model="no-such-embedder"),
            Services(pool, history=history, knowledge_base=lambda: kb), listener=rec,
        )  # fmt: skip
        ended = await runner.ask("How do basalt columns form?")
        assert ended.state == "done"
        notices = [n for n in rec.of(Notice) if n.title == "Hybrid search unavailable"]
        assert notices and "Keyword search" in notices[0].message
        assert "Basalt columns" in runner.last_request["messages"][-1]["content"]
    finally:
        kb.close()


def _png(colour: str = "white") -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, "PNG")
    return buf.getvalue()


async def test_images_per_prompt_is_enforced_with_a_clear_message(llama_server, pool):
    figs = [prepare_figure(_png(c), name=f"{c}.png") for c in ("white", "red", "blue")]
    rec = Recorder()
    runner = ConversationRunner(
        _profile(llama_server, max_images=2, vision="yes"), Services(pool), listener=rec,
        outbox=Outbox(figs),
    )  # fmt: skip
    ended = await runner.ask()
    assert ended.state == "error"
    assert "at most 2 images" in ended.error.message and "would send 3" in ended.error.message
    assert not rec.of(Asked)  # nothing was sent


async def test_two_runners_stream_concurrently_on_one_loop(llama_server, history, pool):
    a, b = Recorder(), Recorder()
    services = Services(pool, history=history)
    ra = ConversationRunner(_profile(llama_server), services, listener=a)
    rb = ConversationRunner(_profile(llama_server), services, listener=b)
    ea, eb = await asyncio.gather(ra.ask("Count to five."), rb.ask("Name a fruit."))
    assert ea.state == eb.state == "done"
    assert all(e.runner is ra for e in a.events) and all(e.runner is rb for e in b.events)
    assert ra.conversation_id != rb.conversation_id


async def test_a_follow_up_carries_the_conversation(llama_server, history, pool):
    runner = ConversationRunner(_profile(llama_server), Services(pool, history=history))
    first = await runner.ask("Remember the word 'ocelot'.")
    await runner.ask("Which word?")
    msgs = runner.last_request["messages"]
    assert {"role": "assistant", "content": first.answer} in msgs
    assert len(history.load_conversation(runner.conversation_id).turns) == 2


def test_the_pipeline_imports_no_qt():
    import subprocess

    code = (
        "import sys, kanoa_desktop.core.ask.pipeline;"
        "print(any(m.startswith(('PySide6', 'shiboken6', 'qasync')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
