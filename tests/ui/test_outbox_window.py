"""The window shows exactly what the next question sends, against the vLLM test server: a
figure opened after the first question goes with the next one (its card says which
question sent it), Show request is the request sent, Ctrl+N starts empty (context and a
notebook cell's code gone), and a request the server refused costs nothing."""

from __future__ import annotations

import io

import pytest

from kanoa_desktop.core.inputs.figures import prepare_figure
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until

pytestmark = pytest.mark.vllm


def _figure(colour: str, name: str):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (80, 60), colour).save(buf, "PNG")
    return prepare_figure(buf.getvalue(), name=name)


def _chats(server) -> list[dict]:
    return [r.body for r in server.received if r.path.endswith("/chat/completions")]


def _images(message: dict) -> int:
    content = message["content"]
    return sum(p["type"] == "image_url" for p in content) if isinstance(content, list) else 0


def _cards(w) -> list[tuple[str, bool]]:
    cards = w.inputs.figures._cards
    return [(c.status.text(), not c.remove_button.isHidden()) for c in cards]


def test_a_figure_opened_after_the_first_question_goes_with_the_follow_up(make_window, run):
    with VLLMTestServer(tokens_per_second=800, answer_tokens=6) as server:
        w = make_window(server.api_base, server.model, max_tokens=16)
        cell = "The figure was drawn by cell 3 of the notebook:\n\n```python\nplt.plot(t, od)\n```"

        async def ask(question: str) -> None:
            w.inputs.question.setPlainText(question)
            turns = len(w.conversation.turns)
            w.interpret()
            await wait_until(lambda: not w.streaming and len(w.conversation.turns) > turns, 20)

        async def scenario():
            w.add_figure(_figure("red", "first.png"), code=cell)
            w.inputs.context.setPlainText("Growth of E. coli")
            assert _cards(w) == [("→ Goes with the next question", True)]
            await ask("What is plotted?")
            w.add_figure(_figure("blue", "second.png"))
            assert _cards(w) == [("✓ Sent with question 1", False),
                                 ("→ Goes with the next question", True)]  # fmt: skip
            await ask("And this one?")
            assert _cards(w) == [("✓ Sent with question 1", False),
                                 ("✓ Sent with question 2", False)]  # fmt: skip
            await ask("Compare them.")
            w.show_request()
            payload = w.request_dialog.payload
            w.request_dialog.close()
            return payload

        shown = run(scenario())
        first, second, third = _chats(server)
        # Show request shows the last request exactly as the server received it.
        assert shown == third
        assert _images(first["messages"][-1]) == 1 and "plt.plot(t, od)" in str(first)
        assert _images(second["messages"][-1]) == 1  # the figure opened meanwhile
        assert "Growth of E. coli" not in str(second["messages"][-1])  # sent once
        assert sum(_images(m) for m in third["messages"]) == 2 and not _images(
            third["messages"][-1])  # fmt: skip
        # The view says what each question carried.
        text = w.answer.toPlainText()
        assert "Figures (sent): first.png (with its cell's code)" in text
        assert "Figures (sent): second.png" in text

        # Ctrl+N: an empty conversation; the old context and cell code go nowhere.
        w.new_action.trigger()  # the shortcut itself: test_conversation_lifecycle
        assert w.inputs.figures.count() == 0 and w.inputs.context.toPlainText() == ""
        assert w.outbox.figures == [] and w.outbox.context == ""

        async def fresh():
            w.add_figure(_figure("green", "third.png"))
            await ask("A new one?")

        run(fresh())
        last = _chats(server)[-1]
        assert len(last["messages"]) == 2  # the system prompt and the question
        assert "E. coli" not in str(last) and "plt.plot" not in str(last)
        stored = w.history.load_conversation(w.runner.conversation_id)
        assert stored.context == "" and [f.name for f in stored.figures] == ["third.png"]


def test_a_refused_request_costs_nothing_in_the_status_bar(make_window, run, tmp_path):
    with VLLMTestServer(tokens_per_second=800, answer_tokens=6) as server:
        w = make_window(server.api_base, server.model, max_tokens=16,
                        price_input_per_million=1000.0, price_output_per_million=2000.0)  # fmt: skip

        async def ask(refused: bool) -> None:
            if refused:
                server.fail_next("internal_error")
            turns = len(w.conversation.turns)
            w.inputs.question.setPlainText("Hello?")
            w.interpret()
            await wait_until(lambda: not w.streaming and len(w.conversation.turns) > turns, 20)

        run(ask(True))
        assert w.status.cost.text() == "$0.00 · session $0.00"
        assert w.status.state.text().startswith("Error")
        run(ask(False))
        answer = w.stats.cost
        assert answer > 0 and w.services.costs.cost == pytest.approx(answer)
        cost = w.status.cost.text()
        assert not cost.startswith("~") and cost.endswith(f"session {cost.split(' ·')[0]}")
        w.resize(1280, 720)
        w.grab().save(str(tmp_path / "refused-then-answered.png"))
