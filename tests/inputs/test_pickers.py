"""The PDF and notebook pickers, offscreen on a qasync loop with a real worker pool."""

from __future__ import annotations

import asyncio
import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt

from kanoa_desktop.core.inputs.notebook import load_notebook
from kanoa_desktop.core.inputs.pdf import open_pdf
from kanoa_desktop.ui.notebook_picker import NotebookPicker
from kanoa_desktop.ui.pdf_picker import PdfPicker
from kanoa_desktop.ui.pickers import show_picker_for
from tests.inputs.test_notebook import _code, _display, _png, _write
from tests.inputs.test_pdf import _paper
from tests.ui.conftest import qloop, run, wait_until  # noqa: F401 - fixtures

SHOTS = os.environ.get("KANOA_PICKER_SHOTS")  # a folder to save screenshots in, to look at


@pytest.fixture
def worker(qloop):  # noqa: F811 - the fixture above
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-cpu")

    async def run_cpu(fn, *args):
        return await qloop.run_in_executor(pool, fn, *args)

    def spawn(coro):
        return asyncio.ensure_future(coro, loop=qloop)

    yield spawn, run_cpu
    pool.shutdown(wait=True)


def _drag(qtbot, widget, start: QPoint, end: QPoint) -> None:
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(widget, end)
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=end)


def test_pdf_picker_takes_a_crop_a_page_and_an_image(qtbot, tmp_path, worker, run):  # noqa: F811
    spawn, run_cpu = worker
    doc = open_pdf(_paper(tmp_path / "paper.pdf"))
    picker = PdfPicker(doc, spawn=spawn, run_cpu=run_cpu, long_side=lambda: 800)
    qtbot.addWidget(picker)
    picker.show()
    qtbot.waitExposed(picker)

    async def scenario():
        await wait_until(lambda: picker.thumbnails_shown == 2, message="thumbnails")
        await wait_until(lambda: picker.images.count() == 1, message="page 1 shown")
        await wait_until(lambda: not picker.images.item(0).icon().isNull(), message="icon")

    run(scenario())
    assert picker.take_page_button.isEnabled() and not picker.take_crop_button.isEnabled()
    if SHOTS:
        picker.grab().save(os.path.join(SHOTS, "pdf_picker.png"))

    # Drag around the red rectangle: (100, 50)-(300, 150) pt on a 600×400 pt page.
    view = picker.view
    area = view.image_rect()
    k = area.width() / 600

    def at(x, y):
        return QPoint(round(area.left() + x * k), round(area.top() + y * k))

    _drag(qtbot, view, at(110, 60), at(290, 140))
    x0, y0, x1, y1 = view.selection()
    assert x0 == pytest.approx(110, abs=2) and y1 == pytest.approx(140, abs=2)
    assert picker.take_crop_button.isEnabled()
    if SHOTS:
        picker.grab().save(os.path.join(SHOTS, "pdf_picker_selection.png"))
    with qtbot.waitSignal(picker.figuresChosen, timeout=10_000) as sig:
        qtbot.mouseClick(picker.take_crop_button, Qt.MouseButton.LeftButton)
    (crop,) = sig.args[0]
    assert crop.sent_size[0] == 800
    arr = np.asarray(Image.open(io.BytesIO(crop.data)).convert("RGB")).astype(int)
    assert ((arr[..., 0] > 230) & (arr[..., 1] < 25)).mean() > 0.97  # all red

    with qtbot.waitSignal(picker.figuresChosen, timeout=10_000) as sig:
        picker.take_page_button.click()
    assert sig.args[0][0].name == "paper.pdf, page 1" and sig.args[0][0].sent_size == (800, 534)

    picker.images.setCurrentRow(0)
    with qtbot.waitSignal(picker.figuresChosen, timeout=10_000) as sig:
        picker.take_image_button.click()
    assert sig.args[0][0].sent_size == (200, 100)

    picker.pages.setCurrentRow(1)
    run(wait_until(lambda: "No embedded images on page 2" in picker.images_label.text()))
    picker.close()
    run(wait_until(lambda: doc._doc is None, message="document closed on the pool"))


