"""TableView / DataFrameModel and FigurePreview, offscreen with pytest-qt."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QLabel, QToolButton

from kanoa_desktop.core.inputs.figures import prepare_figure
from kanoa_desktop.core.inputs.tables import load_table
from kanoa_desktop.ui.figure_preview import FigurePreview, caption_for, qt_svg_rasterizer
from kanoa_desktop.ui.table_view import ROW_NUMBER, DataFrameModel, TableView


def _million() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 1_000_000
    return pd.DataFrame({"t": np.arange(n, dtype=float), "v": rng.normal(size=n),
                         "site": np.where(np.arange(n) % 2, "north", "south")})


def test_model_formats_cells_on_demand_for_a_million_rows(qtbot):
    frame = _million()
    frame.loc[5, "v"] = np.nan
    model = DataFrameModel(frame)
    assert model.rowCount() == 1_000_000 and model.columnCount() == 3
    last = model.index(999_999, 0)
    assert model.data(last) == "999999"
    assert model.data(model.index(5, 1)) == ""  # missing shows empty
    assert model.data(model.index(1, 2)) == "north"
    assert model.headerData(1, Qt.Orientation.Horizontal) == "v"
    assert model.headerData(42, Qt.Orientation.Vertical) == "42"
    align = model.data(model.index(0, 1), Qt.ItemDataRole.TextAlignmentRole)
    assert align & int(Qt.AlignmentFlag.AlignRight)
    assert model.rowCount(last) == 0  # a table has no children


def test_table_view_scrolls_to_the_end_of_a_million_rows(qtbot):
    w = TableView()
    qtbot.addWidget(w)
    w.resize(700, 400)
    w.set_table(_million(), name="big.csv")
    w.show()
    qtbot.waitExposed(w)
    w.view.scrollToBottom()
    qtbot.wait(10)
    bottom = w.view.rowAt(w.view.viewport().height() - 2)
    assert bottom > 999_900
    assert "1,000,000 rows × 3 columns" in w.caption.text()


def test_plot_bar_offers_numeric_columns_and_emits_request(qtbot, tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("Zeit;Wert;Ort\n1;1,5;A\n2;2,5;B\n3;0,5;C\n", "utf-8")
    w = TableView()
    qtbot.addWidget(w)
    w.set_table(load_table(path))
    assert "semicolon-separated" in w.caption.text() and "decimal comma" in w.caption.text()
    xs = [w.x_combo.itemText(i) for i in range(w.x_combo.count())]
    ys = [w.y_combo.itemText(i) for i in range(w.y_combo.count())]
    assert xs == [ROW_NUMBER, "Zeit", "Wert"] and ys == ["Zeit", "Wert"]
    assert (w.x_combo.currentText(), w.y_combo.currentText()) == ("Zeit", "Wert")

    w.kind_combo.setCurrentIndex(w.kind_combo.findData("scatter"))
    with qtbot.waitSignal(w.plotRequested) as sig:
        qtbot.mouseClick(w.plot_button, Qt.MouseButton.LeftButton)
    assert sig.args == ["Zeit", "Wert", "scatter"]

    w.x_combo.setCurrentIndex(0)
    w.kind_combo.setCurrentIndex(w.kind_combo.findData("line"))
    with qtbot.waitSignal(w.plotRequested) as sig:
        w.plot_button.click()
    assert sig.args == [None, "Wert", "line"]


def test_plot_button_disabled_without_numeric_columns(qtbot):
    w = TableView()
    qtbot.addWidget(w)
    w.set_table(pd.DataFrame({"name": ["a", "b"]}))
    assert not w.plot_button.isEnabled()
    assert w.plot_button.toolTip()


def _fig(tmp_path, size, name, noisy=False):
    if noisy:
        arr = np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        im = Image.fromarray(arr)
    else:
        im = Image.new("RGB", size, "white")
        im.paste((30, 90, 200), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    path = tmp_path / name
    im.save(path, "PNG")
    return prepare_figure(path)


def test_figure_preview_captions_and_remove_signal(qtbot, tmp_path):
    a = _fig(tmp_path, (2000, 1000), "wide.png")
    b = _fig(tmp_path, (300, 600), "tall.png")
    c = _fig(tmp_path, (1500, 1500), "noise.png", noisy=True)
    w = FigurePreview()
    qtbot.addWidget(w)
    w.set_figures([a, b, c])
    w.show()
    qtbot.waitExposed(w)
    captions = [lbl.text().replace("\n", " ") for lbl in w.findChildren(QLabel, "figureCaption")]
    assert captions[0].startswith("original 2000×1000 → sent 1024×512, ")
    assert captions[0].endswith(" KB PNG")
    assert captions[2].endswith(" KB JPEG")
    assert caption_for(b) == captions[1]

    buttons = w.findChildren(QToolButton, "removeFigureButton")
    names = sorted(btn.accessibleName() for btn in buttons)
    assert names == ["Remove figure noise.png", "Remove figure tall.png",
                     "Remove figure wide.png"]
    tall_button = next(btn for btn in buttons if btn.accessibleName().endswith("tall.png"))
    with qtbot.waitSignal(w.removed) as sig:
        qtbot.mouseClick(tall_button, Qt.MouseButton.LeftButton)
    assert sig.args == [1]
    assert [f.name for f in w.figures()] == ["wide.png", "noise.png"]


def test_a_thumbnail_opens_the_sent_image_large_in_its_own_window(qtbot, tmp_path):
    from kanoa_desktop.ui.figure_preview import THUMB_SIZE, FigureViewer

    fig = _fig(tmp_path, (2000, 1000), "quick plot.png")
    w = FigurePreview()
    qtbot.addWidget(w)
    w.add_figure(fig)
    w.show()
    qtbot.waitExposed(w)
    thumb = w.findChild(QLabel, "figureThumb")
    assert thumb.pixmap().width() <= THUMB_SIZE
    qtbot.mouseClick(thumb, Qt.MouseButton.LeftButton)
    viewer = w.findChild(QToolButton, "enlargeFigureButton").window().findChild(FigureViewer)
    assert viewer is not None and viewer.isVisible() and not viewer.isModal()
    qtbot.waitExposed(viewer)
    shown = viewer.image.pixmap()
    assert shown.width() > 2 * THUMB_SIZE  # readable, not a thumbnail
    assert shown.width() <= fig.sent_size[0]  # never blown up past what is sent
    viewer.resize(viewer.width() // 2, viewer.height())
    qtbot.waitUntil(lambda: viewer.image.pixmap().width() < shown.width())
    # The ⤢ button raises the same window instead of opening a second one.
    qtbot.mouseClick(w.findChild(QToolButton, "enlargeFigureButton"), Qt.MouseButton.LeftButton)
    assert len(w.window().findChildren(FigureViewer)) == 1
    viewer.close()


def test_figure_preview_shows_empty_hint(qtbot, tmp_path):
    w = FigurePreview()
    qtbot.addWidget(w)
    w.show()
    empty = w.findChild(QLabel, "figurePreviewEmpty")
    assert empty.isVisible()
    w.add_figure(_fig(tmp_path, (100, 100), "one.png"))
    assert not empty.isVisible()
    w.clear()
    assert empty.isVisible() and w.count() == 0


def test_qt_svg_rasterizer_is_a_working_fallback(qtbot):
    svg = (b'<svg xmlns="http://www.w3.org/2000/svg" width="300" height="100">'
           b'<rect width="100" height="100" fill="#00ff00"/></svg>')
    fig = prepare_figure(svg, name="qt.svg", long_side=600, svg_rasterizer=qt_svg_rasterizer)
    assert fig.sent_size == (600, 200)
    out = Image.open(io.BytesIO(fig.data)).convert("RGB")
    assert out.getpixel((100, 100)) == (0, 255, 0)
    assert out.getpixel((500, 100)) == (255, 255, 255)


def test_model_index_outside_is_none(qtbot):
    model = DataFrameModel(pd.DataFrame({"a": [1]}))
    assert model.data(QModelIndex()) is None
