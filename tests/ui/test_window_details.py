"""Details a demanding user notices: safety of rendered answers, shortcuts, memory of the
window, several figures, quick plots, browser drags, and keys that never reach a file."""

from __future__ import annotations

import keyring
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent, QImage, QTextImageFormat
from PySide6.QtWidgets import QApplication

from kanoa_desktop.ui.answer_view import AnswerView
from tests.profiles.conftest import MemoryKeyring
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until


def _images_in(doc) -> list[str]:
    found = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fmt = it.fragment().charFormat()
            if fmt.isImageFormat():
                found.append(QTextImageFormat(fmt).name())
            it += 1
        block = block.next()
    return found


def test_model_output_never_makes_the_view_load_anything(qtbot, tmp_path, monkeypatch):
    secret = tmp_path / "secret.png"
    QImage(8, 8, QImage.Format.Format_RGB32).save(str(secret))
    view = AnswerView()
    qtbot.addWidget(view)
    loads = []
    monkeypatch.setattr(AnswerView, "loadResource", lambda self, t, url: loads.append(url) or None)
    md = (
        f"# Result\n\n![leak]({QUrl.fromLocalFile(str(secret)).toString()})\n\n"
        '<img src="http://example.invalid/track.png">\n\n'
        "![remote](http://example.invalid/x.png)\n\nSee [the docs](https://example.org).\n"
    )
    view.begin_answer("")
    view.append(md)
    view.flush()
    view.end_answer()
    assert _images_in(view.document()) == []
    assert loads == []
    assert "image: leak" in view.toPlainText()  # shown as a link, not fetched
    # Raw HTML is not interpreted: the tag shows as text.
    assert '<img src="http://example.invalid/track.png">' in view.toPlainText()


def test_links_open_in_the_browser_only_when_clicked_and_only_web_links(qtbot, monkeypatch):
    opened = []
    monkeypatch.setattr(
        QDesktopServices, "openUrl", lambda url: opened.append(url.toString()) or True
    )
    view = AnswerView()
    qtbot.addWidget(view)
    view.set_conversation_markdown("[site](https://example.org) [file](file:///etc/passwd)")
    assert opened == []  # rendering opened nothing
    view.anchorClicked.emit(QUrl("file:///etc/passwd"))
    view.anchorClicked.emit(QUrl("https://example.org"))
    assert opened == ["https://example.org"]


def test_keyboard_shortcuts_are_bound(make_window):
    w = make_window("http://127.0.0.1:9/v1")
    shortcuts = {a.objectName(): [s.toString() for s in a.shortcuts()] for a in w.actions()}
    assert "Ctrl+O" in shortcuts["openAction"]
    assert (
        "Ctrl+Return" in shortcuts["interpretAction"]
        and "Ctrl+Enter" in shortcuts["interpretAction"]
    )
    assert shortcuts["stopAction"] == ["Esc"]
    assert shortcuts["newAction"] == ["Ctrl+N"]
    assert shortcuts["settingsAction"] == ["Ctrl+,"]
    assert any("Ctrl+V" in s for s in (x for v in shortcuts.values() for x in v))


def test_window_remembers_geometry_and_the_last_folder(make_window, run, sample_png):
    w = make_window("http://127.0.0.1:9/v1")
    screen = QApplication.primaryScreen().availableGeometry()
    size = (min(1111, screen.width() - 60), min(777, screen.height() - 60))
    w.resize(*size)
    w.open_paths([sample_png])
    run(wait_until(lambda: w.inputs.figures.count() == 1))
    w.close()  # saves state
    w2 = make_window("http://127.0.0.1:9/v1")
    assert (w2.width(), w2.height()) == size
    assert w2.last_folder == str(sample_png.parent)


def test_molmo_style_server_refuses_a_second_figure_with_a_clear_message(
    make_window, run, sample_png, tmp_path
):
    second = tmp_path / "second.png"
    QImage(40, 30, QImage.Format.Format_RGB32).save(str(second))
    with VLLMTestServer(max_images=1) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")

        async def scenario():
            w.open_paths([sample_png, second])
            await wait_until(lambda: w.inputs.figures.count() == 2)
            w.interpret()
            await wait_until(lambda: w.banner.isVisible() and not w.streaming)

        run(scenario())
    assert w.banner.title.text() == "Too many images"
    assert "at most 1 image per question" in w.banner.message.text()
    assert w.inputs.figures.count() == 2  # nothing the user gave is dropped


def test_quick_plot_of_a_table_goes_with_the_question(make_window, run, sample_csv):
    with VLLMTestServer(answer_tokens=10) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")

        async def load():
            w.open_paths([sample_csv])
            await wait_until(lambda: w.outbox.table is not None)

        run(load())
        w.inputs.table.x_combo.setCurrentText("day")
        w.inputs.table.y_combo.setCurrentText("od600")
        w.inputs.table.plot_button.click()

        async def ask():
            await wait_until(lambda: w.inputs.figures.count() == 1, message="plot added")
            w.interpret()
            await wait_until(lambda: not w.streaming and w.conversation.turns)

        run(ask())
        content = server.received[-1].body["messages"][-1]["content"]
    assert content[0]["type"] == "image_url"
    assert "od600" in content[-1]["text"]  # the summary went along with the plot
    assert "growth.csv" in w.inputs.figures.figures()[0].name


