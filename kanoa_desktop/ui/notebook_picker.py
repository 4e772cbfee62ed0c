"""Take figures from a Jupyter notebook: its image outputs as thumbnails, the source of
the cell that drew the chosen one beside it.

A non-modal dialog (``show()``, never ``exec()``). The figures are already prepared by
:func:`kanoa_desktop.core.inputs.notebook.load_notebook` on the pool; thumbnails are
scaled down on the pool too (``run_cpu``), so a notebook of a hundred figures never stalls
the window.

``figureChosen(figure, context)``: a PreparedFigure and the context to go with it (the
cell's source as a fenced code block, or "" when "Send the cell's code as context" is off).
The dialog stays open so several can be taken.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFontDatabase, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.inputs.figures import thumbnail_png
from kanoa_desktop.core.inputs.notebook import NotebookFigure, NotebookFigures
from kanoa_desktop.ui.qt_guard import guarded

THUMBNAIL_SIDE = 160


class NotebookPicker(QDialog):
    """The figures of one notebook, each with the code of its cell."""

    figureChosen = Signal(object, str)

    def __init__(
        self,
        notebook: NotebookFigures,
        *,
        spawn: Callable[[Awaitable[Any]], Any],
        run_cpu: Callable[..., Awaitable[Any]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("notebookPicker")
        self.setWindowTitle(f"Figures from {notebook.name}")
        self.setModal(False)
        self.notebook = notebook
        self._spawn = spawn
        self._run_cpu = run_cpu
        self._closed = False

        self.list = QListWidget(self)
        self.list.setObjectName("notebookFigures")
        self.list.setAccessibleName("Figures in the notebook")
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        self.list.setGridSize(QSize(THUMBNAIL_SIDE + 24, THUMBNAIL_SIDE + 44))
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setWordWrap(True)
        for nf in notebook.figures:
            self.list.addItem(QListWidgetItem(self._label(nf)))
        self.list.currentRowChanged.connect(self._chosen)
        self.list.itemDoubleClicked.connect(lambda _item: self.take())

        self.source = QPlainTextEdit(self)
        self.source.setObjectName("notebookCellSource")
        self.source.setAccessibleName("Source of the cell that drew the figure")
        self.source.setReadOnly(True)
        self.source.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.source.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.source_label = QLabel("Cell source:", self)

        self.with_context = QCheckBox("Send the cell's code as context", self)
        self.with_context.setObjectName("notebookWithContext")
        self.with_context.setChecked(True)
        self.take_button = QPushButton("Take figure", self)
        self.take_button.setObjectName("takeNotebookFigureButton")
        self.take_button.clicked.connect(self.take)
        self.status = QLabel(self)
        self.status.setObjectName("notebookPickerStatus")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setText(
            " ".join(
                [f"{len(notebook.figures)} figure(s). Double-click one to take it."]
                + notebook.notes
            )
        )

        right = QWidget(self)
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.source_label)
        rl.addWidget(self.source, 1)
        rl.addWidget(self.with_context)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self.list)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)

        buttons = QHBoxLayout()
        buttons.addWidget(self.take_button)
        buttons.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        buttons.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(900, 600)
        if notebook.figures:
            self.list.setCurrentRow(0)
        self.take_button.setEnabled(bool(notebook.figures))
        self._spawn(self._thumbnails())

    @staticmethod
    def _label(nf: NotebookFigure) -> str:
        run = f" · In [{nf.execution_count}]" if nf.execution_count is not None else ""
        return f"Cell {nf.cell_number}{run}"

    async def _thumbnails(self) -> None:
        for row, nf in enumerate(self.notebook.figures):
            if self._closed:
                return
            try:
                png = await self._run_cpu(thumbnail_png, nf.figure.data, THUMBNAIL_SIDE)
            except Exception:  # noqa: BLE001 - the item keeps its text
                continue
            if self._closed:
                return
            image = QImage()
            image.loadFromData(png, "PNG")
            self.list.item(row).setIcon(QIcon(QPixmap.fromImage(image)))

    def current(self) -> NotebookFigure | None:
        row = self.list.currentRow()
        figures = self.notebook.figures
        return figures[row] if 0 <= row < len(figures) else None

    def _chosen(self, row: int) -> None:
        nf = self.current()
        self.source.setPlainText(nf.cell_source if nf else "")
        if nf is not None:
            w, h = nf.figure.sent_size
            self.source_label.setText(
                f"Cell {nf.cell_number}, output {nf.output_number} ({nf.mime}, {w}×{h}):"
            )

    def take(self) -> None:
        """Emit the chosen figure with (or without) its cell's code as context."""
        nf = self.current()
        if nf is None:
            return
        context = nf.context if self.with_context.isChecked() else ""
        self.figureChosen.emit(nf.figure, context)
        self.status.setText(f"Added the figure of cell {nf.cell_number} to the figures.")

    @guarded()
    def done(self, result: int) -> None:
        self._closed = True
        super().done(result)

    @guarded()
    def closeEvent(self, event) -> None:
        self._closed = True
        super().closeEvent(event)
