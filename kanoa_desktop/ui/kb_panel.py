"""Knowledge-base widgets: the folder panel with indexing progress, and the sources list.

:class:`KnowledgeBasePanel` attaches and detaches folders, indexes them off the GUI thread
with :class:`~kanoa_desktop.core.kb.index.KnowledgeBase` (progress bar with files done /
total and the current file, Cancel), keeps watching them with a
:class:`~kanoa_desktop.core.kb.index.FolderWatcher`, and lists skipped or capped files. The
app reads :attr:`KnowledgeBasePanel.knowledge_base` to ground questions.

:class:`SourcesView` lists the passages an answer used (``[n] file, page or lines``) and
emits ``openRequested(path)`` when one is clicked.

Work crosses threads one way: the worker thread only emits signals of a bridge QObject
that lives in the GUI thread, so every widget update happens on the GUI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.kb.index import (
    FileReport,
    FolderWatcher,
    IndexReport,
    KnowledgeBase,
    Progress,
)
from kanoa_desktop.core.safety import plain_tooltip
from kanoa_desktop.ui.sources_view import SourcesView  # its own module since issue 18
from kanoa_desktop.ui.theme import set_text_colour

__all__ = ["KnowledgeBasePanel", "SourcesView"]


class _Bridge(QObject):
    """Signals emitted from worker threads, delivered on the GUI thread (queued)."""

    progress = Signal(object)  # None: read the panel's latest Progress
    finished = Signal(object)  # IndexReport
    failed = Signal(str)
    changed = Signal(object)  # IndexReport from the watcher


class KnowledgeBasePanel(QWidget):
    """Folders of the knowledge base, indexing progress and the per-file report.

    Signals: ``foldersChanged(list[str])`` when the folder set changes;
    ``indexingFinished(IndexReport)`` after each index run (also a cancelled one);
    ``indexChanged()`` whenever the index content changed (run or watcher).
    Call :meth:`shutdown` before discarding the panel (stops the worker and watcher).
    """

    foldersChanged = Signal(list)
    followLinksChanged = Signal(bool)  # the user opted in or out of links outside
    indexingFinished = Signal(object)
    indexChanged = Signal()

    def __init__(
        self, parent: QWidget | None = None, *, watch: bool = True, watch_interval: float = 3.0
    ) -> None:
        super().__init__(parent)
        self._watch = watch
        self._watch_interval = watch_interval
        self._folders: list[Path] = []
        self._kb: KnowledgeBase | None = None
        self._worker: threading.Thread | None = None
        self._cancel = threading.Event()
        self._watcher: FolderWatcher | None = None
        self._latest_progress: Progress | None = None
        self._progress_posted = threading.Event()
        self._pending_restart = False
        self._retired: list[KnowledgeBase] = []
        self._bridge = _Bridge(self)
        self._bridge.progress.connect(self._on_progress)
        self._bridge.finished.connect(self._on_finished)
        self._bridge.failed.connect(self._on_failed)
        self._bridge.changed.connect(self._on_watcher_change)
        self._build()
        self._update_buttons()

    # --- layout -------------------------------------------------------------------

    def _build(self) -> None:
        title = QLabel("<b>Knowledge base</b>")
        self._folder_list = QListWidget()
        self._folder_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self._folder_list.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._folder_list.itemSelectionChanged.connect(self._update_buttons)
        self._placeholder = QLabel(
            "No folder attached. Attach a folder of notes, papers or code to ground answers "
            "in cited passages."
        )
        self._placeholder.setWordWrap(True)
        set_text_colour(self._placeholder, "muted")  # palette(mid) read at 2:1 in dark

        self.attach_button = QPushButton("Attach…")
        self.attach_button.setToolTip("Attach a folder of notes, papers or code")
        self.attach_button.clicked.connect(self._choose_folder)
        self.detach_button = QPushButton("Detach")
        self.detach_button.clicked.connect(self._detach_selected)
        # Short enough for a narrow dock (a 900 px window); the tooltip says the rest.
        self.follow_links = QCheckBox("Follow links outside the folders")
        self.follow_links.setObjectName("kbFollowLinks")
        self.follow_links.setToolTip(
            "Off: a symbolic link to a file or folder outside the attached folders is "
            "skipped (and listed below), so nothing you did not attach is read."
        )
        self.follow_links.toggled.connect(self._follow_links_toggled)
        self.reindex_button = QPushButton("Re-index")
        self.reindex_button.setToolTip("Check the folders for changes now")
        self.reindex_button.clicked.connect(self.start_indexing)
        buttons = QHBoxLayout()
        # Buttons as wide as their words: the row fits a narrow dock (a 900 px window).
        for button in (self.attach_button, self.detach_button, self.reindex_button):
            button.setMinimumWidth(button.fontMetrics().horizontalAdvance(button.text()) + 24)
        buttons.addWidget(self.attach_button)
        buttons.addWidget(self.detach_button)
        buttons.addStretch(1)
        buttons.addWidget(self.reindex_button)

        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("%v / %m files")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_indexing)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.cancel_button)
        self.current_label = QLabel("")
        self.current_label.setTextFormat(Qt.TextFormat.PlainText)
        self.current_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)

        self._report_title = QLabel("Skipped or partly indexed files")
        self._report_title.setWordWrap(True)
        self.report_view = QTreeWidget()
        self.report_view.setColumnCount(3)
        self.report_view.setHeaderLabels(["File", "Status", "Why"])
        self.report_view.setRootIsDecorated(False)
        self.report_view.setAlternatingRowColors(True)
        header = self.report_view.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.report_view.setColumnWidth(0, 180)

        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self._folder_list)
        layout.addWidget(self._placeholder)
        layout.addLayout(buttons)
        layout.addWidget(self.follow_links)
        layout.addLayout(progress_row)
        layout.addWidget(self.current_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self._report_title)
        layout.addWidget(self.report_view, 1)
        self._set_progress_visible(False)
        self._show_report([])

    def _set_progress_visible(self, visible: bool) -> None:
        self.progress_bar.setVisible(visible)
        self.cancel_button.setVisible(visible)
        self.current_label.setVisible(visible)

    # --- public API ---------------------------------------------------------------

    @property
    def folders(self) -> list[Path]:
        return list(self._folders)

    @property
    def knowledge_base(self) -> KnowledgeBase | None:
        """The index for the attached folders (None when none); safe to search any time."""
        return self._kb

    def is_indexing(self) -> bool:
        return self._worker is not None

    def set_folders(self, folders: Sequence[str | Path]) -> None:
        """Replace the folder set (e.g. from a profile) and index it."""
        unique: list[Path] = []
        for folder in folders:
            path = Path(folder).expanduser().resolve()
            if path not in unique:
                unique.append(path)
        if unique == self._folders:
            return
        self._folders = unique
        self._folder_list.clear()
        for path in unique:
            item = QListWidgetItem(path.name or str(path))
            item.setToolTip(plain_tooltip(str(path)))
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            self._folder_list.addItem(item)
        self._placeholder.setVisible(not unique)
        self._folder_list.setVisible(bool(unique))
        self._fit_folder_list()
        self.foldersChanged.emit([str(p) for p in unique])
        self._open_kb()

    def apply_profile(self, folders: Sequence[str | Path], follow_links: bool) -> None:
        """A profile's folders and its choice about links outside them; re-indexes only
        when either changed (never emits followLinksChanged: the profile already knows)."""
        changed = self.follow_links.isChecked() != bool(follow_links)
        self.follow_links.blockSignals(True)
        self.follow_links.setChecked(bool(follow_links))
        self.follow_links.blockSignals(False)
        before = list(self._folders)
        self.set_folders(folders)  # re-opens when the folders changed
        if changed and self._folders and self._folders == before:
            self._open_kb()

    def _follow_links_toggled(self, on: bool) -> None:
        if self._folders:
            self._open_kb()
        self.followLinksChanged.emit(bool(on))

    def attach_folder(self, folder: str | Path) -> None:
        """Add a folder; a path that is not a folder is refused with a message."""
        path = Path(folder).expanduser()
        if not path.is_dir():
            self.status_label.setText(f"Not a folder: {path}. Choose a folder to attach.")
            return
        self.set_folders([*self._folders, path])

    def detach_folder(self, folder: str | Path) -> None:
        path = Path(folder).expanduser().resolve()
        self.set_folders([f for f in self._folders if f != path])

    def start_indexing(self) -> None:
        """Index the attached folders on a worker thread (no-op when already running)."""
        if self._kb is None:
            return
        if self._worker is not None:
            self._pending_restart = True  # folders changed mid-run: go again after
            return
        self._stop_watcher()
        kb = self._kb
        self._cancel = threading.Event()
        self._latest_progress = None
        self.progress_bar.setRange(0, 0)  # busy until the scan has counted the files
        self.current_label.setText("Scanning folders…")
        self._set_progress_visible(True)
        self.status_label.setText("")
        cancel = self._cancel
        self._worker = threading.Thread(
            target=self._work, args=(kb, cancel), name="kb-index", daemon=True
        )
        self._worker.start()
        self._update_buttons()

    def cancel_indexing(self) -> None:
        """Ask the running index pass to stop after the current file (keeps its work)."""
        self._cancel.set()
        self.cancel_button.setEnabled(False)
        self.current_label.setText("Cancelling…")

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the worker and the watcher and close the databases (call before deleting)."""
        self._cancel.set()
        self._stop_watcher()
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        self._worker = None
        for kb in [*self._retired, self._kb]:
            if kb is not None:
                kb.close()
        self._retired.clear()

    # --- worker thread ----------------------------------------------------------------

    def _work(self, kb: KnowledgeBase, cancel: threading.Event) -> None:
        def progress(p: Progress) -> None:
            # Coalesce: keep only the latest report and post one signal at a time, so a
            # fast run cannot flood the GUI queue and a slow file is always shown.
            self._latest_progress = p
            if not self._progress_posted.is_set():
                self._progress_posted.set()
                self._bridge.progress.emit(None)

        try:
            report = kb.index(progress=progress, cancel=cancel)
        except Exception as exc:  # a locked or unwritable database: say so, keep the app
            self._bridge.failed.emit(
                f"Indexing failed: {exc}. Check that the data folder is writable, then "
                "press Re-index."
            )
            return
        self._bridge.finished.emit(report)

    # --- GUI-thread slots -------------------------------------------------------------

    def _on_progress(self, _unused: object = None) -> None:
        self._progress_posted.clear()
        p = self._latest_progress
        if p is None or p.phase == "scanning":
            return
        if p.total:
            self.progress_bar.setRange(0, p.total)
            self.progress_bar.setValue(p.done)
        if p.phase == "purging":
            self.current_label.setText("Removing deleted files from the index…")
        elif p.current and not self._cancel.is_set():
            self.current_label.setText(p.current)

    def _on_finished(self, report: IndexReport) -> None:
        self._worker = None
        self._set_progress_visible(False)
        self.cancel_button.setEnabled(True)
        if self._pending_restart:
            self._pending_restart = False
            self.start_indexing()
            return
        self.status_label.setText(report.summary())
        self._show_report(self._problems(report))
        self._update_buttons()
        self.indexingFinished.emit(report)
        if report.changed:
            self.indexChanged.emit()
        if self._watch and not report.cancelled:
            self._start_watcher()

    def _on_failed(self, message: str) -> None:
        self._worker = None
        self._set_progress_visible(False)
        self.cancel_button.setEnabled(True)
        self.status_label.setText(message)
        self._update_buttons()

    def _on_watcher_change(self, report: IndexReport) -> None:
        self.status_label.setText("Updated after a change on disk: " + report.summary())
        if self._kb is not None:
            self._show_report(self._problems(report))
        self.indexChanged.emit()

    # --- helpers ------------------------------------------------------------------

    def _open_kb(self) -> None:
        self._cancel.set()
        self._stop_watcher()
        if self._kb is not None:
            # A running worker may still use it: close it at shutdown, not now.
            self._retired.append(self._kb)
        follow = self.follow_links.isChecked()
        self._kb = (
            KnowledgeBase(self._folders, follow_links_outside=follow) if self._folders else None
        )
        self._show_report([])
        self.status_label.setText("")
        if self._kb is not None:
            self.start_indexing()
        self._update_buttons()

    def _start_watcher(self) -> None:
        if self._kb is None or self._watcher is not None:
            return
        self._watcher = FolderWatcher(
            self._kb, interval=self._watch_interval, on_change=self._bridge.changed.emit
        )
        self._watcher.start()

    def _stop_watcher(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    def _problems(self, report: IndexReport | None = None) -> list[FileReport]:
        """Problems stored in the index plus those only a scan sees (links, loops, pipes)."""
        stored = self._kb.file_report() if self._kb is not None else []
        known = {item.path for item in stored}
        extra = [p for p in (report.problems if report else []) if p.path not in known]
        return stored + extra

    def _show_report(self, items: Sequence[FileReport]) -> None:
        self.report_view.clear()
        for item in items:
            row = QTreeWidgetItem([item.path, item.status, item.reason])
            row.setToolTip(0, plain_tooltip(item.path))
            row.setToolTip(2, plain_tooltip(item.reason))
            self.report_view.addTopLevelItem(row)
        self._report_title.setText(
            f"Skipped or partly indexed files ({len(items)})"
            if items
            else "Skipped or partly indexed files: none"
        )

    def _fit_folder_list(self) -> None:
        # As tall as its rows (1 to 4), so an empty area does not push the report down.
        rows = max(1, min(self._folder_list.count(), 4))
        row_height = self._folder_list.sizeHintForRow(0) if self._folder_list.count() else 18
        frame = 2 * self._folder_list.frameWidth()
        self._folder_list.setFixedHeight(rows * row_height + frame + 2)

    def _choose_folder(self) -> None:
        # Non-modal open() rather than a nested exec(): safe under qasync.
        dialog = QFileDialog(self, "Attach a knowledge-base folder")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.fileSelected.connect(self.attach_folder)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()

    def _detach_selected(self) -> None:
        chosen = {item.data(Qt.ItemDataRole.UserRole) for item in self._folder_list.selectedItems()}
        self.set_folders([f for f in self._folders if str(f) not in chosen])

    def _update_buttons(self) -> None:
        self.detach_button.setEnabled(bool(self._folder_list.selectedItems()))
        self.reindex_button.setEnabled(self._kb is not None and self._worker is None)
