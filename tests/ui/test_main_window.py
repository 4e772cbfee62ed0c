"""The real window, offscreen, against the vLLM test server and the real llama.cpp server."""

from __future__ import annotations

import asyncio
import json

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from tests.servers.llama import free_port
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until

OBJECT_NAMES = [
    "figureDrop", "contextEdit", "focusEdit", "interpretButton", "stopButton",
    "answerView", "statusTokens", "statusSpeed", "statusCost",
]  # fmt: skip


def drop_files(window: QWidget, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPoint(window.width() // 3, window.height() // 2)
    enter = QDragEnterEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(pos),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, drop)


def test_every_main_control_has_its_object_name_and_an_accessible_name(make_window):
    w = make_window("http://127.0.0.1:9/v1")
    for name in OBJECT_NAMES:
        widget = w.findChild(QWidget, name)
        assert widget is not None, name
        assert widget.accessibleName(), name


def test_drop_png_and_csv_then_interpret_streams_and_fills_the_status_bar(
    make_window, run, sample_png, sample_csv
):
    with VLLMTestServer(tokens_per_second=150) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")

        async def scenario():
            drop_files(w, [sample_png, sample_csv])
            await wait_until(
                lambda: w.inputs.figures.count() == 1 and w.outbox.table is not None,
                message="inputs loaded",
            )
            assert w.inputs.table.isVisible() and not w.inputs.drop.isVisible()
            caption = " ".join(lab.text() for lab in w.inputs.figures.findChildren(QLabel))
            assert "original 600×400" in caption and "sent" in caption

        async def streaming():
            # Text arrives while the answer is still streaming.
            await wait_until(
                lambda: "What the figure shows" in w.answer.toPlainText(), message="streamed text"
            )
            assert w.streaming  # shown while the answer is still arriving
            await wait_until(lambda: not w.streaming, 30, "answer finished")

        run(scenario())
        w.inputs.context.setPlainText("Growth of a culture")
        w.inputs.focus.setText("the exponential phase")
        # Real clicks and keys spin Qt's event loop: never from inside a coroutine (that
        # would step tasks inside a task), always between scenario runs, as a user does.
        QTest.mouseClick(w.interpret_button, Qt.MouseButton.LeftButton)
        run(streaming())
        body = server.received[-1].body
        user = body["messages"][-1]["content"]
        text = next(p["text"] for p in user if p["type"] == "text")
        assert user[0]["type"] == "image_url" and user[0]["image_url"]["url"].startswith(
            "data:image/"
        )
        assert "Growth of a culture" in text and "the exponential phase" in text
        assert "growth.csv" in text and "od600" in text  # the table summary went along
        assert w.status.state.text() in ("Finished", "Cut at max tokens")
        assert w.status.tokens.text().startswith(f"{server_prompt_tokens(body):,} in")
        assert "tok/s" in w.status.speed.text() and w.status.speed.text() != "– tok/s"
        assert w.status.ttft.text().startswith("TTFT 0.")
        assert w.status.cost.text().startswith("$") and "session" in w.status.cost.text()
        assert w.status.context.value() > 0
        # One full render when the answer began and one when it ended: never per token.
        assert w.answer.renders <= 3 and w.answer.fragment_renders >= 3


def server_prompt_tokens(body) -> int:
    from tests.servers.vllm_server import prompt_tokens

    return prompt_tokens(body["messages"])


def test_stop_with_escape_keeps_the_partial_answer_marked_stopped(make_window, run, sample_png):
    with VLLMTestServer(tokens_per_second=20) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")

        async def scenario():
            w.open_paths([sample_png])
            await wait_until(lambda: w.inputs.figures.count() == 1)
            w.interpret()
            await wait_until(lambda: len(w.answer.markdown.split()) > 8, message="some text")

        run(scenario())
        QTest.keyClick(w, Qt.Key.Key_Escape)
        run(wait_until(lambda: not w.streaming, 3, "stopped at once"))
        assert w.status.state.text() == "Stopped by you"
        assert "Stopped by you." in w.answer.toPlainText()
        turn = w.conversation.turns[-1]
        assert turn.finish_reason == "stopped" and turn.assistant.strip()
        assert server.wait_for(lambda s: s.aborted == 1, 5)
        assert w.interpret_action.isEnabled() and not w.stop_action.isEnabled()


def test_follow_up_continues_the_conversation_with_the_figure(make_window, run, sample_png):
    with VLLMTestServer(answer_tokens=30) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")

        async def scenario():
            w.open_paths([sample_png])
            await wait_until(lambda: w.inputs.figures.count() == 1)
            w.interpret()
            await wait_until(lambda: not w.streaming and w.conversation.turns)
            w.inputs.question.setPlainText("What is the value at t = 2?")
            w.interpret()
            await wait_until(lambda: not w.streaming and len(w.conversation.turns) == 2)

        run(scenario())
        msgs = server.received[-1].body["messages"]
        assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
        assert msgs[1]["content"][0]["type"] == "image_url"  # the figure stays in context
        assert msgs[3]["content"] == "What is the value at t = 2?"
        assert w.inputs.question.toPlainText() == ""
        assert "What is the value at t = 2?" in w.answer.toPlainText()

        QTest.keyClick(w, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
        assert w.conversation.turns == [] and w.answer.toPlainText() == ""
        assert w.inputs.figures.count() == 0


def test_copy_answer_puts_markdown_on_the_clipboard_and_show_request_shows_the_body(
    make_window, run
):
    with VLLMTestServer(answer_tokens=20) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")
        w.inputs.question.setPlainText("Explain a histogram.")

        async def scenario():
            w.interpret()
            await wait_until(lambda: not w.streaming and w.conversation.turns)

        run(scenario())
        w.copy_answer()
        clip = QGuiApplication.clipboard().text()
        assert "Explain a histogram." in clip and "**You**" in clip
        w.show_request()
        text = w.request_dialog.findChild(QWidget, "requestView").toPlainText()
        assert "Explain a histogram." in text and '"messages"' not in text  # readable
        w.request_dialog.copy_json()
        body = json.loads(QGuiApplication.clipboard().text())
        assert body == server.received[-1].body  # exactly what was sent


def test_dead_server_shows_a_banner_with_retry_and_loses_nothing(make_window, run, sample_png):
    port = free_port()
    w = make_window(f"http://127.0.0.1:{port}/v1", "qwen2.5-vl-7b")
    w.inputs.context.setPlainText("my careful context")
    w.inputs.question.setPlainText("my question")

    async def scenario():
        w.open_paths([sample_png])
        await wait_until(lambda: w.inputs.figures.count() == 1)
        w.interpret()
        await wait_until(lambda: w.banner.isVisible(), message="banner")

    run(scenario())
    assert w.banner.title.text() == "Cannot reach the server"
    assert w.banner.hint.text() and w.banner.retry.isVisible()
    assert w.inputs.context.toPlainText() == "my careful context"
    assert w.inputs.question.toPlainText() == "my question"
    assert w.inputs.figures.count() == 1
    assert w.isEnabled() and w.interpret_action.isEnabled()

    # The server comes up on that port: Retry succeeds.
    with VLLMTestServer(port=port, answer_tokens=10):
        QTest.mouseClick(w.banner.retry, Qt.MouseButton.LeftButton)
        run(wait_until(lambda: not w.streaming and w.conversation.turns, message="retried"))
    assert not w.banner.isVisible()
    assert w.status.state.text() in ("Finished", "Cut at max tokens")


def test_error_in_the_middle_keeps_the_text_received(make_window, run):
    with VLLMTestServer(tokens_per_second=200) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")
        w.inputs.question.setPlainText("Go.")
        server.fail_next("midstream_error", after_tokens=12)

        async def scenario():
            w.interpret()
            await wait_until(lambda: w.banner.isVisible(), message="banner")

        run(scenario())
        assert w.banner.title.text() == "Server error during the answer"
        turn = w.conversation.turns[-1]
        assert turn.finish_reason == "error" and len(turn.assistant.split()) >= 8
        assert "Error: " in w.answer.toPlainText() and "text received until" in w.answer.toPlainText()
        assert w.status.state.text().startswith("Error")
        assert w.inputs.question.toPlainText() == "Go."


@pytest.mark.parametrize(
    ("server_kw", "fail", "title"),
    [
        ({"max_model_len": 300}, None, "Prompt too long for the model"),
        ({"api_key": "sk-right"}, None, "Not authorised"),
        ({}, "cut_stream", "Answer cut off"),
        ({}, "non_json_chunk", "Unexpected reply from the server"),
        ({}, "queue_full", "Server is busy"),
    ],
)
def test_each_error_path_shows_its_banner(make_window, run, server_kw, fail, title):
    with VLLMTestServer(**server_kw) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")
        w.inputs.question.setPlainText("word " * 400 if "max_model_len" in server_kw else "hello")
        if fail:
            server.fail_next(fail, after_tokens=5)

        async def scenario():
            w.interpret()
            await wait_until(lambda: w.banner.isVisible() and not w.streaming, message="banner")

        run(scenario())
        assert w.banner.title.text() == title
        assert w.banner.message.text() and w.banner.hint.text()


def test_text_only_model_refuses_the_figure_then_figures_are_not_sent(make_window, run, sample_png):
    with VLLMTestServer(multimodal=False, answer_tokens=10) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")

        async def scenario():
            w.open_paths([sample_png])
            await wait_until(lambda: w.inputs.figures.count() == 1)
            w.interpret()
            await wait_until(lambda: w.banner.isVisible() and not w.streaming)
            assert w.banner.title.text() == "Model cannot see images"
            assert w.vision_note.isVisible() and "figures are not sent" in w.vision_note.text()
            w.retry()
            await wait_until(
                lambda: not w.streaming and w.conversation.turns[-1].finish_reason == "stop"
            )

        run(scenario())
        content = server.received[-1].body["messages"][-1]["content"]
        assert isinstance(content, str)  # no image part the second time


def test_paste_image_data_adds_a_figure(make_window, run):
    w = make_window("http://127.0.0.1:9/v1")
    img = QImage(64, 48, QImage.Format.Format_RGB32)
    img.fill(Qt.GlobalColor.darkBlue)
    mime = QMimeData()
    mime.setImageData(img)
    QGuiApplication.clipboard().setMimeData(mime)

    async def scenario():
        w.answer.setFocus()
        w.paste()
        await wait_until(lambda: w.inputs.figures.count() == 1)

    try:
        run(scenario())
    finally:
        # The clipboard owns our QMimeData; left there, Qt would destroy it at process exit,
        # after Python is gone (a crash in shiboken's destructor).
        QGuiApplication.clipboard().clear()
    assert w.inputs.figures.figures()[0].sent_size == (64, 48)


def test_corrupt_and_empty_files_give_a_clear_banner(make_window, run, tmp_path):
    w = make_window("http://127.0.0.1:9/v1")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")

    async def scenario():
        for path in (bad, empty):
            w.banner.hide()
            drop_files(w, [path])
            await wait_until(lambda: w.banner.isVisible(), message=f"banner for {path.name}")
            assert path.name in w.banner.message.text()
            assert w.banner.hint.text()

    run(scenario())
    assert w.inputs.figures.count() == 0


@pytest.mark.llama
def test_interpret_a_csv_against_the_real_llama_server(make_window, run, llama_server, sample_csv):
    w = make_window(llama_server.api_base, "smollm2", max_tokens=64)

    async def scenario():
        drop_files(w, [sample_csv])
        await wait_until(lambda: w.outbox.table is not None)
        w.interpret()
        await wait_until(lambda: not w.streaming and w.conversation.turns, 240, "llama answer")

    run(scenario(), timeout=300)
    assert w.conversation.turns[-1].finish_reason in ("stop", "length")
    assert w.conversation.turns[-1].assistant.strip()
    assert w.status.state.text() in ("Finished", "Cut at max tokens")
    tokens = w.status.tokens.text()
    assert not tokens.startswith("~")  # llama.cpp reports real usage
    # The context gauge knows llama.cpp's per-slot context from /v1/models meta.n_ctx.
    assert "of 4,096 tokens" in w.status.context.toolTip()
    assert w.status.context.value() > 0


def test_closing_mid_stream_cancels_the_request_and_leaves_no_task(make_window, run, qloop):
    with VLLMTestServer(tokens_per_second=20) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")
        w.inputs.question.setPlainText("Long answer please.")

        async def scenario():
            w.interpret()
            await wait_until(lambda: len(w.answer.markdown.split()) > 5)
            w.close()
            await w.shutdown()

        run(scenario())
        assert server.wait_for(lambda s: s.aborted == 1 and s.open_connections == 0, 5)
        assert not w.clients._clients  # every client closed and dropped
        leftover = [t for t in asyncio.all_tasks(qloop) if not t.done()]
        assert leftover == []


def test_attached_knowledge_base_grounds_the_question_and_lists_sources(make_window, run, tmp_path):
    kb = tmp_path / "notes"
    kb.mkdir()
    (kb / "protocol.md").write_text(
        "# Growth protocol\n\nCultures of strain K12 were grown at 37 C in LB medium; "
        "OD600 was read every 30 minutes.\n"
    )
    (kb / "unrelated.txt").write_text("Shopping list: apples, bread.\n")
    with VLLMTestServer(answer_tokens=20, max_model_len=4096) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")
        w.kb_panel.set_folders([kb])

        async def scenario():
            await wait_until(
                lambda: w.kb_panel.knowledge_base is not None and not w.kb_panel.is_indexing(),
                20,
                "indexed",
            )
            w.inputs.question.setPlainText("How was OD600 measured for strain K12?")
            w.interpret()
            await wait_until(lambda: not w.streaming and w.conversation.turns, message="answer")

        run(scenario())
        text = server.received[-1].body["messages"][-1]["content"]
        assert "[1]" in text and "protocol.md" in text and "every 30 minutes" in text
        assert w.sources.isVisible()
        labels = [w.sources.list.item(i).text() for i in range(w.sources.list.count())]
        assert any("protocol.md" in label for label in labels)
        # The folder belongs to this profile, stored with it (the command line sees it too).
        assert w.store.active.kb_folders == (str(kb),)
        from kanoa_desktop.core.config.profiles import ProfileStore

        reloaded = ProfileStore()
        reloaded.load()
        assert reloaded.get_by_id(w.profile.id).kb_folders == (str(kb),)


def test_answers_are_recorded_and_a_reopened_conversation_continues(make_window, run, sample_png):
    with VLLMTestServer(answer_tokens=15) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")

        async def first():
            w.open_paths([sample_png])
            await wait_until(lambda: w.inputs.figures.count() == 1)
            w.inputs.context.setPlainText("A quadratic")
            w.interpret()
            await wait_until(lambda: not w.streaming and w.conversation.turns)

        run(first())
        listed = w.history.list_conversations()
        assert len(listed) == 1 and listed[0].n_turns == 1
        cid = listed[0].id
        assert w.history_panel.findChild(QWidget, "historyList").topLevelItemCount() == 1
        w.new_conversation()
        assert w.inputs.figures.count() == 0
        w.reopen_conversation(cid)
        assert w.inputs.figures.count() == 1 and w.inputs.context.toPlainText() == "A quadratic"
        assert "What the figure shows" in w.answer.toPlainText()
        w.inputs.question.setPlainText("And the slope at 2?")

        async def follow_up():
            w.interpret()
            await wait_until(lambda: not w.streaming and len(w.conversation.turns) == 2)

        run(follow_up())
        msgs = server.received[-1].body["messages"]
        assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
        assert msgs[1]["content"][0]["type"] == "image_url"  # the figure came back from history
        stored = w.history.load_conversation(cid)
        assert len(stored.turns) == 2  # the follow-up joined the same conversation


@pytest.mark.llama
def test_hybrid_search_embeds_the_knowledge_base_through_the_endpoint(
    make_window, run, tmp_path, llama_embedding_server
):
    kb = tmp_path / "notes"
    kb.mkdir()
    (kb / "protocol.md").write_text(
        "# Protocol\n\nOD600 of strain K12 was read every 30 minutes.\n"
    )
    (kb / "other.md").write_text("# Other\n\nThe seminar is on Tuesday.\n")
    w = make_window(
        llama_embedding_server.api_base, "smollm2", max_tokens=16, kb_embeddings_model="smollm2"
    )
    w.kb_panel.set_folders([kb])

    async def scenario():
        await wait_until(
            lambda: w.kb_panel.knowledge_base is not None and not w.kb_panel.is_indexing(), 20
        )
        w.inputs.question.setPlainText("How often was OD600 read?")
        w.interpret()
        await wait_until(lambda: not w.streaming and w.conversation.turns, 240, "answer")

    run(scenario(), timeout=300)
    assert not w.banner.isVisible(), w.banner.message.text()
    base = w.kb_panel.knowledge_base
    vectors = base.vectors("smollm2")
    assert len(vectors) == base.chunk_count() >= 2  # every chunk got a vector from the server
    assert w.conversation.turns[-1].finish_reason in ("stop", "length")


def test_hybrid_search_on_an_endpoint_without_embeddings_falls_back_with_a_message(
    make_window, run, tmp_path
):
    kb = tmp_path / "notes"
    kb.mkdir()
    (kb / "protocol.md").write_text("# Protocol\n\nOD600 was read every 30 minutes.\n")
    with VLLMTestServer(answer_tokens=8) as server:  # serves no /v1/embeddings
        w = make_window(server.api_base, "qwen2.5-vl-7b", kb_embeddings_model="bge-small")
        w.kb_panel.set_folders([kb])

        async def scenario():
            await wait_until(
                lambda: w.kb_panel.knowledge_base is not None and not w.kb_panel.is_indexing(), 20
            )
            w.inputs.question.setPlainText("How often was OD600 read?")
            w.interpret()
            await wait_until(lambda: not w.streaming and w.conversation.turns, 30)

        run(scenario())
        text = server.received[-1].body["messages"][-1]["content"]
    assert w.banner.title.text() == "Hybrid search unavailable"
    assert "Keyword search is used instead" in w.banner.message.text()
    assert "every 30 minutes" in text  # the question still went, grounded by keywords
