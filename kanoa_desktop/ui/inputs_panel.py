"""The left side of the window: what the question is about, and the question.

Figures and a table are shown as the core prepared them; the text fields hold kanoa's
``context`` and ``focus``, the question, and an editable system prompt.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.ask.prompts import DEFAULT_SYSTEM_PROMPT
from kanoa_desktop.ui.figure_preview import FigurePreview


class DropHint(QFrame):
    """The empty state: a large target that says what can be dropped."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("figureDrop")
        self.setAccessibleName("Drop figures or a table here")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(
            "#figureDrop { border: 2px dashed palette(mid); border-radius: 8px; }"
            '#figureDrop[dragging="true"] { border-color: palette(highlight); }'
        )
        lay = QVBoxLayout(self)
        self.label = QLabel(
            "<b>Drop a figure or a CSV here</b><br>"
            "PNG, JPEG, GIF, BMP, TIFF, WebP, SVG · CSV, TSV<br>"
            "or paste with Ctrl+V, or open with Ctrl+O"
        )
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setWordWrap(True)
        self.open_button = QPushButton("Open…")
        self.open_button.setObjectName("openButton")
        self.open_button.setAccessibleName("Open a figure or a table")
        lay.addStretch(1)
        lay.addWidget(self.label)
        lay.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addStretch(1)
        self.setMinimumHeight(150)

    def set_dragging(self, on: bool) -> None:
        self.setProperty("dragging", "true" if on else "false")
        self.style().unpolish(self)
        self.style().polish(self)


class InputsPanel(QWidget):
    """Drop area, figures, table, context, focus, question and system prompt.

    The table view is made when a table first arrives (:attr:`table`): until then its
    code, pandas' formatting helpers included, is not loaded (issue 18: the window shows
    sooner). Its requests come out as this panel's ``plotRequested`` and
    ``sheetRequested``."""

    interpretRequested = Signal()
    plotRequested = Signal(object, object, str)
    sheetRequested = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.drop = DropHint()
        self.figures = FigurePreview()
        self.figures.setObjectName("figurePreview")
        self._table = None  # the TableView, made by the first table
        self._has_table = False
        self.loading = QLabel()
        self.loading.setObjectName("loadingLabel")
        self.loading.hide()
        lay.addWidget(self.drop, 2)
        lay.addWidget(self.figures, 0)
        lay.addWidget(self.loading)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.context = QPlainTextEdit()
        self.context.setObjectName("contextEdit")
        self.context.setAccessibleName("Context")
        self.context.setPlaceholderText("What the figure or data is about (kanoa's context)")
        self.context.setTabChangesFocus(True)
        self.context.setFixedHeight(self.fontMetrics().lineSpacing() * 3 + 12)
        self.focus = QLineEdit()
        self.focus.setObjectName("focusEdit")
        self.focus.setAccessibleName("Focus")
        self.focus.setPlaceholderText("What to look at, e.g. the trend after 2010")
        self.question = QPlainTextEdit()
        self.question.setObjectName("questionEdit")
        self.question.setAccessibleName("Question")
        self.question.setPlaceholderText("Question or follow-up (empty: interpret)  · Ctrl+Enter")
        self.question.setTabChangesFocus(True)
        self.question.setFixedHeight(self.fontMetrics().lineSpacing() * 3 + 12)
        form.addRow("Context", self.context)
        form.addRow("Focus", self.focus)
        form.addRow("Question", self.question)
        lay.addLayout(form)

        # A disclosure button, not a group box: collapsed, it takes one line and no frame.
        self.system_toggle = QToolButton()
        self.system_toggle.setObjectName("systemPromptToggle")
        self.system_toggle.setText("System prompt")
        self.system_toggle.setAccessibleName("Show the system prompt")
        self.system_toggle.setCheckable(True)
        self.system_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.system_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.system_toggle.setAutoRaise(True)
        self.system_box = QWidget()
        self.system_box.setObjectName("systemPromptBox")
        box = QVBoxLayout(self.system_box)
        box.setContentsMargins(0, 0, 0, 0)
        self.system_prompt = QPlainTextEdit(DEFAULT_SYSTEM_PROMPT)
        self.system_prompt.setObjectName("systemPromptEdit")
        self.system_prompt.setAccessibleName("System prompt")
        self.system_prompt.setTabChangesFocus(True)
        self.reset_prompt = QPushButton("Restore default")
        self.reset_prompt.setObjectName("restoreSystemPromptButton")
        self.reset_prompt.clicked.connect(
            lambda: self.system_prompt.setPlainText(DEFAULT_SYSTEM_PROMPT)
        )
        box.addWidget(self.system_prompt)
        box.addWidget(self.reset_prompt, 0, Qt.AlignmentFlag.AlignRight)
        self.system_toggle.toggled.connect(self._show_system_prompt)
        lay.addWidget(self.system_toggle)
        lay.addWidget(self.system_box)
        # Takes the spare height when nothing above stretches (figures only), so the
        # fields sit right under the figures instead of at the bottom.
        self._spacer = QWidget()
        self._spacer.setObjectName("inputsSpacer")
        lay.addWidget(self._spacer, 1)
        self._show_system_prompt(False)

        # Ctrl+Enter is bound once, by the window's Interpret action (a window shortcut):
        # binding it here too made Qt call it ambiguous and do nothing in these fields.
        self.refresh()

    def _show_system_prompt(self, on: bool) -> None:
        self.system_box.setVisible(on)
        self.system_toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        if hasattr(self, "_spacer"):
            self.refresh()

    @property
    def table(self):
        """The table view (made on first use, under the figures)."""
        if self._table is None:
            from kanoa_desktop.ui.table_view import TableView

            view = self._table = TableView()
            view.plotRequested.connect(self.plotRequested)
            view.sheetRequested.connect(self.sheetRequested)
            view.setVisible(self._has_table)
            lay = self.layout()
            lay.insertWidget(lay.indexOf(self.figures) + 1, view, 3)
        return self._table

    def show_outbox(self, outbox) -> None:
        """Show what a conversation sends (a :class:`~kanoa_desktop.core.ask.outbox.Outbox`):
        its figures, each saying whether it was sent, its context and focus, its table."""
        self.figures.set_figures(outbox.figures)
        self.figures.show_sent(outbox.sent_with)
        self.context.setPlainText(outbox.context)
        self.focus.setText(outbox.focus)
        if outbox.table is not None:
            self.table.set_table(outbox.table)
        self.set_has_table(outbox.table is not None)

    def set_has_table(self, on: bool) -> None:
        """A table is shown (True) or none is (False: the drop area may come back)."""
        self._has_table = bool(on)
        self.refresh()

    def refresh(self) -> None:
        has_figs = self.figures.count() > 0
        has_table = self._has_table
        self.figures.setVisible(has_figs)
        if self._table is not None:
            self._table.setVisible(has_table)
        self.drop.setVisible(not has_figs and not has_table)
        self._spacer.setVisible(not has_table and has_figs and not self.system_toggle.isChecked())
