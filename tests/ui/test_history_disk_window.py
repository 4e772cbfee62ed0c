"""The window on a disk that fills mid-answer (issue 23), on a real small disk
(tests/history/disk.py) and the vLLM test server: the banner says what happened and what
to do, the history file is kept, and once space is back the turn is written without
another question and the banner goes."""

from __future__ import annotations

from PySide6.QtWidgets import QTreeWidget

from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.ui.window_parts import HISTORY_BANNER
from tests.history.conftest import record
from tests.history.disk import disk  # noqa: F401 - the fixture
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until


def test_a_disk_that_fills_mid_answer_is_said_and_the_answer_is_written_once_freed(
    disk,  # noqa: F811
    _isolated_home,
    make_window,
    run,
):
    _isolated_home.mkdir(parents=True, exist_ok=True)
    (_isolated_home / "data").symlink_to(disk.path / "data")
    earlier = HistoryStore(disk.path / "data" / "history.sqlite3")
    record(earlier, "Earlier question", "earlier answer")
    earlier.close()
    with VLLMTestServer(tokens_per_second=40, answer_tokens=400) as server:
        w = make_window(server.api_base, server.model)
        w.inputs.question.setPlainText("Describe the seasonal cycle.")

        async def ask_and_fill():
            w.interpret()
            await wait_until(lambda: len(w.answer.markdown.split()) > 20, 30, "some text")
            disk.fill()
            await wait_until(lambda: not w.streaming, 60, "the answer's end")

        run(ask_and_fill(), timeout=90)
        history = w.history
        assert w.banner.isVisible() and w.banner.title.text() == HISTORY_BANNER
        assert "is full" in w.banner.message.text()
        assert "Nothing is lost" in w.banner.message.text()
        assert w.banner.hint.text() == "Free some space on that disk."
        assert history.pending and not list((disk.path / "data").glob("*.damaged-*"))
        w.resize(900, 600)
        w.grab().save("/tmp/kanoa-window-history-full.png")
        answer = w.conversation.turns[-1].assistant
        assert len(answer.split()) > 100

        disk.free()  # and do nothing: the window tries again by itself

        async def written():
            await wait_until(lambda: not history.pending, 30, "the waiting writes")
            await wait_until(lambda: not w.banner.isVisible(), 5, "the banner to go")

        run(written(), timeout=40)
        turn = history.load_conversation(w.runner.conversation_id).turns[-1]
        assert (turn.state, turn.answer) == ("done", answer)
        assert w.history_panel.findChild(QTreeWidget, "historyList").topLevelItemCount() == 2
