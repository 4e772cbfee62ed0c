"""The history panel (for a dock): search, filter by model, reopen, rename, delete with undo,
delete all, export.

It renders :class:`~kanoa_desktop.core.history.store.HistoryStore` and never runs a nested event
loop: confirmation is an inline bar and the file dialog is opened with ``open()``, so qasync
keeps running. Exports run on a worker thread and report back through a signal.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.endpoint.errors import KanoaError

if TYPE_CHECKING:  # the store loads after the window's first paint (issue 18)
    from kanoa_desktop.core.history.store import ConversationSummary, HistoryStore
from kanoa_desktop.core.safety import plain_tooltip
from kanoa_desktop.ui.qt_guard import guarded

SEARCH_DELAY_MS = 250  # search after typing pauses, not per key
UNDO_TIMEOUT_MS = 15_000  # how long a delete can be undone before it is purged
ID_ROLE = Qt.ItemDataRole.UserRole
FORMAT_LABELS = {"markdown": "Markdown", "html": "HTML", "pdf": "PDF"}
FORMAT_FILTERS = {
    "markdown": "Markdown (*.md)",
    "html": "Web page, self-contained (*.html)",
    "pdf": "PDF (*.pdf)",
}


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


class HistoryPanel(QWidget):
    """Lists conversations newest first. ``reopenRequested(id)`` asks the window to
    restore one (double-click or Reopen). Call :meth:`refresh` after recording a turn."""

    reopenRequested = Signal(int)
    exportFinished = Signal(str)  # the path written
    exportFailed = Signal(str)  # a plain message
    _exportDone = Signal(object, object)  # (path | None, error | None) from the worker

    def __init__(self, store: HistoryStore | None, parent: QWidget | None = None) -> None:
        """``store`` may come later (:meth:`set_store`): the window builds the panel with
        its first frame, so the dock has its final width, and opens the store after."""
        super().__init__(parent)
        self.setObjectName("historyPanel")
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kanoa-export")
        self._deleted: list[int] = []
        self._filling = False
        self.export_dialog: QFileDialog | None = None
        self._build()
        self._exportDone.connect(self._export_done)
        self.refresh()

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)

        self.notice = QLabel()
        self.notice.setObjectName("historyNotice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        lay.addWidget(self.notice)

        row = QHBoxLayout()
        self.search = QLineEdit()
        self.search.setObjectName("historySearch")
        self.search.setPlaceholderText("Search questions and answers")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search history")
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self.search.returnPressed.connect(self.refresh)
        self.model_filter = QComboBox()
        self.model_filter.setObjectName("historyModelFilter")
        self.model_filter.setAccessibleName("Filter by model")
        self.model_filter.currentIndexChanged.connect(lambda _i: self._filling or self.refresh())
        row.addWidget(self.search, 2)
        row.addWidget(self.model_filter, 1)
        lay.addLayout(row)

        self.list = QTreeWidget()
        self.list.setObjectName("historyList")
        self.list.setHeaderLabels(["Title", "Model", "Date"])
        self.list.setRootIsDecorated(False)
        self.list.setUniformRowHeights(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(
            QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        header = self.list.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        self.list.itemDoubleClicked.connect(lambda item, _c: self._reopen_item(item))
        self.list.itemChanged.connect(self._item_renamed)
        self.list.itemSelectionChanged.connect(self._update_actions)
        lay.addWidget(self.list, 1)

        self.empty_label = QLabel()
        self.empty_label.setObjectName("historyEmpty")
        self.empty_label.setWordWrap(True)
        self.empty_label.hide()
        lay.addWidget(self.empty_label)

        buttons = QHBoxLayout()
        self.reopen_button = QPushButton("Reopen")
        self.reopen_button.setObjectName("historyReopen")
        self.reopen_button.clicked.connect(lambda: self._reopen_item(self.list.currentItem()))
        self.rename_button = QPushButton("Rename")
        self.rename_button.setObjectName("historyRename")
        self.rename_button.clicked.connect(self.rename_current)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setObjectName("historyDelete")
        self.delete_button.clicked.connect(self.delete_current)
        self.export_button = QToolButton()
        self.export_button.setObjectName("historyExport")
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        self.export_actions = {}
        for fmt, label in FORMAT_LABELS.items():
            act = menu.addAction(f"{label}…")
            act.setObjectName(f"historyExport{label}")
            act.triggered.connect(lambda _c=False, f=fmt: self.export_current(f))
            self.export_actions[fmt] = act
        self.export_button.setMenu(menu)
        self.delete_all_button = QPushButton("Delete all…")
        self.delete_all_button.setObjectName("historyDeleteAll")
        self.delete_all_button.clicked.connect(self.ask_delete_all)
        for b in (self.reopen_button, self.rename_button, self.delete_button, self.export_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.delete_all_button)
        lay.addLayout(buttons)

        # Inline bars instead of modal dialogs: nothing here runs a nested event loop.
        self.confirm_bar, self.confirm_label, self.confirm_button, cancel = self._bar(
            "historyConfirmBar", "Delete all", "Cancel"
        )
        self.confirm_button.clicked.connect(self.delete_all)
        cancel.clicked.connect(self.confirm_bar.hide)
        lay.addWidget(self.confirm_bar)
        self.undo_bar, self.undo_label, self.undo_button, dismiss = self._bar(
            "historyUndoBar", "Undo", "Dismiss"
        )
        self.undo_button.clicked.connect(self.undo)
        dismiss.clicked.connect(self.purge)
        lay.addWidget(self.undo_bar)
        self._undo_timer = QTimer(self)
        self._undo_timer.setSingleShot(True)
        self._undo_timer.setInterval(UNDO_TIMEOUT_MS)
        self._undo_timer.timeout.connect(self.purge)

        self.status = QLabel()
        self.status.setObjectName("historyStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)

    def _bar(self, name: str, ok: str, cancel: str):
        bar = QFrame()
        bar.setObjectName(name)
        bar.setFrameShape(QFrame.Shape.StyledPanel)
        row = QHBoxLayout(bar)
        row.setContentsMargins(6, 3, 6, 3)
        label = QLabel()
        label.setWordWrap(True)
        ok_button = QPushButton(ok)
        cancel_button = QPushButton(cancel)
        row.addWidget(label, 1)
        row.addWidget(ok_button)
        row.addWidget(cancel_button)
        bar.hide()
        return bar, label, ok_button, cancel_button

    # ------------------------------------------------------------------ listing

    @property
    def model(self) -> str | None:
        """The model filter, None for all models."""
        return self.model_filter.currentData()

    def set_store(self, store: HistoryStore) -> None:
        self.store = store
        self.refresh()

    def refresh(self) -> None:
        """Reload the model filter and the list from the store, keeping the selection."""
        if self.store is None:
            return
        self._search_timer.stop()
        current = self.current_id()
        self._filling = True
        try:
            chosen = self.model
            self.model_filter.clear()
            self.model_filter.addItem("All models", None)
            for m in self.store.models():
                self.model_filter.addItem(m, m)
            idx = self.model_filter.findData(chosen) if chosen else 0
            self.model_filter.setCurrentIndex(max(idx, 0))
            rows = self.store.list_conversations(
                search=self.search.text() or None, model=self.model
            )
            self.list.clear()
            from PySide6.QtWidgets import QStyle  # its enums: 566 members, not at start-up

            warn = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
            for conv in rows:
                item = self._item(conv, warn)
                self.list.addTopLevelItem(item)
                if conv.id == current:
                    self.list.setCurrentItem(item)
        finally:
            self._filling = False
        self._update_notice()
        if not rows:
            self.empty_label.setText(
                "No conversation matches. Clear the search or the model filter."
                if self.search.text() or self.model
                else "No conversations yet. Each question you ask is kept here."
            )
        self.empty_label.setVisible(not rows)
        self._update_actions()

    def _item(self, conv: ConversationSummary, warn_icon) -> QTreeWidgetItem:
        item = QTreeWidgetItem([conv.title, conv.model or "-", _when(conv.updated)])
        item.setData(0, ID_ROLE, conv.id)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        turns = f"{conv.n_turns} question{'s' if conv.n_turns != 1 else ''}"
        tip = f"{conv.title}\n{conv.model or 'model unknown'} · {turns} · {_when(conv.created)}"
        if conv.interrupted:
            item.setIcon(0, warn_icon)
            tip += "\nAn answer was interrupted (the app stopped while it streamed)."
            item.setData(0, Qt.ItemDataRole.AccessibleDescriptionRole, "interrupted")
        elif conv.last_state in ("error", "stopped") or conv.last_finish_reason == "length":
            tip += f"\nLast answer: {conv.last_ending}."
        item.setToolTip(0, plain_tooltip(tip))  # titles and model names are literal text
        return item

    def _update_notice(self) -> None:
        bits = []
        if self.store.problem is not None:
            bits.append(self.store.problem.message)
        n = self.store.interrupted_on_open
        if n:
            bits.append(
                f"{n} answer{' was' if n == 1 else 's were'} interrupted when kanoa desktop "
                "stopped; the text received until then is kept and marked ⚠."
            )
        self.notice.setText("\n".join(bits))
        self.notice.setVisible(bool(bits))

    def _update_actions(self) -> None:
        has = self.list.currentItem() is not None
        for w in (self.reopen_button, self.rename_button, self.delete_button, self.export_button):
            w.setEnabled(has)
        self.delete_all_button.setEnabled(self.list.topLevelItemCount() > 0)

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        return int(item.data(0, ID_ROLE)) if item is not None else None

    def select(self, conversation_id: int) -> bool:
        """Select a conversation's row; False when it is not listed."""
        for i in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(i)
            if item.data(0, ID_ROLE) == conversation_id:
                self.list.setCurrentItem(item)
                return True
        return False

    # ------------------------------------------------------------------ actions

    def _reopen_item(self, item: QTreeWidgetItem | None) -> None:
        if item is not None:
            self.reopenRequested.emit(int(item.data(0, ID_ROLE)))

    def rename_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.list.editItem(item, 0)

    def _item_renamed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._filling or column != 0:
            return
        cid = int(item.data(0, ID_ROLE))
        if not self.store.rename(cid, item.text(0)):
            self.status.setText("A title cannot be empty; the old one is kept.")
        self.refresh()

    def delete_current(self) -> None:
        cid = self.current_id()
        if cid is None:
            return
        title = self.list.currentItem().text(0)
        self.purge()  # an earlier delete can no longer be undone once another starts
        if self.store.delete(cid):
            self._offer_undo([cid], f"Deleted “{title}”.")

    def ask_delete_all(self) -> None:
        n = self.list.topLevelItemCount()
        filtered = bool(self.search.text() or self.model)
        self.confirm_label.setText(
            f"Delete all conversations{' (not only those listed)' if filtered else ''}? "
            f"{n if not filtered else 'Every one'} will be removed; you can undo right after."
        )
        self.confirm_bar.show()
        self.confirm_button.setFocus()

    def delete_all(self) -> None:
        self.confirm_bar.hide()
        self.purge()
        ids = self.store.delete_all()
        if ids:
            self._offer_undo(ids, f"Deleted {len(ids)} conversation{'s' if len(ids) != 1 else ''}.")

    def _offer_undo(self, ids: list[int], text: str) -> None:
        self._deleted = ids
        self.undo_label.setText(text)
        self.undo_bar.show()
        self._undo_timer.start()
        self.refresh()

    def undo(self) -> None:
        """Bring back what the last delete removed."""
        self._undo_timer.stop()
        if self._deleted:
            self.store.undo_delete(self._deleted)
        self._deleted = []
        self.undo_bar.hide()
        self.refresh()

    def purge(self) -> None:
        """Make the last delete final (the undo bar goes away)."""
        self._undo_timer.stop()
        if self._deleted:
            self.store.purge_deleted()
        self._deleted = []
        self.undo_bar.hide()

    # ------------------------------------------------------------------ export

    def export_current(self, fmt: str) -> None:
        """Ask where to save (non-modal file dialog), then export on a worker thread."""
        cid = self.current_id()
        if cid is None:
            return
        conv = self.store.load_conversation(cid)
        if conv is None:
            return
        from kanoa_desktop.core.history.export import FORMATS  # on first export, not at start

        name = "".join(c if c.isalnum() or c in " -_" else "_" for c in conv.title).strip()
        dlg = QFileDialog(self, f"Export as {FORMAT_LABELS[fmt]}")
        dlg.setObjectName("historyExportDialog")
        dlg.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dlg.setNameFilter(FORMAT_FILTERS[fmt])
        dlg.setDefaultSuffix(FORMATS[fmt].lstrip("."))
        dlg.selectFile((name or "conversation") + FORMATS[fmt])
        dlg.fileSelected.connect(lambda path: self.export_to(cid, path, fmt))
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()  # never exec(): qasync must keep running
        self.export_dialog = dlg

    def export_to(self, conversation_id: int, path: str | Path, fmt: str) -> None:
        """Export a conversation to ``path`` on the worker thread; emits exportFinished or
        exportFailed on the GUI thread."""
        conv = self.store.load_conversation(conversation_id)
        if conv is None:
            self.exportFailed.emit("That conversation no longer exists.")
            return
        self.status.setText(f"Exporting to {Path(path).name}…")

        def work() -> None:
            from kanoa_desktop.core.history.export import export

            try:
                written = export(conv, path, fmt)
            except KanoaError as exc:
                self._exportDone.emit(None, f"{exc.message} {exc.hint}".strip())
            except Exception as exc:  # noqa: BLE001 - shown as a message, never a traceback
                self._exportDone.emit(None, f"The export failed: {type(exc).__name__}: {exc}")
            else:
                self._exportDone.emit(str(written), None)

        self._pool.submit(work)

    def _export_done(self, path: str | None, error: str | None) -> None:
        if error:
            self.status.setText(error)
            self.exportFailed.emit(error)
        else:
            self.status.setText(f"Exported to {path}")
            self.exportFinished.emit(path)

    @guarded()
    def closeEvent(self, event) -> None:  # noqa: N802
        self.purge()
        self._pool.shutdown(wait=True)  # an export in progress finishes its file
        super().closeEvent(event)


__all__ = ["HistoryPanel"]
