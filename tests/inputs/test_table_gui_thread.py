"""Showing a big table costs the GUI thread work for the rows on screen, not for every row,
and the worker's text-column passes are cut into pieces (each holds the GIL).

Structural checks of the causes of the 100 ms stall a dropped 1,000,000-row CSV caused
(issue 18): column fitting that asked the delegate for every measured cell's size hint, a
row header that asked the model for 200 rows' data in every role at each layout, and
isna over a million Python strings in one call on the worker."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView

from kanoa_desktop.core.inputs import tables
from kanoa_desktop.core.inputs.tables import LoadedTable, format_value, load_table
from kanoa_desktop.ui.table_view import FIT_ROWS, MAX_COLUMN_WIDTH, MIN_COLUMN_WIDTH, TableView


def _million() -> pd.DataFrame:
    n = 1_000_000
    return pd.DataFrame({"x": np.arange(n) * 0.5, "site": np.where(np.arange(n) % 3, "a", "bb")})


class _Counting:
    """Counts the model's data() and vertical headerData() calls."""

    def __init__(self, model, monkeypatch):
        self.data_rows: set[int] = set()
        self.header_calls = 0
        data, header = type(model).data, type(model).headerData

        def counted_data(m, index, role=Qt.ItemDataRole.DisplayRole):
            self.data_rows.add(index.row())
            return data(m, index, role)

        def counted_header(m, section, orientation, role=Qt.ItemDataRole.DisplayRole):
            if orientation == Qt.Orientation.Vertical:
                self.header_calls += 1
            return header(m, section, orientation, role)

        monkeypatch.setattr(type(model), "data", counted_data)
        monkeypatch.setattr(type(model), "headerData", counted_header)


def test_fitting_columns_of_a_million_rows_formats_only_the_first_rows(qtbot, monkeypatch):
    view = TableView()
    qtbot.addWidget(view)
    counting = _Counting(view.model, monkeypatch)
    measured: list[int] = []
    texts = type(view.model).column_texts
    monkeypatch.setattr(
        type(view.model),
        "column_texts",
        lambda m, column, rows: measured.append(rows) or texts(m, column, rows),
    )
    view.set_table(_million(), name="big.csv")
    # No cell's size hint was asked for (that is a data() call per role per cell); each
    # column's text was taken for the first FIT_ROWS rows only.
    assert counting.data_rows == set()
    assert measured == [FIT_ROWS, FIT_ROWS]


def test_fitted_widths_are_what_qt_measures_for_the_same_cells(qtbot, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "id,temperature_of_incubator,comment,when\n"
        "1,37.00,a rather long comment here,2024-01-01 10:00\n"
        "2,37.50,x,2024-01-02 11:00\n"
    )
    view = TableView()
    qtbot.addWidget(view)
    view.set_table(load_table(path))
    hh = view.view.horizontalHeader()
    ours = [hh.sectionSize(i) for i in range(hh.count())]
    view.view.resizeColumnsToContents()
    qt = [
        max(MIN_COLUMN_WIDTH, min(MAX_COLUMN_WIDTH, hh.sectionSize(i))) for i in range(hh.count())
    ]
    assert ours == qt


@pytest.mark.parametrize("rows", [3, 250, 1_000_000])
def test_row_header_is_as_wide_as_qt_measures_without_asking_for_200_rows(qtbot, monkeypatch, rows):
    view = TableView()
    qtbot.addWidget(view)
    view.set_table(pd.DataFrame({"a": np.arange(rows)}), name="t.csv")
    vh = view.view.verticalHeader()
    counting = _Counting(view.model, monkeypatch)
    ours = vh.sizeHint()
    assert counting.header_calls <= 4 * 10  # a few rows, each asked in a few roles
    assert ours == QHeaderView.sizeHint(vh)  # Qt's own, over the first and last 100 rows


def test_row_header_of_text_labels_is_as_wide_as_qt_measures(qtbot):
    view = TableView()
    qtbot.addWidget(view)
    frame = pd.DataFrame({"a": [1, 2, 3]}, index=["x", "a long label", "mm"])
    view.set_table(frame, name="t.csv")
    vh = view.view.verticalHeader()
    assert vh.sizeHint() == QHeaderView.sizeHint(vh)
    assert view.model.headerData(1, Qt.Orientation.Vertical) == "a long label"


def test_missing_counts_of_a_text_column_are_taken_in_pieces(monkeypatch):
    n = 1_005
    site = pd.Series(np.where(np.arange(n) % 7, "a", None), dtype="str")
    frame = pd.DataFrame({"x": np.where(np.arange(n) % 5, 1.0, np.nan), "site": site})
    pieces: list[int] = []
    isna = pd.Series.isna

    def spy(series):
        if series.dtype.kind not in "biufcmM":
            pieces.append(len(series))
        return isna(series)

    monkeypatch.setattr(tables, "GIL_ROWS", 100)
    monkeypatch.setattr(pd.Series, "isna", spy)
    counts = tables._missing_counts(frame, 2)
    monkeypatch.setattr(pd.Series, "isna", isna)
    assert counts.equals(frame.isna().sum())
    assert max(pieces) <= 100 and sum(pieces) == n


def test_a_fixed_decimals_formatter_writes_what_format_value_writes():
    values = [1.5, -0.25, 0.0, -0.0, 1e20, 12345.678, math.inf, -math.inf, math.nan]
    frame = pd.DataFrame({"v": values})
    for decimal in (".", ","):
        table = LoadedTable(
            frame=frame, path=Path("t.csv"), delimiter=";", encoding="UTF-8",
            decimal=decimal, formats={0: "fixed:2"},
        )  # fmt: skip
        fmt = table.formatter(0)
        column = frame["v"].to_numpy()
        for value in [*column, *values, None, pd.NA, "text", np.float32(1.5)]:
            assert fmt(value) == format_value(value, "fixed:2", decimal), value


def test_text_cells_are_shown_as_they_are():
    assert format_value("north") == "north"
    assert format_value("") == ""
    assert format_value("NaN") == "NaN"  # a string, not a missing value
