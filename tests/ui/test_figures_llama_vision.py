"""The window sends a dropped figure to the real llama.cpp server, with and without a
vision projector (``llama_vision_server``: tests/servers/make_mmproj.py)."""

from __future__ import annotations

import uuid

import pytest
from PySide6.QtWidgets import QWidget

from tests.servers import make_mmproj
from tests.ui.conftest import wait_until
from tests.ui.test_main_window import drop_files

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]


def unique_plot(tmp_path):
    """A PNG plot no earlier request sent: the server cannot answer it from its cache, so
    it must decode and encode this very image."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    ax.plot([0, 1, 2, 3], [1, 4, 9, 16])
    ax.set_title(uuid.uuid4().hex[:8])
    path = tmp_path / "plot.png"
    fig.savefig(path, dpi=100)
    return path


def text_only_tokens(server, stored, turn: int) -> int:
    """The server's count for the messages of ``turn`` as recorded in history (what the
    window sent), with the figures taken out."""
    conv = stored.conversation()
    conv.turns = conv.turns[:turn]
    messages = conv.messages_for(stored.turns[turn].user_message)
    for m in messages:
        if isinstance(m["content"], list):
            m["content"] = [p for p in m["content"] if p.get("type") != "image_url"]
    return server.prompt_tokens(messages)


def test_drop_a_png_and_interpret_against_the_real_multimodal_server(
    make_window, run, tmp_path, llama_vision_server
):
    w = make_window(llama_vision_server.api_base, "smollm2", max_tokens=24)

    async def scenario():
        drop_files(w, [unique_plot(tmp_path)])
        await wait_until(lambda: w.inputs.figures.count() == 1, message="figure loaded")
        w.interpret()
        await wait_until(lambda: not w.streaming and w.conversation.turns, 180, "answer")

    run(scenario(), timeout=200)
    assert not w.banner.isVisible(), w.banner.message.text()
    assert w.conversation.turns[-1].finish_reason in ("stop", "length")
    assert w.status.state.text() in ("Finished", "Cut at max tokens")
    tokens = w.status.tokens.text()
    assert not tokens.startswith("~")  # llama.cpp's own usage
    assert "of 4,096 tokens" in w.status.context.toolTip()
    # The server decoded and counted the dropped figure: the prompt is the text plus one
    # image's tokens, and that is what the status bar shows.
    stored = w.history.load_conversation(w.history.list_conversations()[0].id)
    expected = text_only_tokens(llama_vision_server, stored, 0) + make_mmproj.TOKENS_PER_IMAGE
    assert stored.turns[0].prompt_tokens == expected
    assert tokens.startswith(f"{expected:,} in")


def test_a_reopened_conversation_sends_its_figure_again_to_the_real_server(
    make_window, run, tmp_path, llama_vision_server
):
    w = make_window(llama_vision_server.api_base, "smollm2", max_tokens=16)

    async def first():
        drop_files(w, [unique_plot(tmp_path)])
        await wait_until(lambda: w.inputs.figures.count() == 1, message="figure loaded")
        w.interpret()
        await wait_until(lambda: not w.streaming and w.conversation.turns, 180, "answer")

    run(first(), timeout=200)
    cid = w.history.list_conversations()[0].id
    w.new_conversation()
    assert w.inputs.figures.count() == 0
    w.reopen_conversation(cid)
    assert w.inputs.figures.count() == 1
    w.inputs.question.setPlainText("And the slope at 2?")

    async def follow_up():
        w.interpret()
        await wait_until(lambda: not w.streaming and len(w.conversation.turns) == 2, 180)

    run(follow_up(), timeout=200)
    # The figure came back from history as an image the real decoder reads (a damaged one
    # is refused with "Failed to load image"), and the follow-up joined the conversation.
    assert not w.banner.isVisible(), w.banner.message.text()
    assert w.conversation.turns[-1].finish_reason in ("stop", "length")
    stored = w.history.load_conversation(cid)
    assert len(stored.turns) == 2 and len(stored.figures) == 1
    expected = text_only_tokens(llama_vision_server, stored, 1) + make_mmproj.TOKENS_PER_IMAGE
    assert stored.turns[1].prompt_tokens == expected
    assert w.history_panel.findChild(QWidget, "historyList").topLevelItemCount() == 1


def test_a_figure_to_the_plain_llama_server_is_refused_with_the_cannot_see_banner(
    make_window, run, tmp_path, llama_server
):
    w = make_window(llama_server.api_base, "smollm2", max_tokens=16)

    async def scenario():
        drop_files(w, [unique_plot(tmp_path)])
        await wait_until(lambda: w.inputs.figures.count() == 1, message="figure loaded")
        w.interpret()
        await wait_until(lambda: w.banner.isVisible() and not w.streaming, 60, "refusal")

    run(scenario(), timeout=90)
    # llama.cpp answers 500 "image input is not supported - hint: ... mmproj".
    assert w.banner.title.text() == "Model cannot see images"
    assert w.banner.hint.text()
