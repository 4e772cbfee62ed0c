"""TableView with tables from where they live: numbers as written, the sheet chooser, the
last column in view, notes in the caption."""

from __future__ import annotations

import openpyxl
from PySide6.QtCore import Qt

from kanoa_desktop.core.inputs.tables import load_table
from kanoa_desktop.ui.table_view import TableView


def test_cells_show_numbers_as_written_and_notes_in_the_caption(qtbot, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,temp\n1,37.00\n2,37.50,extra\n3,38.10\n")
    w = TableView()
    qtbot.addWidget(w)
    w.set_table(load_table(path))
    m = w.model
    assert [m.data(m.index(r, 1)) for r in range(2)] == ["37.00", "38.10"]
    assert "1 row(s) with more fields than the header were skipped (line 3)" in (w.caption.text())
    assert not w.sheet_combo.isVisible()


def test_last_column_reaches_the_right_edge(qtbot, tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("a,b,comment\n1,2,short\n")
    w = TableView()
    qtbot.addWidget(w)
    w.resize(700, 300)
    w.set_table(load_table(path))
    w.show()
    qtbot.waitExposed(w)
    hh = w.view.horizontalHeader()
    last = hh.count() - 1
    right = hh.sectionViewportPosition(last) + hh.sectionSize(last)
    assert right >= w.view.viewport().width() - 1


def test_sheet_chooser_lists_sheets_and_asks_for_the_chosen_one(qtbot, tmp_path):
    wb = openpyxl.Workbook()
    wb.active.title = "First"
    wb.active.append(["x"])
    wb.active.append([1])
    second = wb.create_sheet("Second")
    second.append(["y"])
    second.append([2])
    path = tmp_path / "book.xlsx"
    wb.save(path)
    w = TableView()
    qtbot.addWidget(w)
    w.show()
    w.set_table(load_table(path))
    assert w.sheet_combo.isVisible()
    assert [w.sheet_combo.itemText(i) for i in range(w.sheet_combo.count())] == [
        "First",
        "Second",
    ]
    assert w.sheet_combo.currentText() == "First"
    assert "sheet 'First'" in w.caption.text()
    with qtbot.waitSignal(w.sheetRequested) as sig:
        w.sheet_combo.activated.emit(1)
    assert sig.args == ["Second"]
    # Showing a table programmatically never asks for a sheet.
    with qtbot.assertNotEmitted(w.sheetRequested):
        w.set_table(load_table(path, sheet="Second"))
    assert w.sheet_combo.currentText() == "Second"
    assert w.model.headerData(0, Qt.Orientation.Horizontal) == "y"


def test_a_time_column_is_the_default_x_axis(qtbot, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("site,when,temp\nA,2024-01-01 10:00,20.5\nB,2024-01-01 11:00,21.0\n")
    w = TableView()
    qtbot.addWidget(w)
    w.set_table(load_table(path))
    assert (w.x_combo.currentData(), w.y_combo.currentData()) == ("when", "temp")
    assert w.model.data(w.model.index(1, 1)) == "2024-01-01 11:00:00"
    assert w.model.data(w.model.index(1, 2)) == "21.0"