def test_pdf_picker_reports_a_failed_take(qtbot, tmp_path, worker, run):  # noqa: F811
    spawn, run_cpu = worker
    doc = open_pdf(_paper(tmp_path / "paper.pdf"))
    picker = PdfPicker(doc, spawn=spawn, run_cpu=run_cpu, long_side=lambda: 8)
    qtbot.addWidget(picker)
    picker.show()
    with qtbot.waitSignal(picker.failed, timeout=10_000) as sig:
        picker.take_page_button.click()  # long_side 8 is refused by prepare_figure
    assert sig.args[0] is not None and picker.status.text()
    picker.close()
    run(wait_until(lambda: doc._doc is None))


def test_notebook_picker_emits_figure_and_its_cell_source(qtbot, tmp_path, worker, run):  # noqa: F811
    spawn, run_cpu = worker
    path = _write(
        tmp_path / "nb.ipynb",
        [
            _code("plt.plot(x, y)", [_display("image/png", _png((300, 200), (255, 0, 0)))], 1),
            _code("plt.hist(z)", [_display("image/png", _png((200, 300), (0, 0, 255)))], 2),
        ],
    )
    picker = NotebookPicker(load_notebook(path), spawn=spawn, run_cpu=run_cpu)
    qtbot.addWidget(picker)
    picker.show()
    qtbot.waitExposed(picker)
    run(wait_until(lambda: not picker.list.item(1).icon().isNull(), message="thumbnails"))
    picker.list.setCurrentRow(1)
    assert picker.source.toPlainText() == "plt.hist(z)"
    if SHOTS:
        picker.grab().save(os.path.join(SHOTS, "notebook_picker.png"))
    with qtbot.waitSignal(picker.figureChosen) as sig:
        qtbot.mouseClick(picker.take_button, Qt.MouseButton.LeftButton)
    fig, context = sig.args
    assert fig.sent_size == (200, 300)
    assert "plt.hist(z)" in context and "cell 2" in context
    picker.with_context.setChecked(False)
    with qtbot.waitSignal(picker.figureChosen) as sig:
        picker.take_button.click()
    assert sig.args[1] == ""


def test_show_picker_for_wires_pdfs_and_notebooks_to_callbacks(qtbot, tmp_path, worker, run):  # noqa: F811
    from PySide6.QtWidgets import QWidget

    spawn, run_cpu = worker
    window = QWidget()
    qtbot.addWidget(window)
    figures, contexts, errors = [], [], []
    kw = dict(
        parent=window,
        spawn=spawn,
        run_cpu=run_cpu,
        long_side=lambda: 300,
        add_figure=lambda fig, code: (figures.append(fig), code and contexts.append(code)),
        on_error=errors.append,
    )
    assert show_picker_for(object(), **kw) is None

    doc = open_pdf(_paper(tmp_path / "paper.pdf"))
    pdf = show_picker_for(doc, **kw)
    assert isinstance(pdf, PdfPicker) and pdf.isVisible()
    pdf.take_page_button.click()
    run(wait_until(lambda: len(figures) == 1, message="page taken"))
    assert figures[0].sent_size == (300, 200)
    pdf.close()
    run(wait_until(lambda: doc._doc is None, message="document closed"))

    path = _write(
        tmp_path / "nb.ipynb",
        [_code("plt.plot(x)", [_display("image/png", _png((40, 40), "red"))])],
    )
    nb = show_picker_for(load_notebook(path), **kw)
    assert isinstance(nb, NotebookPicker)
    nb.take_button.click()
    assert len(figures) == 2 and "plt.plot(x)" in contexts[0]
    nb.with_context.setChecked(False)
    nb.take_button.click()
    assert len(figures) == 3 and len(contexts) == 1 and errors == []
    nb.close()
