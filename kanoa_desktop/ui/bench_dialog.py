"""Tools > Benchmark endpoint: run kanoa's endpoint benchmark against the active profile.

A non-modal dialog (``show()``/``open()``, never ``exec()``): the suite runs as an asyncio
task on the running qasync loop, a progress bar and a live table follow every run, Cancel
stops the request in flight, Export Markdown saves the table through a ``QFileDialog``
opened with ``open()``. Beside the speed figures, an accuracy pass (core/bench/accuracy.py:
16 items of the chart suite) follows the speed suite when the caller gives one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from kanoa_desktop.core.bench.accuracy import AccuracyPass, AccuracyResult
from kanoa_desktop.core.bench.speed import (
    DEFAULT_RUNS,
    DEFAULT_TASKS,
    EndpointBenchmark,
    MetricsReader,
    Progress,
    SuiteResult,
    TaskResult,
    export_benchmark,
    to_markdown,
    variance_note,
)
from kanoa_desktop.core.endpoint.client import ChatClient
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.safety import escape_rich
from kanoa_desktop.ui.plain_text import make_labels_plain
from kanoa_desktop.ui.qt_guard import guarded

COLUMNS = ("Test", "Mean (tok/s)", "StdDev", "Min", "Max", "CV", "Mean TTFT (s)", "Notes")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


class BenchmarkDialog(QDialog):
    """Benchmark ``model`` on ``client``'s server. The dialog never owns the client.

    ``vision``: True/False when the profile says, None to probe. ``metrics``: an optional
    reader for the KV-cache peak and preemptions (see ``endpoint_bench.MetricsReader``).
    ``finished(SuiteResult)`` is emitted when a run ends (done, cancelled or failed).
    ``accuracy`` makes the accuracy pass for a start, given the listener of its score run
    (None: speed only).
    """

    finished = Signal(object)

    def __init__(
        self,
        client: ChatClient,
        model: str,
        *,
        vision: bool | None = None,
        metrics: MetricsReader | None = None,
        runs: int = DEFAULT_RUNS,
        accuracy: Callable[[Callable], AccuracyPass] | None = None,
        parent=None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Benchmark endpoint")
        self.setModal(False)
        self.client = client
        self.model = model
        self.vision = vision
        self.metrics = metrics
        self.bench: EndpointBenchmark | None = None
        self.result: SuiteResult | None = None
        self._task: asyncio.Future | None = None
        self._file_dialog: QFileDialog | None = None
        self.accuracy_factory = accuracy
        self.accuracy: AccuracyPass | None = None
        self.accuracy_result: AccuracyResult | None = None
        self._speed_runs = 0

        # The model name is the server's: escaped inside the one label built for markup.
        self.header = QLabel(f"Model <b>{escape_rich(model)}</b> at {escape_rich(client.api_base)}")
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.runs_box = QSpinBox()
        self.runs_box.setRange(1, 20)
        self.runs_box.setValue(runs)
        self.runs_box.setSuffix(" runs per task")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.state = QLabel("Ready.")
        self.state.setWordWrap(True)
        self.accuracy_label = QLabel()
        self.accuracy_label.setObjectName("benchAccuracy")
        self.accuracy_label.setTextFormat(Qt.TextFormat.PlainText)
        self.accuracy_label.setWordWrap(True)
        self.accuracy_label.setVisible(accuracy is not None)
        self.table = QTableWidget(len(DEFAULT_TASKS) + 1, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        for row, task in enumerate(DEFAULT_TASKS):
            self._set_row(row, task.label, [None] * 6, "")
        self._set_row(len(DEFAULT_TASKS), "Overall Average", [None] * 6, "")

        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel")
        self.export_button = QPushButton("Export Markdown…")
        self.close_button = QPushButton("Close")
        self.cancel_button.setEnabled(False)
        self.export_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self.export_markdown)
        self.close_button.clicked.connect(self.close)

        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.runs_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.state)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.accuracy_label)
        layout.addLayout(buttons)
        make_labels_plain(self)  # the state line quotes the server's errors
        self.resize(860, 420)

    # -- running ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the suite on the running asyncio loop (a no-op while one runs)."""
        if self.running:
            return
        runs = self.runs_box.value()
        self.bench = EndpointBenchmark(
            self.client,
            self.model,
            runs=runs,
            vision=self.vision,
            metrics=self.metrics,
            on_progress=self._on_progress,
        )
        self.result = self.bench.result
        self._speed_runs = len(DEFAULT_TASKS) * runs
        self.accuracy = None
        self.accuracy_result = None
        if self.accuracy_factory is not None:
            self.accuracy = self.accuracy_factory(self._on_accuracy_event)
            self.accuracy_label.setText(
                f"Chart reading ({self.accuracy.source.label}): after the speed suite."
            )
        extra = self.accuracy.items if self.accuracy is not None else 0
        self.progress.setRange(0, self._speed_runs + extra)
        self.progress.setValue(0)
        self.state.setText("Running…")
        self.start_button.setEnabled(False)
        self.runs_box.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.export_button.setEnabled(False)
        self._task = asyncio.ensure_future(self._run_all(self.bench, self.accuracy))
        self._task.add_done_callback(self._on_done)

    async def _run_all(self, bench: EndpointBenchmark, accuracy: AccuracyPass | None):
        result = await bench.run()
        if accuracy is not None and not result.cancelled and not result.error:
            self.accuracy_label.setText(
                f"Chart reading ({accuracy.source.label}): asking {accuracy.items} items…"
            )
            self.accuracy_result = await accuracy.after(result)
            self.accuracy_label.setText(self.accuracy_result.line())
        return result

    def _on_accuracy_event(self, ev) -> None:
        from kanoa_desktop.core.score.run import ItemFailed, ItemScored

        if isinstance(ev, ItemScored | ItemFailed) and self.accuracy is not None:
            done = len(ev.run.scores) + len(ev.run.failures)
            self.progress.setValue(self._speed_runs + done)
            self.state.setText(f"Chart reading: {done} of {self.accuracy.items} items asked.")

    def cancel(self) -> None:
        if self.bench is not None and self.running:
            self.state.setText("Cancelling…")
            self.bench.cancel()
            if self.accuracy is not None:
                self.accuracy.stop()

    def _on_progress(self, p: Progress) -> None:
        self.progress.setValue(p.done)
        self._show_task(p.task)
        self._show_overall()
        if p.record is not None and p.record.error:
            self.state.setText(f"{p.task.task.label}, run {p.record.index + 1}: {p.record.error}")
        else:
            self.state.setText(f"{p.done} of {p.total} runs done.")

    def _on_done(self, fut: asyncio.Future) -> None:
        self.start_button.setEnabled(True)
        self.runs_box.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if fut.cancelled():
            self.state.setText("Stopped.")
        elif (exc := fut.exception()) is not None:
            self.state.setText(f"The benchmark stopped: {exc}")
        result = self.result
        if result is None:
            return
        for tr in result.tasks:
            self._show_task(tr)
        self._show_overall()
        self.export_button.setEnabled(any(t.summary is not None for t in result.tasks))
        if not fut.cancelled() and fut.exception() is None:
            self.state.setText(self._summary_line(result))
        self.finished.emit(result)

    @staticmethod
    def _summary_line(result: SuiteResult) -> str:
        parts = [f"Finished in {result.duration_s:.1f} s."]
        if result.cancelled:
            parts = ["Cancelled: the table shows the runs that finished."]
        if result.error:
            parts.append(f"Stopped early: {result.error}")
        if result.kv_cache_peak is not None:
            parts.append(f"KV cache peak {result.kv_cache_peak * 100:.1f}%.")
        if result.preemptions is not None:
            parts.append(f"Preemptions: {result.preemptions:.0f}.")
        return " ".join(parts)

    # -- table -----------------------------------------------------------------------------

    def _set_row(self, row: int, label: str, values: list, note: str) -> None:
        item = QTableWidgetItem(label)
        font = item.font()
        font.setBold(True)
        item.setFont(font)
        self.table.setItem(row, 0, item)
        for col, text in enumerate(values, start=1):
            cell = QTableWidgetItem("—" if text is None else text)
            cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, col, cell)
        self.table.setItem(row, len(COLUMNS) - 1, QTableWidgetItem(note))

    def _show_task(self, tr: TaskResult) -> None:
        row = next(i for i, t in enumerate(DEFAULT_TASKS) if t.key == tr.task.key)
        s = tr.summary
        if s is None:
            note = tr.skipped or (tr.runs[-1].error if tr.runs else "")
            self._set_row(row, tr.task.label, [None] * 6, note)
            return
        cv = f"{s.cv * 100:.0f}%" if s.cv is not None else None
        values = [_fmt(s.mean), _fmt(s.std), _fmt(s.min), _fmt(s.max), cv, _fmt(tr.mean_ttft_s, 2)]
        note = variance_note(s) + (f" (run {len(tr.runs)} of {self.bench.runs})"
                                   if self.bench and len(tr.runs) < self.bench.runs else "")  # fmt: skip
        self._set_row(row, tr.task.label, values, note)

    def _show_overall(self) -> None:
        if self.result is None:
            return
        o = self.result.overall
        row = len(DEFAULT_TASKS)
        if o is None:
            self._set_row(row, "Overall Average", [None] * 6, "")
            return
        cv = f"{o.cv * 100:.0f}%" if o.cv is not None else None
        values = [_fmt(o.mean), _fmt(o.std), _fmt(o.min), _fmt(o.max), cv]
        values.append(_fmt(self.result.mean_ttft_s, 2))
        self._set_row(row, "Overall Average", values, "")

    def cell_text(self, row: int, column: str) -> str:
        """The text shown in ``row`` under ``column`` (a name from ``COLUMNS``)."""
        item = self.table.item(row, COLUMNS.index(column))
        return item.text() if item is not None else ""

    # -- export ----------------------------------------------------------------------------

    def markdown(self) -> str:
        if self.result is None:
            return ""
        return to_markdown(self.result, accuracy=self._accuracy_line())

    def _accuracy_line(self) -> str:
        return self.accuracy_result.line() if self.accuracy_result is not None else ""

    def export_markdown(self) -> None:
        """Ask for a file (non-blocking ``QFileDialog.open``) and save the table there."""
        from kanoa_desktop.ui.save_dialog import save_dialog

        name = f"benchmark-{self.model.replace('/', '_')}.md"
        self._file_dialog = save_dialog(
            self, "Export benchmark as Markdown", name, ["Markdown (*.md)"], self.save_markdown,
            default_suffix="md",
        )  # fmt: skip

    def save_markdown(self, path: str) -> bool:
        """Write the table to ``path``; on failure say why in the dialog (nothing is lost:
        the table stays here to export again)."""
        if not path:
            return False
        if self.result is None:
            return False
        try:
            export_benchmark(self.result, path, accuracy=self._accuracy_line())
        except KanoaError as exc:
            self.state.setText(f"Could not save the table: {exc.message} {exc.hint}")
            return False
        self.state.setText(f"Saved the table to {path}.")
        return True

    @guarded()
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        # Closing stops the suite: no request keeps running for a dialog nobody sees.
        if self.running and self.bench is not None:
            self.bench.cancel()
            if self.accuracy is not None:
                self.accuracy.stop()
        with contextlib.suppress(RuntimeError):
            if self._file_dialog is not None:
                self._file_dialog.close()
        super().closeEvent(event)
