"""The window against misbehaving servers: clear banners and notes, nothing loaded, no hang."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtGui import QTextDocument

from tests.hostile.server import HostileServer
from tests.ui.conftest import make_window, qloop, run, wait_until  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server():
    with HostileServer() as s:
        yield s


def _ask(w, run, question: str = "Describe.") -> None:  # noqa: F811 - run is the fixture
    w.inputs.question.setPlainText(question)

    async def scenario():
        w.interpret()
        await wait_until(lambda: not w.streaming, timeout=60, message="the answer to end")

    run(scenario())


def _images(doc: QTextDocument) -> int:
    count = 0
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            count += it.fragment().charFormat().isImageFormat()
            it += 1
        block = block.next()
    return count


def test_a_reasoning_only_answer_is_explained_and_its_reasoning_folded(
    server,
    make_window,  # noqa: F811
    run,  # noqa: F811
):
    w = make_window(server.api_base("reasoning-only"), "m")
    _ask(w, run)
    shown = w.answer.toPlainText()
    assert "only reasoned" in shown
    assert "Show the model's reasoning" in shown and "Let me think" not in shown
    assert not w.banner.isVisible()


def test_a_server_that_ignores_max_tokens_is_stopped_and_says_so(
    server,
    make_window,  # noqa: F811
    run,  # noqa: F811
):
    w = make_window(server.api_base("runaway"), "m", max_tokens=40)
    _ask(w, run)
    assert "kept generating past the 40-token limit" in w.answer.toPlainText()
    assert w.conversation.turns[-1].finish_reason == "length"


def test_a_429_names_the_wait(server, make_window, run):  # noqa: F811
    w = make_window(server.api_base("ratelimit"), "m")
    _ask(w, run)
    assert w.banner.isVisible() and "busy" in w.banner.title.text().lower()
    assert "7 s" in w.banner.hint.text()


def test_a_redirect_names_where_to(server, make_window, run):  # noqa: F811
    w = make_window(server.api_base("to-https"), "m")
    _ask(w, run)
    assert w.banner.title.text() == "Server redirects elsewhere"
    assert "https://" in w.banner.message.text() and "HTTPS" in w.banner.hint.text()


def test_model_markdown_never_loads_a_local_file(server, make_window, run, tmp_path):  # noqa: F811
    png = tmp_path / "private.png"
    Image.new("RGB", (8, 8), "red").save(png)
    w = make_window(server.api_base("hostile-markdown"), "m", max_tokens=4000)
    _ask(w, run, f"Look at PATH={png} please")
    assert _images(w.answer.document()) == 0
    assert "image: r" in w.answer.toPlainText()
