"""A table view over a pandas DataFrame that stays fast with a million rows, plus a quick-plot bar.

The model builds nothing per cell ahead of time: it keeps one NumPy array per column
(taken once, when the frame is set) and formats a cell only when the view asks for it,
which is only for the rows on screen. Rows have a fixed height so the view never measures
them.

Cells show numbers as the file wrote them (37.00 stays 37.00, a decimal comma stays a
comma) and dates without a spurious time: the model asks
:meth:`kanoa_desktop.core.inputs.tables.LoadedTable.formatter` for each column.

The plot bar does not plot: it emits :attr:`TableView.plotRequested` with the chosen
columns and kind, and the window runs :func:`kanoa_desktop.core.inputs.tables.quick_plot` on a
thread pool. Likewise the sheet chooser (Excel workbooks with several sheets) emits
:attr:`TableView.sheetRequested` and the window loads that sheet on the pool.

pandas and numpy are imported when a table is shown, not when this module is imported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStyle,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.inputs.tables import LoadedTable, format_value
from kanoa_desktop.ui.qt_guard import guarded, mark_guarded, report

if TYPE_CHECKING:
    import pandas as pd

ROW_NUMBER = "(row number)"
PLOT_KINDS = (("Line", "line"), ("Scatter", "scatter"), ("Histogram", "hist"))
# Columns are sized to their header and first rows, within these bounds (pixels).
MIN_COLUMN_WIDTH = 60
MAX_COLUMN_WIDTH = 320
FIT_ROWS = 50  # rows measured to size a column
_Index = QModelIndex | QPersistentModelIndex


class DataFrameModel(QAbstractTableModel):
    """Read-only Qt model over a DataFrame. Cells are formatted on demand (DisplayRole)
    by one formatter per column; numbers are right-aligned; missing values show empty.
    The frame is not copied."""

    def __init__(self, frame: pd.DataFrame | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._frame = None
        self._columns: list = []
        self._numeric: list[bool] = []
        self._labels: list[str] = []
        self._index: list | object = []
        self._formatters: list[Callable[[object], str]] = []
        if frame is not None:
            self.set_frame(frame)

    def frame(self) -> pd.DataFrame | None:
        return self._frame

    def set_table(self, table: LoadedTable) -> None:
        """Show a loaded table, each column formatted as its file wrote it."""
        self.set_frame(table.frame, [table.formatter(i) for i in range(table.frame.shape[1])])

    def set_frame(
        self,
        frame: pd.DataFrame,
        formatters: list[Callable[[object], str]] | None = None,
    ) -> None:
        """Show another frame (resets the view). ``formatters`` give each column's cell
        text (default: numbers in their shortest exact form, see ``format_value``)."""
        import pandas as pd

        self.beginResetModel()
        self._frame = frame
        self._formatters = formatters or [format_value] * frame.shape[1]
        # One array per column, taken once: data() then costs an array index, not a
        # DataFrame lookup (iat is ~100x slower per call).
        self._columns = [frame.iloc[:, i].to_numpy() for i in range(frame.shape[1])]
        self._numeric = [
            pd.api.types.is_numeric_dtype(frame.dtypes.iloc[i])
            and not pd.api.types.is_bool_dtype(frame.dtypes.iloc[i])
            for i in range(frame.shape[1])
        ]
        self._labels = [str(c) for c in frame.columns]
        # The default 0..n-1 index stays a range: no array of a million labels to build.
        index = frame.index
        if isinstance(index, pd.RangeIndex):
            self._index = range(index.start, index.stop, index.step)
        else:
            self._index = index.to_numpy()
        self.endResetModel()

    # The overrides below never let an exception reach Qt (see ui/qt_guard.py: with
    # shiboken 6.11 on Python 3.11 an IndexError escaping an override is a segfault). They
    # catch inline: data() runs thousands of times per paint, a wrapper's call would cost.
    # They also answer for any row and column Qt asks about, in range or not: Qt's views
    # ask for the sections *they* know, and while a reset goes round the headers one has
    # the new count and the other the old.

    @mark_guarded
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self._index)

    @mark_guarded
    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self._columns)

    @mark_guarded
    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        # Called thousands of times when columns are fitted (every role, for the first
        # rows): compare plain ints, not Qt enums, which cost a Python enum call each.
        try:
            role = role if type(role) is int else role.value
            if role in _TEXT_ROLES:
                if not index.isValid():
                    return None
                return self.cell_text(index.row(), index.column())
            if role == _ALIGNMENT_ROLE and index.isValid():
                col = index.column()
                if 0 <= col < len(self._numeric):
                    return _RIGHT if self._numeric[col] else _LEFT
            return None
        except Exception as exc:  # noqa: BLE001 - see the comment above rowCount
            report("DataFrameModel.data", exc)
            return None

    @mark_guarded
    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        try:
            if (role if type(role) is int else role.value) != _DISPLAY_ROLE:
                return None
            if orientation == Qt.Orientation.Horizontal:
                return self._labels[section] if 0 <= section < len(self._labels) else None
            return self.row_label(section) if 0 <= section < len(self._index) else None
        except Exception as exc:  # noqa: BLE001 - see the comment above rowCount
            report("DataFrameModel.headerData", exc)
            return None

    def cell_text(self, row: int, column: int) -> str | None:
        """The text of a cell as the view shows it; None outside the table. A value its
        column's formatter cannot format shows as ``str(value)`` (and is logged once)."""
        if not (0 <= column < len(self._columns) and 0 <= row < len(self._index)):
            return None
        value = self._columns[column][row]
        try:
            return self._formatters[column](value)
        except Exception as exc:  # noqa: BLE001 - one odd cell must not blank the table
            report("DataFrameModel cell formatter", exc)
            return _plain_text(value)

    def row_label(self, row: int) -> str:
        """The row header's text for ``row`` (empty outside the table)."""
        if not 0 <= row < len(self._index):
            return ""
        label = self._index[row]
        if type(label) is int:
            return str(label)
        try:
            return format_value(label)
        except Exception as exc:  # noqa: BLE001 - an odd label must not break the header
            report("DataFrameModel.row_label", exc)
            return _plain_text(label)

    def column_texts(self, column: int, rows: int) -> list[str]:
        """The text of the first ``rows`` cells of ``column``, as the view shows them."""
        if not 0 <= column < len(self._columns):
            return []
        n = min(rows, len(self._index))
        return [self.cell_text(r, column) or "" for r in range(n)]


