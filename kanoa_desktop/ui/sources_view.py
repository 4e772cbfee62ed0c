"""The sources under an answer: which passages of the knowledge base it used, each
readable here with Open file and Open folder.

Its own module, importing no index or retrieval code, so the window shows it at start-up
without loading the knowledge base (issue 18).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.kb.modes import MODE_NONE, MODE_WHOLE, NO_PASSAGE_NOTICE
from kanoa_desktop.core.safety import plain_tooltip

if TYPE_CHECKING:
    from kanoa_desktop.core.kb.retrieval import Grounding

__all__ = ["SourcesView"]


class SourcesView(QWidget):
    """The sources under an answer: ``[n] file, page or lines``; click one to read its
    passage here, with the file's path, Open file and Open folder.

    ``set_grounding(g)`` shows every passage sent; ``set_grounding(g, answer)`` shows the
    ones the answer cites (all of them if it cites none, marked so). When nothing was
    used it shows :data:`NO_PASSAGE_NOTICE`. Opening goes through ``opener`` (default
    ``QDesktopServices.openUrl``); when no application opens it (no desktop launcher),
    the view says so and offers the path to copy, instead of failing silently.
    Emits ``passageShown(int number)`` and ``opened(str path, bool ok)``.
    ``openRequested`` is kept for old connections and no longer emitted.
    """

    openRequested = Signal(str)
    passageShown = Signal(int)
    opened = Signal(str, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._title = QLabel("Sources")
        self._title.setStyleSheet("font-weight: bold;")
        self._notice = QLabel(NO_PASSAGE_NOTICE)
        self._notice.setWordWrap(True)
        self._notice.setStyleSheet("color: palette(mid); font-style: italic;")
        self.list = QListWidget()
        self.list.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.list.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.list.itemClicked.connect(self._show_passage)
        self.list.itemActivated.connect(self._show_passage)
        self.opener = QDesktopServices.openUrl
        self._passages: dict[int, object] = {}
        self._build_passage_box()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self._title)
        layout.addWidget(self.list)
        layout.addWidget(self._notice)
        layout.addWidget(self.passage_box)
        # Only as its content: it sits under an answer, not beside it.
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.clear()

    def _build_passage_box(self) -> None:
        box = QWidget(objectName="sourcePassageBox")
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 4, 0, 0)
        lay.setSpacing(3)
        self.passage_title = QLabel(objectName="sourcePassageTitle")
        self.passage_title.setStyleSheet("font-weight: bold;")
        self.passage_path = QLabel(objectName="sourcePassagePath")
        self.passage_path.setWordWrap(True)
        self.passage_path.setTextFormat(Qt.TextFormat.PlainText)
        self.passage_path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.passage_text = QPlainTextEdit(objectName="sourcePassageText")
        self.passage_text.setReadOnly(True)
        self.passage_text.setAccessibleName("Passage sent to the model")
        self.passage_text.setFixedHeight(self.fontMetrics().lineSpacing() * 6 + 12)
        self.passage_note = QLabel(objectName="sourceOpenNote")
        self.passage_note.setWordWrap(True)
        self.passage_note.setTextFormat(Qt.TextFormat.PlainText)
        self.passage_note.setStyleSheet("color: #b45309;")
        self.passage_note.hide()
        self.open_file_button = QPushButton("Open file", objectName="sourceOpenFileButton")
        self.open_folder_button = QPushButton("Open folder", objectName="sourceOpenFolderButton")
        self.copy_path_button = QPushButton("Copy path", objectName="sourceCopyPathButton")
        self.hide_passage_button = QPushButton("Hide", objectName="sourceHidePassageButton")
        self.open_file_button.clicked.connect(lambda: self._open_current(folder=False))
        self.open_folder_button.clicked.connect(lambda: self._open_current(folder=True))
        self.copy_path_button.clicked.connect(self._copy_path)
        self.hide_passage_button.clicked.connect(lambda: box.setVisible(False))
        row = QHBoxLayout()
        for b in (self.open_file_button, self.open_folder_button, self.copy_path_button):
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(self.hide_passage_button)
        for w in (self.passage_title, self.passage_path, self.passage_text, self.passage_note):
            lay.addWidget(w)
        lay.addLayout(row)
        box.hide()
        self.passage_box = box
        self._current_path = ""

    def clear(self) -> None:
        self.list.clear()
        self._passages = {}
        self.passage_box.hide()
        self.setVisible(False)

    def set_grounding(self, grounding: Grounding, answer: str | None = None) -> None:
        self.list.clear()
        self._passages = {}
        self.passage_box.hide()
        self.setVisible(True)
        if grounding.mode == MODE_NONE or not grounding.passages:
            self._title.setText("Sources")
            self._notice.setText(grounding.notice or NO_PASSAGE_NOTICE)
            self._notice.setVisible(True)
            self.list.setVisible(False)
            return
        passages = list(grounding.passages)
        title = "Sources"
        if answer is not None:
            cited = grounding.cited(answer)
            if cited:
                passages = cited
                title = "Sources cited"
            else:
                title = "Sources given to the model (none cited)"
        if grounding.mode == MODE_WHOLE:
            title += " — whole knowledge base sent"
        self._title.setText(title)
        self._notice.setVisible(False)
        self.list.setVisible(True)
        for passage in passages:
            item = QListWidgetItem(f"[{passage.number}]  {passage.source.label()}")
            item.setData(Qt.ItemDataRole.UserRole, str(passage.source.path))
            item.setData(Qt.ItemDataRole.UserRole + 1, passage.number)
            self._passages[passage.number] = passage
            snippet = " ".join(passage.text.split())[:300]
            # A passage's words are a file's: literal, never markup (an <img> in a
            # document must not load anything).
            item.setToolTip(plain_tooltip(f"{passage.source.path}\n\n{snippet}"))
            self.list.addItem(item)
        rows = min(len(passages), 6)
        height = self.list.sizeHintForRow(0) * rows + 2 * self.list.frameWidth() + 4
        self.list.setFixedHeight(max(height, 24))

    def _show_passage(self, item: QListWidgetItem) -> None:
        """Show the clicked source's passage, exactly as the model received it."""
        number = item.data(Qt.ItemDataRole.UserRole + 1)
        passage = self._passages.get(number)
        if passage is None:
            return
        self._current_path = str(passage.source.path)
        self.passage_title.setText(f"[{passage.number}]  {passage.source.label()}")
        self.passage_path.setText(self._current_path)
        self.passage_text.setPlainText(passage.text)
        self.passage_note.hide()
        self.passage_box.show()
        self.passageShown.emit(int(number))

    def _open_current(self, *, folder: bool) -> bool:
        """Open the shown passage's file (or its folder); say so when nothing opens it."""
        path = Path(self._current_path)
        target = path.parent if folder else path
        if not target.exists():
            ok = False
            note = f"{target} no longer exists (moved or deleted since it was indexed)."
        else:
            ok = bool(self.opener(QUrl.fromLocalFile(str(target))))
            what = "folders" if folder else "this kind of file"
            note = (
                ""
                if ok
                else f"No application is set up to open {what} here (no desktop launcher "
                f"was found). The file is at {path} — Copy path to use it elsewhere."
            )
        self.passage_note.setText(note)
        self.passage_note.setVisible(not ok)
        self.opened.emit(str(target), ok)
        return ok

    def _copy_path(self) -> None:
        QGuiApplication.clipboard().setText(self._current_path)
        self.passage_note.setText("Path copied.")
        self.passage_note.show()
