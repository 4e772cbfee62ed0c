"""The batch dialog: one question over a folder, rendered from a core Batch.

A :class:`BatchView` is a non-modal dialog (``show()``, never ``exec()``): choose a folder
or files, a profile, the context/focus/question templates (``{name}``, ``{stem}``,
``{folder}``, ``{item}``) and the concurrency, then Start. A progress bar with counts and
time left, Pause/Resume, Cancel, Retry failed and Export report (Markdown, HTML, CSV)
follow the :class:`~kanoa_desktop.core.batch.runner.Batch`'s events; each finished item is a
row of the table (failures in red with their message). The selected row's answer (or why it
failed) reads below the table, rendered as the main window renders answers.

Running the same batch again continues it by content (core): answers of unchanged items
are kept, new and changed items are asked, and the end line says so ("3 kept, 1 new,
1 changed; asked 2"). Planning (opening PDFs and notebooks, hashing files) and report
writing run off the GUI thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.batch.plan import TEMPLATE_FIELDS, Template
from kanoa_desktop.core.batch.report import REPORT_SUFFIXES, write_report
from kanoa_desktop.core.batch.runner import (
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    Batch,
    BatchEnded,
    ItemFinished,
    ItemStarted,
    Progress,
)
from kanoa_desktop.core.batch.store import BatchStore
from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.config.profiles import ProfileStore
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.safety import plain_tooltip
from kanoa_desktop.ui.plain_text import make_labels_plain
from kanoa_desktop.ui.qt_guard import guarded
from kanoa_desktop.ui.theme import colour

log = logging.getLogger(__name__)

COLUMNS = ("Item", "State", "Time", "Tokens", "Cost / message")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!<>|~])")


def _md_escape(text: str) -> str:
    """A file name or message shown as the characters it is, not as Markdown."""
    return _MD_SPECIAL.sub(r"\\\1", text)


class BatchView(QDialog):
    """The batch dialog; see the module docstring. ``services`` are every item's (their
    ``run_cpu`` runs blocking work off the GUI thread); ``store`` is the results file
    (default the data folder's batches.sqlite3)."""

    def __init__(
        self,
        profiles: ProfileStore,
        services: Services,
        *,
        store: BatchStore | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("batchView")
        self.setWindowTitle("Batch")
        self.setModal(False)
        self.profiles = profiles
        self.services = services
        self.pool, self.run_cpu = services.pool, services.run_cpu
        self._store = store
        self.batch: Batch | None = None
        self._task: asyncio.Task | None = None
        self._rows: dict[str, int] = {}
        self._dialog: QFileDialog | None = None
        self.last_report: Path | None = None

        root = QVBoxLayout(self)
        form = QFormLayout()
        src = QVBoxLayout()
        self.sources = QListWidget()
        self.sources.setObjectName("batchSources")
        self.sources.setAccessibleName("Folders and files")
        self.sources.setMaximumHeight(80)
        src.addWidget(self.sources)
        src_buttons = QHBoxLayout()
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.add_files_button = QPushButton("Add files…")
        self.add_files_button.clicked.connect(self.choose_files)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.sources.clear)
        for b in (self.add_folder_button, self.add_files_button, self.clear_button):
            src_buttons.addWidget(b)
        src_buttons.addStretch(1)
        src.addLayout(src_buttons)
        form.addRow("Inputs:", src)
        self.profile = QComboBox()
        self.profile.setObjectName("batchProfile")
        self.profile.setAccessibleName("Profile")
        for p in profiles.profiles:
            self.profile.addItem(p.name, p.id)
        self.profile.setCurrentIndex(self.profile.findData(profiles.active.id))
        form.addRow("Profile:", self.profile)
        fields = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
        self.context = QLineEdit()
        self.context.setPlaceholderText(f"e.g. Growth curve of strain {{stem}} ({fields})")
        self.focus = QLineEdit()
        self.focus.setPlaceholderText("e.g. the lag phase")
        self.question = QLineEdit()
        self.question.setPlaceholderText("Interpret.")
        for w, name in ((self.context, "Context"), (self.focus, "Focus"),
                        (self.question, "Question")):  # fmt: skip
            w.setAccessibleName(f"{name} template")
            w.setToolTip(f"{name} for every item; fields: {fields}")
            form.addRow(f"{name}:", w)
        self.concurrency = QSpinBox()
        self.concurrency.setObjectName("batchConcurrency")
        self.concurrency.setAccessibleName("Concurrency")
        self.concurrency.setRange(1, MAX_CONCURRENCY)
        self.concurrency.setValue(DEFAULT_CONCURRENCY)
        self.concurrency.setMaximumWidth(self.concurrency.sizeHint().width() + 24)
        self.concurrency.setToolTip("Items asked at once; a change applies to a running batch")
        self.concurrency.valueChanged.connect(self._concurrency_changed)
        form.addRow("At once:", self.concurrency)
        root.addLayout(form)

        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("batchProgress")
        self.progress_bar.setAccessibleName("Batch progress")
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%v / %m")
        root.addWidget(self.progress_bar)
        self.progress_label = QLabel("Choose a folder or files, then Start.")
        self.progress_label.setObjectName("batchProgressLine")
        self.progress_label.setWordWrap(True)
        root.addWidget(self.progress_label)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("batchResults")
        self.table.setAccessibleName("Results")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.itemSelectionChanged.connect(self._show_selected_answer)
        from kanoa_desktop.ui.answer_view import AnswerView

        self.answer = AnswerView()
        self.answer.setObjectName("batchAnswer")
        self.answer.setAccessibleName("Answer of the selected item")
        self.answer.setPlaceholderText("Select a finished item to read its answer.")
        split = QSplitter(Qt.Orientation.Vertical)
        split.setObjectName("batchSplit")
        split.addWidget(self.table)
        split.addWidget(self.answer)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        root.addWidget(split, 1)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop now; finished items are kept, Start continues")
        self.cancel_button.clicked.connect(self.cancel)
        self.retry_button = QPushButton("Retry failed")
        self.retry_button.clicked.connect(self.retry_failed)
        self.export_button = QPushButton("Export report…")
        self.export_button.setToolTip("Markdown, HTML or CSV")
        self.export_button.clicked.connect(self.choose_report)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        for b in (self.start_button, self.pause_button, self.cancel_button, self.retry_button,
                  self.export_button):  # fmt: skip
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        root.addLayout(buttons)
        make_labels_plain(self)  # the progress line quotes file names and errors
        self._set_running(False)
        self.resize(760, 620)

    # -- choosing --------------------------------------------------------------------------

    def add_sources(self, paths: list[str | Path]) -> None:
        known = {self.sources.item(i).text() for i in range(self.sources.count())}
        for p in paths:
            if str(p) not in known:
                self.sources.addItem(str(p))

    def source_paths(self) -> list[Path]:
        return [Path(self.sources.item(i).text()) for i in range(self.sources.count())]

    def choose_folder(self) -> None:
        dialog = QFileDialog(self, "Choose a folder")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.fileSelected.connect(lambda path: self.add_sources([path]))
        self._dialog = dialog
        dialog.open()

    def choose_files(self) -> None:
        dialog = QFileDialog(self, "Choose files")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.setNameFilters(
            [
                "Figures, tables, PDFs, notebooks (*.png *.jpg *.jpeg *.gif *.bmp *.tif *.tiff"
                " *.webp *.svg *.csv *.tsv *.txt *.xlsx *.parquet *.pdf *.ipynb)",
                "All files (*)",
            ]
        )
        dialog.filesSelected.connect(lambda paths: self.add_sources(list(paths)))
        self._dialog = dialog
        dialog.open()

    def template(self) -> Template:
        return Template(self.context.text(), self.focus.text(), self.question.text())

    # -- running ---------------------------------------------------------------------------

    def _results_store(self) -> BatchStore:
        if self._store is None:
            self._store = BatchStore()
        return self._store

    def start(self) -> asyncio.Task | None:
        """Plan and run the batch (continuing it when it ran before); returns the task."""
        if self._task is not None and not self._task.done():
            return None
        sources = self.source_paths()
        if not sources:
            self.progress_label.setText("Add a folder or files first.")
            return None
        profile = self.profiles.get_by_id(self.profile.currentData())
        if profile is None:
            self.progress_label.setText("Choose a profile (create one in Settings).")
            return None
        try:
            batch = Batch(
                sources,
                profile,
                self.template(),
                self.services,
                store=self._results_store(),
                concurrency=self.concurrency.value(),
                listener=self._on_event,
            )
        except KanoaError as err:
            self.progress_label.setText(f"{err.message} {err.hint}".strip())
            return None
        self.batch = batch
        self._rows.clear()  # another run: rows come from this plan, never the last one's
        self.table.setRowCount(0)
        return self._launch(batch.run())

    def retry_failed(self) -> asyncio.Task | None:
        if self.batch is None or (self._task is not None and not self._task.done()):
            return None
        for r in self.batch.failures:
            row = self._rows.pop(r.key, None)
            if row is not None:
                self.table.item(row, 1).setText("queued")
        return self._launch(self.batch.retry_failed())

    def _launch(self, coro) -> asyncio.Task:
        self._set_running(True)
        self.progress_label.setText("Planning…")

        async def run() -> BatchEnded | None:
            try:
                return await coro
            except KanoaError as err:
                self.progress_label.setText(f"{err.message} {err.hint}".strip())
                return None
            except Exception as exc:  # noqa: BLE001 - shown, the log has the traceback
                log.exception("batch failed")
                self.progress_label.setText(f"The batch failed: {exc}")
                return None
            finally:
                self._set_running(False)  # state that always comes back

        self._task = asyncio.ensure_future(run())
        return self._task

    def toggle_pause(self) -> None:
        if self.batch is None:
            return
        if self.batch.paused:
            self.batch.resume()
        else:
            self.batch.pause()
        self.pause_button.setText("Resume" if self.batch.paused else "Pause")

    def cancel(self) -> None:
        if self.batch is not None:
            self.batch.cancel()

    def _concurrency_changed(self, n: int) -> None:
        if self.batch is not None:
            self.batch.concurrency = n

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        for w in (self.add_folder_button, self.add_files_button, self.clear_button, self.profile,
                  self.context, self.focus, self.question):  # fmt: skip
            w.setEnabled(not running)
        has_results = self.batch is not None and bool(self.batch.results)
        self.export_button.setEnabled(not running and has_results)
        self.retry_button.setEnabled(
            not running and self.batch is not None and bool(self.batch.failures)
        )
        if not running:
            self.pause_button.setText("Pause")

    # -- events ----------------------------------------------------------------------------

    def _row_for(self, key: str, label: str) -> int:
        row = self._rows.get(key)
        if row is None:
            row = self.table.rowCount()
            self.table.insertRow(row)
            self._rows[key] = row
            for c in range(len(COLUMNS)):
                self.table.setItem(row, c, QTableWidgetItem(""))
            self.table.item(row, 0).setText(label)
        return row

    def _show_result(self, key: str, result, kept: bool = False) -> None:
        row = self._row_for(key, result.label)
        cells = [result.label, ("kept" if kept else "done") if result.ok else "failed"]
        if result.ok:
            cells += [
                f"{result.duration_s:.1f} s" if result.duration_s is not None else "–",
                f"{result.output_tokens or 0:,}",
                format_cost(result.cost or 0.0, result.estimated),
            ]
        else:
            cells += ["", "", result.error]
        for c, text in enumerate(cells):
            item = self.table.item(row, c)
            item.setText(text)
            item.setToolTip(plain_tooltip(result.hint) if not result.ok and result.hint else "")
            item.setForeground(QBrush(QColor(colour("error"))) if not result.ok else QBrush())

    def _key_of_row(self, row: int) -> str | None:
        return next((k for k, r in self._rows.items() if r == row), None)

    def _show_selected_answer(self) -> None:
        """The selected item's answer (its question first), or why it failed."""
        rows = {i.row() for i in self.table.selectedItems()}
        key = self._key_of_row(min(rows)) if rows else None
        result = self.batch.results.get(key) if self.batch is not None and key else None
        if result is None:
            self.answer.clear_conversation()
            return
        label = _md_escape(result.label)
        if result.ok:
            text = result.answer.strip() or "*(no text)*"
            model = f" ({_md_escape(result.model)})" if result.model else ""
            head = f"**{label}**{model}"
        else:
            text = _md_escape(f"{result.error} {result.hint}".strip())
            head = f"**{label}**: failed"
        self.answer.set_conversation_markdown(f"{head}\n\n{text}\n")

    def _on_event(self, ev) -> None:
        if isinstance(ev, Progress):
            self._show_progress(ev)
        elif isinstance(ev, ItemStarted):
            row = self._row_for(ev.item.key, ev.item.label)
            self.table.item(row, 1).setText("asking…")
            self.table.scrollToItem(self.table.item(row, 0))
        elif isinstance(ev, ItemFinished):
            self._show_result(ev.item.key, ev.result)
            row = self._rows.get(ev.item.key)
            if not self.table.selectedItems() and row is not None:
                self.table.selectRow(row)  # the first answer shows without a click
            elif row is not None and row in {i.row() for i in self.table.selectedItems()}:
                self._show_selected_answer()
        elif isinstance(ev, BatchEnded):
            self._show_progress(ev.progress)
            p = ev.progress
            if ev.state == "cancelled":
                text = f"Cancelled: {p.line()}. Start continues where it stopped."
            elif p.failed:
                text = f"Finished: {p.done} done, {p.failed} failed (Retry failed asks them again)."
            else:
                text = f"Finished: all {p.done} items done."
            warnings = " ".join([*ev.batch.warnings, ev.batch.store.unsaved_note() or ""])
            self.progress_label.setText(f"{text} ({ev.line()}) {warnings}".strip())

    def _show_progress(self, p: Progress) -> None:
        if self.batch is not None and p.finished and not self._rows:
            # Results kept from an earlier run of the same batch: show them once.
            for key, result in self.batch.results.items():
                self._show_result(key, result, kept=True)
        self.progress_bar.setRange(0, max(1, p.total))
        self.progress_bar.setValue(p.finished)
        self.progress_label.setText(p.line())

    # -- report ----------------------------------------------------------------------------

    def choose_report(self) -> None:
        from kanoa_desktop.ui.save_dialog import save_dialog

        self._dialog = save_dialog(
            self, "Export the batch report", "batch-report.md",
            ["Markdown (*.md)", "HTML (*.html)", "PDF (*.pdf)", "CSV (*.csv)"],
            self.export_report,
        )  # fmt: skip

    def export_report(self, path: str | Path) -> asyncio.Task | None:
        """Write the report (format by suffix; Markdown when there is none) off the GUI
        thread; returns the task (its result is the path, or None on failure)."""
        if self.batch is None:
            return None
        path = Path(path)
        if path.suffix.lower() not in REPORT_SUFFIXES:
            path = path.with_name(path.name + ".md")
        batch = self.batch

        async def run() -> Path | None:
            try:
                written = await self.run_cpu(lambda: write_report(batch, path))
            except KanoaError as err:
                self.progress_label.setText(f"{err.message} {err.hint}".strip())
                return None
            self.last_report = written
            self.progress_label.setText(f"Report written to {written}")
            return written

        return asyncio.ensure_future(run())

    # -- closing ---------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Cancel a running batch and wait for it (finished items are kept)."""
        if self.batch is not None:
            self.batch.cancel()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    @guarded()
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        # Nothing runs unseen: closing cancels. Finished items are kept, and the same batch
        # started again continues where it stopped.
        if self.batch is not None and self._task is not None and not self._task.done():
            self.batch.cancel()
        super().closeEvent(event)