def test_image_dragged_from_a_browser_arrives_as_image_data(make_window, run):
    w = make_window("http://127.0.0.1:9/v1")
    img = QImage(120, 80, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    mime = QMimeData()
    mime.setImageData(img)
    mime.setUrls([QUrl("https://example.invalid/figure.png")])  # browsers add the page URL
    pos = QPoint(50, 50)
    enter = QDragEnterEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(w, enter)
    QApplication.sendEvent(
        w,
        QDropEvent(
            QPointF(pos),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        ),
    )
    run(wait_until(lambda: w.inputs.figures.count() == 1))
    fig = w.inputs.figures.figures()[0]
    assert fig.sent_size == (120, 80)  # taken from the image data: nothing downloaded


@pytest.fixture
def memory_keyring():
    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_a_session_with_a_key_leaves_it_in_no_file(make_window, run, memory_keyring, tmp_path):
    key = "sk-session-secret-31415926"
    with VLLMTestServer(api_key=key, answer_tokens=10) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")
        assert w.keys.set(w.profile.id, key) is None
        w.inputs.question.setPlainText("Hello?")

        async def scenario():
            w.interpret()
            await wait_until(lambda: not w.streaming and w.conversation.turns)

        run(scenario())
        assert w.conversation.turns[-1].finish_reason == "stop"  # the key was used
        w.copy_answer()
        w.close()
    home = tmp_path / "kanoa-home"
    files = [p for p in home.rglob("*") if p.is_file()]
    assert files, "the session wrote nothing?"
    for path in files:
        assert key.encode() not in path.read_bytes(), path
    assert key not in QApplication.clipboard().text()
    assert memory_keyring.get_password("kanoa-desktop", w.profile.id) == key


def test_tools_benchmark_endpoint_opens_a_live_dialog(make_window, run):
    from PySide6.QtWidgets import QDialog

    with VLLMTestServer(answer_tokens=5) as server:
        w = make_window(server.api_base, "")  # no model set: the first listed is used
        w.bench_action.trigger()
        run(wait_until(lambda: getattr(w, "bench_dialog", None) is not None, 10, "dialog"))
        dlg = w.bench_dialog
        assert isinstance(dlg, QDialog) and dlg.isVisible() and not dlg.isModal()
        dlg.close()


def test_figures_from_a_server_without_usage_are_marked_estimated(make_window, run):
    with VLLMTestServer(ignore_stream_options=True, answer_tokens=12) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")
        w.inputs.question.setPlainText("Hi")

        async def scenario():
            w.interpret()
            await wait_until(lambda: not w.streaming and w.conversation.turns)

        run(scenario())
    tokens = w.status.tokens.text()
    assert tokens.startswith("~") and "/ ~12 out" in tokens


class _FakeGpuReader:
    """Stands in for NVML (no GPU here): one GPU drawing a steady 150 W."""

    def read(self):
        from kanoa_desktop.core.monitor.gpu import GpuReading

        return [
            GpuReading(0, "Fake RTX", 80.0, 8 << 30, 16 << 30, 60.0, 150.0, 200.0, 4, 16, 4, 16)
        ]

    def close(self) -> None:
        pass


def test_energy_of_an_answer_is_shown_and_recorded_when_power_is_known(
    make_window, run, monkeypatch
):
    # NVML is faked at its boundary: the poller's local GPU reader.
    monkeypatch.setattr("kanoa_desktop.core.monitor.poller.LocalGpuReader", _FakeGpuReader)
    with VLLMTestServer(tokens_per_second=40, answer_tokens=120) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")
        w.inputs.question.setPlainText("Go")

        async def scenario():
            w.interpret()
            await wait_until(lambda: not w.streaming and w.conversation.turns, 20)

        run(scenario())
        assert w.status.energy.isVisible() and w.status.energy.text().endswith("Wh")
        wh = float(w.status.energy.text().split()[0])
        # ~3 s at 150 W is ~0.12 Wh; the exact figure depends on when the 1 s polls land.
        assert 0.02 < wh < 0.3
        turn = w.history.load_conversation(w._conversation_id).turns[-1]
        assert turn.energy_wh == pytest.approx(wh, rel=0.05, abs=0.0005)


def test_a_text_only_server_with_no_model_named_stops_figures_after_one_refusal(
    make_window, run, sample_png
):
    with VLLMTestServer(multimodal=False, answer_tokens=6) as server:
        w = make_window(server.api_base, "")  # the profile names no model: the first listed

        async def scenario():
            w.open_paths([sample_png])
            await wait_until(lambda: w.inputs.figures.count() == 1)
            w.interpret()
            await wait_until(lambda: w.banner.isVisible() and not w.streaming)
            assert w.banner.title.text() == "Model cannot see images"
            assert w.banner.retry.isVisible()  # Retry goes on without the figure
            w.banner.retry.click()
            await wait_until(
                lambda: not w.streaming and w.conversation.turns[-1].finish_reason == "stop"
            )

        run(scenario())
        assert isinstance(server.received[-1].body["messages"][-1]["content"], str)
    assert w.vision_note.isVisible()


def test_a_2_gb_csv_is_refused_with_a_clear_message_without_reading_it(make_window, run, tmp_path):
    big = tmp_path / "huge.csv"
    with open(big, "wb") as f:
        f.write(b"a,b\n1,2\n")
        f.truncate(2 * 1024**3)  # sparse: 2 GB on paper, nothing written
    w = make_window("http://127.0.0.1:9/v1")
    w.open_paths([big])
    run(wait_until(lambda: w.banner.isVisible(), 10, "banner"))
    assert "huge.csv" in w.banner.message.text() and w.banner.hint.text()
    assert w.outbox.table is None and w.isEnabled()