def _plain_text(value: object) -> str:
    """``str(value)`` for a cell no formatter could read, on one line and bounded."""
    try:
        text = str(value)
    except Exception:  # noqa: BLE001 - a value whose __str__ fails
        return f"<{type(value).__name__}>"
    return " ".join(text.split())[:200]


_DISPLAY_ROLE = Qt.ItemDataRole.DisplayRole.value
_TEXT_ROLES = frozenset({Qt.ItemDataRole.DisplayRole.value, Qt.ItemDataRole.ToolTipRole.value})
_ALIGNMENT_ROLE = Qt.ItemDataRole.TextAlignmentRole.value
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
_LEFT = int((Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter).value)


class RowHeader(QHeaderView):
    """The row-number header, as wide as its widest label.

    Qt's own sizeHint measures the first and last 100 rows, asking the model for each
    one's data in several roles: ~900 calls through Python, made again after every reset,
    show and style change, so ~30 ms on the GUI thread when a table is shown. This one
    measures only the labels with the most characters among those rows: for row numbers
    (digits are one width) that is Qt's width; for text labels, close to it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Vertical, parent)

    @guarded(fallback=lambda self: QHeaderView.sizeHint(self))
    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        model = self.model()
        if not isinstance(model, DataFrameModel) or self.hiddenSectionCount():
            return super().sizeHint()
        # The rows both the header and the model know: while the model resets, the
        # horizontal header's reset runs first and its new column count makes the table
        # view ask this header's size, while this header still counts the old rows (the
        # segfault of issue 25: 100,000 rows here, 30 in the model).
        n = min(self.count(), model.rowCount())
        if n == 0:
            return super().sizeHint()
        rows = sorted(set(range(min(n, 100))) | set(range(max(0, n - 100), n)))
        lengths = {row: len(model.row_label(row)) for row in rows}
        longest = max(lengths.values())
        widest = [row for row in rows if lengths[row] == longest][:3]
        hint = QSize(0, 0)
        for row in widest + [rows[0]]:  # the first row for the height, as Qt's
            hint = hint.expandedTo(self.sectionSizeFromContents(row))
        return hint


class TableView(QWidget):
    """A loaded table: a caption (name, shape, notes), the cells, and a quick-plot bar.

    ``plotRequested(x, y, kind)``: x is a column name or None for the row number, y a
    column name (None for a histogram of x), kind "line" | "scatter" | "hist".
    """

    plotRequested = Signal(object, object, str)
    sheetRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tableView")
        self.setAccessibleName("Table")
        self.model = DataFrameModel(parent=self)

        self.caption = QLabel(self)
        self.caption.setObjectName("tableCaption")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.TextFormat.PlainText)
        # A long file name is one unbreakable word: let it be cut rather than widen the window.
        self.caption.setMinimumWidth(1)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.view = QTableView(self)
        self.view.setObjectName("tableCells")
        self.view.setAccessibleName("Table cells")
        self.view.setModel(self.model)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.setCornerButtonEnabled(False)
        vh = RowHeader(self.view)
        self.view.setVerticalHeader(vh)
        # Fixed row heights: the view computes positions arithmetically instead of sizing
        # each of a million rows.
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(self.fontMetrics().height() + 6)
        # A text index with a long label must not push every cell out of sight (the
        # table view never makes the header wider than this; longer labels are elided).
        vh.setMaximumWidth(MAX_COLUMN_WIDTH)
        hh = self.view.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setDefaultSectionSize(110)
        # The last column takes the space left, so it is never cut off at the right edge;
        # column widths are measured on the first rows only (a million rows stay fast).
        hh.setStretchLastSection(True)
        hh.setResizeContentsPrecision(FIT_ROWS)  # a double-click on a divider fits these

        self.sheet_label = QLabel("Sheet:", self)
        self.sheet_combo = QComboBox(self)
        self.sheet_combo.setObjectName("sheetCombo")
        self.sheet_combo.setAccessibleName("Workbook sheet")
        self.sheet_combo.setToolTip("Show another sheet of this workbook")
        self.sheet_label.setBuddy(self.sheet_combo)
        # activated, not currentIndexChanged: only a choice by the user loads a sheet.
        self.sheet_combo.activated.connect(self._emit_sheet)

        self.x_combo = QComboBox(self)
        self.x_combo.setObjectName("plotXCombo")
        self.x_combo.setAccessibleName("Plot x column")
        self.y_combo = QComboBox(self)
        self.y_combo.setObjectName("plotYCombo")
        self.y_combo.setAccessibleName("Plot y column")
        self.kind_combo = QComboBox(self)
        self.kind_combo.setObjectName("plotKindCombo")
        self.kind_combo.setAccessibleName("Plot kind")
        for label, kind in PLOT_KINDS:
            self.kind_combo.addItem(label, kind)
        self.plot_button = QPushButton("Plot", self)
        self.plot_button.setObjectName("plotButton")
        self.plot_button.setAccessibleName("Plot the chosen columns")
        self.plot_button.clicked.connect(self._emit_plot)
        self.kind_combo.currentIndexChanged.connect(self._update_enabled)
        # Long column names must not widen the window: by default a combo's minimum width
        # is its longest item, which grew the window to 1,386 px when a CSV loaded. The
        # popup still shows the full names.
        for combo in (self.x_combo, self.y_combo):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(6)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        for text, combo in (("x:", self.x_combo), ("y:", self.y_combo)):
            label = QLabel(text, self)
            label.setBuddy(combo)
            bar.addWidget(label)
            bar.addWidget(combo, 1)
        bar.addWidget(self.kind_combo)
        bar.addWidget(self.plot_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.caption, 1)
        top.addWidget(self.sheet_label)
        top.addWidget(self.sheet_combo)
        self._show_sheets(None)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addLayout(bar)
        self._update_enabled()

    def set_table(self, table: LoadedTable | pd.DataFrame, name: str | None = None) -> None:
        """Show a table and offer its numeric (and datetime, for x) columns for plotting.

        The caption names the file, its shape, how it was read and every note (skipped
        rows, fallbacks); a workbook with several sheets shows the sheet chooser."""
        import pandas as pd

        frame = table.frame if isinstance(table, LoadedTable) else table
        if isinstance(table, LoadedTable):
            name = name or table.path.name  # the sheet is named in source_label
            parts = [
                f"{name}: {len(frame):,} rows × {frame.shape[1]:,} columns ({table.source_label})."
            ]
            # The decimal-comma note is already said in the parenthesis.
            parts += [n for n in table.notes if "decimal separator" not in n]
            self.model.set_table(table)
            self._show_sheets(table)
        else:
            parts = [
                f"{name + ': ' if name else ''}{len(frame):,} rows × {frame.shape[1]:,} columns."
            ]
            self.model.set_frame(frame)
            self._show_sheets(None)
        self.caption.setText(" ".join(parts))
        self._fit_columns()

        # By position: with duplicate column labels frame[c] is a frame, not a column.
        dtypes = list(zip(frame.columns, frame.dtypes, strict=True))
        numeric = [str(c) for c, dtype in dtypes if pd.api.types.is_numeric_dtype(dtype)]
        xs = [
            str(c)
            for c, dtype in dtypes
            if str(c) in numeric or pd.api.types.is_datetime64_any_dtype(dtype)
        ]
        self.x_combo.clear()
        self.x_combo.addItem(ROW_NUMBER, None)
        for c in xs:
            self.x_combo.addItem(c, c)
        self.y_combo.clear()
        for c in numeric:
            self.y_combo.addItem(c, c)
        # A sensible first choice: a time column against the first numeric one, else the
        # first numeric column against the next one.
        dates = [c for c in xs if c not in numeric]
        if dates and numeric:
            self.x_combo.setCurrentIndex(xs.index(dates[0]) + 1)
        elif len(numeric) >= 2 and numeric[0] in xs:
            self.x_combo.setCurrentIndex(xs.index(numeric[0]) + 1)
            self.y_combo.setCurrentIndex(1)
        self._update_enabled()

    def _fit_columns(self) -> None:
        """Each column as wide as its header and its first FIT_ROWS cells, within bounds.

        Measured on the cells' text, as QTableView.resizeColumnsToContents would size them
        (text, the item's margins, the grid line) but without asking the delegate for each
        cell's size hint: that is eight data() calls through Python per cell, ~25 ms on
        the GUI thread for a 10-column table."""
        hh = self.view.horizontalHeader()
        metrics = QFontMetricsF(self.view.font())  # fractional, ceiled: as the delegate
        style = self.view.style()
        margin = 2 * (
            style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, self.view) + 1
        )
        margin += 1 if self.view.showGrid() else 0
        for j in range(self.model.columnCount()):
            texts = self.model.column_texts(j, FIT_ROWS)
            advance = max((metrics.horizontalAdvance(t) for t in texts), default=0.0)
            content = math.ceil(advance) + margin
            width = max(content, hh.sectionSizeHint(j))
            hh.resizeSection(j, max(MIN_COLUMN_WIDTH, min(MAX_COLUMN_WIDTH, width)))

    def _show_sheets(self, table: LoadedTable | None) -> None:
        sheets = table.sheets if table is not None and table.kind == "excel" else ()
        self.sheet_combo.blockSignals(True)
        self.sheet_combo.clear()
        self.sheet_combo.addItems(list(sheets))
        if table is not None and table.sheet in sheets:
            self.sheet_combo.setCurrentIndex(sheets.index(table.sheet))
        self.sheet_combo.blockSignals(False)
        several = len(sheets) > 1
        self.sheet_label.setVisible(several)
        self.sheet_combo.setVisible(several)

    def _emit_sheet(self, index: int) -> None:
        self.sheetRequested.emit(self.sheet_combo.itemText(index))

    def _update_enabled(self) -> None:
        has_y = self.y_combo.count() > 0
        self.plot_button.setEnabled(has_y)
        self.plot_button.setToolTip("" if has_y else "This table has no numeric column to plot.")

    def _emit_plot(self) -> None:
        kind = self.kind_combo.currentData()
        x = self.x_combo.currentData()
        y = self.y_combo.currentData()
        if kind == "hist":
            x = None  # a histogram shows the distribution of the y column
        self.plotRequested.emit(x, y, kind)
