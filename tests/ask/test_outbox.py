"""What the next question sends, against the vLLM test server (it records every request):
a figure added after the first question goes with the next one and stays for later
follow-ups, each input is sent once, the request shown is the request sent, a reopened
conversation knows what it sent."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.ask.outbox import Outbox
from kanoa_desktop.core.ask.pipeline import ConversationRunner, reopened
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.inputs.figures import prepare_figure
from tests.servers.vllm_server import VLLMTestServer

pytestmark = pytest.mark.vllm


def _png(colour: str) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, "PNG")
    return buf.getvalue()


def _images(message: dict) -> list[str]:
    content = message["content"]
    return [p["image_url"]["url"] for p in content if p["type"] == "image_url"] if isinstance(
        content, list) else []  # fmt: skip


def _text(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(
        p.get("text", "") for p in content if p["type"] == "text")  # fmt: skip


@pytest.fixture
def history(tmp_path):
    store = HistoryStore(tmp_path / "history.sqlite3")
    yield store
    store.close()


async def test_a_figure_added_mid_conversation_goes_with_the_next_question_and_stays(history):
    a = prepare_figure(_png("red"), name="a.png")
    b = prepare_figure(_png("blue"), name="b.png")
    outbox = Outbox([a], context="Two assays", focus="the colour")
    with VLLMTestServer(tokens_per_second=500, answer_tokens=6) as server:
        pool = ClientPool()
        runner = ConversationRunner(
            Profile(api_base=server.api_base, model=server.model, max_tokens=16),
            Services(pool, history=history),
            outbox=outbox,
        )
        shown = []
        for question in ("What is it?", "And this one?", "Compare them."):
            if question == "And this one?":
                assert outbox.add_figure(b) and outbox.sent_with(b) is None
                assert not outbox.add_figure(b)  # the same image is in it once
            ended = await runner.ask(question)
            assert ended.state == "done", ended.error
            shown.append(runner.last_request)
        await pool.aclose()
        bodies = [r.body for r in server.received if r.path.endswith("/chat/completions")]

    # Show request is the request sent, byte for byte (its JSON).
    assert shown == bodies
    first, second, third = (body["messages"] for body in bodies)
    assert _images(first[-1]) == [a.data_url()]
    assert "Context: Two assays" in _text(first[-1]) and "the colour" in _text(first[-1])
    # The figure opened after the first question goes with the second ...
    assert _images(second[-1]) == [b.data_url()]
    assert _images(second[1]) == [a.data_url()]  # ... the first still in the conversation
    assert "Two assays" not in _text(second[-1])  # sent once, carried by turn 1
    # ... and both stay for a later follow-up, which sends no image again.
    assert [u for m in third for u in _images(m)] == [a.data_url(), b.data_url()]
    assert _images(third[-1]) == []
    assert (outbox.sent_with(a), outbox.sent_with(b)) == (1, 2)
    assert not outbox.remove_figure(a)  # sent: the messages keep it
    asked = outbox.asked_texts()
    assert "Figures (sent): a.png" in asked[0] and "Figures (sent): b.png" in asked[1]
    assert asked[2] == "Compare them."

    # The history has both figures; a reopened conversation knows which question sent each
    # and sends neither again.
    stored = history.load_conversation(runner.conversation_id)
    assert [f.name for f in stored.figures] == ["a.png", "b.png"]
    conversation, again = reopened(stored)
    assert [again.sent_with(f) for f in again.figures] == [1, 2]
    assert again.pending().figures == () and again.pending().context == ""
    assert [t.asked for t in conversation.turns] == again.asked_texts()
    assert "Figures (sent): b.png" in conversation.turns[1].asked


async def test_a_changed_context_goes_again_once_and_a_new_outbox_starts_empty():
    outbox = Outbox(context="Run 1")
    with VLLMTestServer(tokens_per_second=500, answer_tokens=4) as server:
        pool = ClientPool()
        runner = ConversationRunner(
            Profile(api_base=server.api_base, model=server.model, max_tokens=8),
            Services(pool),
            outbox=outbox,
        )
        await runner.ask("One?")
        outbox.context = "Run 2, recalibrated"
        await runner.ask("Two?")
        await runner.ask("Three?")
        fresh = ConversationRunner(runner.profile, runner.services)  # a new conversation
        await fresh.ask("Four?")
        await pool.aclose()
        bodies = [r.body for r in server.received if r.path.endswith("/chat/completions")]
    texts = [_text(b["messages"][-1]) for b in bodies]
    assert "Context: Run 1" in texts[0]
    assert "Context: Run 2, recalibrated" in texts[1]
    assert "Context" not in texts[2] and "Context" not in texts[3]
    assert len(bodies[3]["messages"]) == 2  # system prompt and the question: nothing else


async def test_a_retried_question_carries_again_what_its_failed_turn_carried():
    a = prepare_figure(_png("green"), name="a.png")
    outbox = Outbox([a])
    with VLLMTestServer(tokens_per_second=500, answer_tokens=4) as server:
        pool = ClientPool()
        runner = ConversationRunner(
            Profile(api_base=server.api_base, model=server.model, max_tokens=8),
            Services(pool),
            outbox=outbox,
        )
        server.fail_next("internal_error")
        failed = await runner.ask("What is it?")
        assert failed.state == "error" and outbox.sent_with(a) == 1
        retried = await runner.retry()
        await pool.aclose()
        bodies = [r.body for r in server.received if r.path.endswith("/chat/completions")]
    assert retried.state == "done" and outbox.sent_with(a) == 1
    assert _images(bodies[-1]["messages"][-1]) == [a.data_url()]
    assert len(runner.conversation.turns) == 1
