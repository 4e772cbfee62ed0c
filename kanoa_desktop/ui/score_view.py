"""The Score models window: which of 1 to 4 profiles reads charts best, rendered from a
core :class:`~kanoa_desktop.core.score.run.ScoreRun`.

A :class:`ScoreView` is a non-modal top-level window (``show()``, never ``exec()``). Choose
what to score (the generated chart suite, its size and seed, or an answer key CSV), 1 to 4
profiles and how many questions go at once, then Score. While it runs: a progress bar,
one line per profile with its running accuracy and Wilson 95 % interval, and the result
table, refreshed by a timer a few times a second (never per event); Stop keeps what was
scored. When it ends: the paired verdicts (McNemar's exact test) and Export (Markdown, HTML,
CSV). Every scored item is kept in the history; Score with the same choices continues an
unfinished run. Charts are drawn, figures prepared, keys checked and reports written on the
worker pool, never on the GUI thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import ProfileStore
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.reports.writer import plain
from kanoa_desktop.core.safety import plain_tooltip
from kanoa_desktop.core.score import report
from kanoa_desktop.core.score.run import (
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    MAX_PROFILES,
    ItemFailed,
    ItemScored,
    RunNotice,
    ScoreEnded,
    ScoreRun,
    key_source,
    stored_summaries,
    suite_source,
)
from kanoa_desktop.core.score.suite import MAX_ITEMS, SUITE_ID
from kanoa_desktop.ui.plain_text import make_labels_plain
from kanoa_desktop.ui.qt_guard import guarded

log = logging.getLogger(__name__)

REFRESH_MS = 250
DEFAULT_ITEMS = 64


class ScoreView(QWidget):
    """The Score models window; see the module docstring. ``services`` are the face's:
    its ``run_cpu`` runs blocking work off the GUI thread, its ``history`` keeps every
    scored item (None: nothing kept)."""

    runEnded = Signal(object)  # ScoreEnded

    def __init__(
        self,
        store: ProfileStore,
        services: Services,
        *,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("scoreView")
        self.setWindowTitle("Score models")
        self.store = store
        self.services = services
        self.history = services.history
        self.run_cpu = services.run_cpu
        self.run: ScoreRun | None = None
        self.last: ScoreEnded | None = None
        self.last_report: Path | None = None
        self._task: asyncio.Task | None = None
        self._export_task: asyncio.Task | None = None
        self._dialog: QFileDialog | None = None
        self._dirty = False
        self._failures: list[str] = []

        root = QVBoxLayout(self)
        root.setContentsMargins(10, 10, 10, 10)
        form = QFormLayout()
        what = QHBoxLayout()
        self.use_suite = QRadioButton(f"Chart suite ({SUITE_ID})")
        self.use_suite.setObjectName("scoreUseSuite")
        self.use_suite.setToolTip(
            "Charts drawn here from seeded data: bars, grouped bars, lines, scatter; the true "
            "answers come from the data that drew them"
        )
        self.use_key = QRadioButton("Answer key")
        self.use_key.setObjectName("scoreUseKey")
        self.use_key.setToolTip("A CSV of your figures: file,question,answer[,tolerance]")
        group = QButtonGroup(self)
        group.addButton(self.use_suite)
        group.addButton(self.use_key)
        self.use_suite.setChecked(True)
        self.items = QSpinBox()
        self.items.setObjectName("scoreItems")
        self.items.setAccessibleName("Number of suite items")
        self.items.setRange(1, MAX_ITEMS)
        self.items.setValue(DEFAULT_ITEMS)
        self.items.setPrefix("items ")
        self.seed = QSpinBox()
        self.seed.setObjectName("scoreSeed")
        self.seed.setAccessibleName("Suite seed")
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setPrefix("seed ")
        self.key_path = QLineEdit()
        self.key_path.setObjectName("scoreKeyPath")
        self.key_path.setAccessibleName("Answer key file")
        self.key_path.setPlaceholderText("key.csv (file,question,answer[,tolerance])")
        self.key_button = QPushButton("Choose…")
        self.key_button.clicked.connect(self.choose_key)
        what.addWidget(self.use_suite)
        what.addWidget(self.items)
        what.addWidget(self.seed)
        what.addSpacing(16)
        what.addWidget(self.use_key)
        what.addWidget(self.key_path, 1)
        what.addWidget(self.key_button)
        form.addRow("Score:", what)

        who = QHBoxLayout()
        self.profile_boxes: list[QComboBox] = []
        self._profile_row = who
        self.add_button = QToolButton()
        self.add_button.setText("+")
        self.add_button.setAccessibleName("Add a profile")
        self.add_button.setToolTip(f"Score another profile (at most {MAX_PROFILES})")
        self.add_button.clicked.connect(self.add_profile)
        self.remove_button = QToolButton()
        self.remove_button.setText("−")
        self.remove_button.setAccessibleName("Remove a profile")
        self.remove_button.setToolTip("Remove the last profile")
        self.remove_button.clicked.connect(self.remove_profile)
        who.addWidget(self.add_button)
        who.addWidget(self.remove_button)
        who.addStretch(1)
        who.addWidget(QLabel("At once:"))
        self.concurrency = QSpinBox()
        self.concurrency.setObjectName("scoreConcurrency")
        self.concurrency.setAccessibleName("Questions at once per profile")
        self.concurrency.setRange(1, MAX_CONCURRENCY)
        self.concurrency.setValue(DEFAULT_CONCURRENCY)
        who.addWidget(self.concurrency)
        form.addRow("Profiles:", who)
        root.addLayout(form)

        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("scoreProgress")
        self.progress_bar.setAccessibleName("Items scored")
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%v / %m answers")
        root.addWidget(self.progress_bar)
        self.progress_label = QLabel("Choose what to score and the profiles, then Score.")
        self.progress_label.setObjectName("scoreProgressLine")
        self.progress_label.setTextFormat(Qt.TextFormat.PlainText)
        self.progress_label.setWordWrap(True)
        root.addWidget(self.progress_label)

        self.table = QTableWidget(0, len(report.SUMMARY_HEADERS))
        self.table.setObjectName("scoreResults")
        self.table.setAccessibleName("Scores")
        self.table.setHorizontalHeaderLabels(list(report.SUMMARY_HEADERS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # The profile's name takes what is left (elided, whole in its tooltip): the numbers
        # always show, without a scroll bar, down to a 900-pixel window.
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(36)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        root.addWidget(self.table)
        self.templates = QTableWidget(0, 1)
        self.templates.setObjectName("scoreTemplates")
        self.templates.setAccessibleName("Accuracy per question template")
        self.templates.verticalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.templates.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.templates.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        # Rows and header change height with the style (a theme, a font): fit again.
        self.templates.verticalHeader().sectionResized.connect(self._fit_templates)
        self.templates.horizontalHeader().geometriesChanged.connect(self._fit_templates)
        root.addWidget(self.templates, 100)  # all it needs first (its max: its rows), then
        self.verdicts = QLabel()
        self.verdicts.setObjectName("scoreVerdicts")
        self.verdicts.setTextFormat(Qt.TextFormat.PlainText)
        self.verdicts.setWordWrap(True)
        root.addWidget(self.verdicts)
        self.message = QLabel()
        self.message.setObjectName("scoreMessage")
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setWordWrap(True)
        root.addWidget(self.message)
        root.addStretch(1)  # the rest below the lines

        earlier = QHBoxLayout()
        earlier.addWidget(QLabel("Earlier runs:"))
        self.earlier = QComboBox()
        self.earlier.setObjectName("scoreEarlierRuns")
        self.earlier.setAccessibleName("Earlier score runs, from the history")
        self.earlier.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.earlier.setMinimumContentsLength(40)
        self.earlier.activated.connect(self._earlier_chosen)
        earlier.addWidget(self.earlier, 1)
        root.addLayout(earlier)

        buttons = QHBoxLayout()
        self.score_button = QPushButton("Score")
        self.score_button.setDefault(True)
        self.score_button.setToolTip(
            "Ask every item of every profile; with the same choices, an unfinished run continues"
        )
        self.score_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop now; what was scored is kept, Score continues")
        self.stop_button.clicked.connect(self.stop)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Markdown, HTML or CSV: how it was run, every item")
        self.export_button.clicked.connect(self.choose_export)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        for b in (self.score_button, self.stop_button, self.export_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        root.addLayout(buttons)

        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._refresh)
        self.add_profile()
        self._set_running(False)
        self.refresh_earlier()
        make_labels_plain(self)  # progress lines and verdicts quote profile and model names
        self.resize(1000, 560)

    # -- choosing --------------------------------------------------------------------------

    def add_profile(self) -> None:
        if len(self.profile_boxes) >= MAX_PROFILES or self.busy:
            return
        box = QComboBox()
        box.setObjectName(f"scoreProfile{len(self.profile_boxes)}")
        box.setAccessibleName(f"Profile {len(self.profile_boxes) + 1}")
        box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        for p in self.store.profiles:
            box.addItem(p.name, p.id)
        if box.count():  # different profiles in turn, so two rows do not start identical
            box.setCurrentIndex(len(self.profile_boxes) % box.count())
        self._profile_row.insertWidget(len(self.profile_boxes), box)
        self.profile_boxes.append(box)
        self._update_buttons()

    def remove_profile(self) -> None:
        if len(self.profile_boxes) <= 1 or self.busy:
            return
        box = self.profile_boxes.pop()
        box.setParent(None)
        box.deleteLater()
        self._update_buttons()

    def set_profiles(self, profiles) -> None:
        """Choose the profiles (for tests and the window's defaults)."""
        while len(self.profile_boxes) < len(profiles):
            self.add_profile()
        while len(self.profile_boxes) > max(1, len(profiles)):
            self.remove_profile()
        for box, p in zip(self.profile_boxes, profiles, strict=False):
            box.setCurrentIndex(box.findData(p.id))

    def chosen_profiles(self) -> list:
        found = [self.store.get_by_id(b.currentData()) for b in self.profile_boxes]
        return [p for p in found if p is not None]

    def choose_key(self) -> None:
        dialog = QFileDialog(self, "Choose an answer key")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilters(["Answer keys (*.csv)", "All files (*)"])
        dialog.fileSelected.connect(self._key_chosen)
        self._dialog = dialog
        dialog.open()

    def _key_chosen(self, path: str) -> None:
        if path:
            self.key_path.setText(path)
            self.use_key.setChecked(True)

    # -- running ---------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task | None:
        """Score the chosen items on the chosen profiles; returns the task (None when the
        choices are not usable, with the reason shown)."""
        if self.busy:
            return None
        profiles = self.chosen_profiles()
        if not profiles:
            self.message.setText("Choose a profile (create one in Settings).")
            return None
        use_key = self.use_key.isChecked()
        key = self.key_path.text().strip()
        if use_key and not key:
            self.message.setText("Choose the answer key (a CSV) first.")
            return None
        n, seed, concurrency = self.items.value(), self.seed.value(), self.concurrency.value()
        self.message.setText("")
        self.verdicts.setText("")
        self._failures.clear()
        self._set_running(True)
        self.progress_label.setText("Checking the answer key…" if use_key else "Starting…")

        async def go() -> ScoreEnded | None:
            try:
                if use_key:
                    source = await self._cpu(lambda: key_source(key))
                else:
                    source = suite_source(n, seed)
                run = ScoreRun(
                    source,
                    profiles,
                    self.services,
                    concurrency=concurrency,
                    listener=self._on_event,
                )
                self.run = run
                self.last = None
                self._show_table()
                return await run.run()
            except KanoaError as err:
                self.message.setText(f"{err.message} {err.hint}".strip())
                return None
            except Exception as exc:  # noqa: BLE001 - shown; the log has the traceback
                log.exception("score run failed")
                self.message.setText(f"The score run failed: {type(exc).__name__}: {exc}")
                return None
            finally:
                self._set_running(False)  # state that always comes back
                self._refresh()

        self._task = asyncio.ensure_future(go())
        return self._task

    def stop(self) -> None:
        if self.run is not None and self.busy:
            self.progress_label.setText("Stopping: the questions in flight end; what was "
                                        "scored is kept.")  # fmt: skip
            self.run.stop()

    async def _cpu(self, fn: Callable[[], Any]) -> Any:
        return await self.run_cpu(fn)

    def _set_running(self, running: bool) -> None:
        before = self.focusWidget()
        self.score_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for w in (self.use_suite, self.use_key, self.items, self.seed, self.key_path,
                  self.key_button, self.concurrency, *self.profile_boxes):  # fmt: skip
            w.setEnabled(not running)
        self.export_button.setEnabled(
            not running and self.run is not None and bool(self.run.scores or self.run.failures)
        )
        if before is None or not before.isEnabled():
            # The focus was on what is now disabled: Qt would pass it to the next field
            # (the "At once" box, its text selected); Stop while running, Score after.
            (self.stop_button if running else self.score_button).setFocus()
        if running:
            self._timer.start()
        else:
            self._timer.stop()
        self._update_buttons()

    def _update_buttons(self) -> None:
        free = not self.busy
        self.add_button.setEnabled(free and len(self.profile_boxes) < MAX_PROFILES)
        self.remove_button.setEnabled(free and len(self.profile_boxes) > 1)

    # -- events (cheap: the timer renders) -------------------------------------------------

    def _on_event(self, ev) -> None:
        if self.run is None or ev.run is not self.run:
            return
        if isinstance(ev, ItemScored):
            self._dirty = True
        elif isinstance(ev, ItemFailed):
            self._dirty = True
            label = self.run.labels[ev.profile]
            self._failures.append(f"{label}: {ev.failure.item}: {ev.failure.error}")
        elif isinstance(ev, RunNotice):
            self.message.setText(plain(ev.message))
        elif isinstance(ev, ScoreEnded):
            self.last = ev
            self._dirty = True
            self._refresh()
            self.refresh_earlier()
            self.runEnded.emit(ev)

    def _show_table(self) -> None:
        run = self.run
        if run is None:
            return
        self.table.setRowCount(len(run.profiles))
        self._fit_table()
        self.templates.setRowCount(0)
        self.templates.setColumnCount(len(run.profiles))
        self.templates.setHorizontalHeaderLabels([plain(x) for x in run.labels])
        self.progress_bar.setRange(0, max(1, len(run.items) * len(run.profiles)))
        self._dirty = True
        self._refresh()

    def _refresh(self) -> None:
        run = self.run
        if run is None or not self._dirty:
            return
        self._dirty = False
        ended = self.last if self.last is not None and self.last.run is run else None
        summaries = ended.summaries if ended else run.summaries()
        done = sum(s.n + s.failed for s in summaries)
        self.progress_bar.setValue(done)
        lines = []
        for s in summaries:
            acc = f"{s.accuracy * 100:.1f} %" if s.accuracy is not None else "–"
            line = (
                f"{plain(s.label)}: {s.n} of {s.total} scored, {s.correct} right: {acc} "
                f"(95 % CI {s.ci_low * 100:.1f}–{s.ci_high * 100:.1f} %)"
            )
            if s.failed:
                line += f", {s.failed} failed"
            lines.append(line)
        if ended is not None:
            lines.append(self._ended_line(ended))
        self.progress_label.setText("\n".join(lines))
        self._fill(summaries)
        if ended is not None:
            verdicts = [p.verdict() for p in ended.paired]
            verdicts += [s.halted for s in ended.summaries if s.halted]
            self.verdicts.setText(plain("\n".join(verdicts)))
        if self._failures:
            self.table.setToolTip(plain_tooltip(plain("\n".join(self._failures[-10:]))))

    def _fill(self, summaries) -> None:
        """The result table and the per-template table from ``summaries``."""
        for r, cells in enumerate(report.summary_cells(summaries)):
            for c, text in enumerate(cells):
                item = self.table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    if c >= 2:
                        item.setTextAlignment(
                            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                        )
                    self.table.setItem(r, c, item)
                item.setText(plain(text))
                if c == 0:
                    item.setToolTip(plain_tooltip(plain(text)))
        self._show_templates(summaries)

    def _fit_table(self) -> None:
        """The result table as tall as its rows: the template table takes the rest."""
        self.table.resizeRowsToContents()
        height = self.table.horizontalHeader().sizeHint().height() + 2 * self.table.frameWidth()
        height += sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        self.table.setFixedHeight(height)

    def _show_templates(self, summaries) -> None:
        """Accuracy per question template (rows) and profile (columns)."""
        names = sorted({t for s in summaries for t in s.by_template})
        if self.templates.rowCount() != len(names):
            self.templates.setRowCount(len(names))
        self.templates.setVerticalHeaderLabels([plain(t) for t in names])
        for r, name in enumerate(names):
            for c, s in enumerate(summaries):
                v = s.by_template.get(name)
                text = f"{v.correct}/{v.n}  ({v.accuracy * 100:.0f} %)" if v else "–"
                item = self.templates.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    self.templates.setItem(r, c, item)
                item.setText(text)
        self._fit_templates()

    def _fit_templates(self, *_: Any) -> None:
        """The template table no taller than its rows (the space left goes below the
        verdicts, not to an empty grid)."""
        t = self.templates
        header = t.horizontalHeader()
        height = max(header.height(), header.sizeHint().height()) + 2 * t.frameWidth()
        height += t.verticalHeader().length()
        if t.horizontalScrollBar().isVisible():
            height += t.horizontalScrollBar().sizeHint().height()
        t.setMaximumHeight(max(height, 4 * t.verticalHeader().defaultSectionSize()))

    def _ended_line(self, ended: ScoreEnded) -> str:
        kept = " Kept in the history." if self.history is not None else ""
        if ended.state == "done":
            return f"Finished: every item scored.{kept}"
        if ended.state == "stopped":
            return f"Stopped: what was scored is kept; Score continues the run.{kept}"
        return (
            "Not every item was scored (failures, or a server that stopped answering); "
            f"Score continues the run.{kept}"
        )

    # -- earlier runs ----------------------------------------------------------------------

    def refresh_earlier(self) -> None:
        """List the runs the history keeps (newest first)."""
        self.earlier.clear()
        self.earlier.addItem("(choose one to show its scores)", None)
        if self.history is None:
            self.earlier.setEnabled(False)
            return
        import sqlite3
        import time

        from kanoa_desktop.core.history.scores import ScoreRecords

        try:
            runs = ScoreRecords(self.history).list_runs()
        except sqlite3.Error as exc:
            self.message.setText(f"Earlier runs cannot be read: {exc}.")
            runs = []
        for r in runs:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.updated))
            self.earlier.addItem(plain(f"{when} · {r.title} · {r.state}, {r.scored} scored"),
                                 r.id)  # fmt: skip
        self.earlier.setEnabled(bool(runs))

    def show_earlier(self, run_id: int) -> bool:
        """Show a kept run's scores (read only: Score with the same choices continues it)."""
        if self.busy or self.history is None:
            return False
        from kanoa_desktop.core.history.scores import ScoreRecords

        stored = ScoreRecords(self.history).load(run_id)
        if stored is None:
            self.message.setText("That run is no longer in the history.")
            return False
        summaries, paired = stored_summaries(stored)
        self.run = None
        self.last = None
        self.table.setRowCount(len(summaries))
        self._fit_table()
        self.templates.setRowCount(0)
        self.templates.setColumnCount(len(summaries))
        self.templates.setHorizontalHeaderLabels([plain(s.label) for s in summaries])
        self._fill(summaries)
        self.verdicts.setText(plain("\n".join(p.verdict() for p in paired)))
        self.progress_label.setText(plain(f"{stored.title} ({stored.state}), from the history."))
        self.export_button.setEnabled(False)
        return True

    def _earlier_chosen(self, index: int) -> None:
        run_id = self.earlier.itemData(index)
        if run_id is not None:
            self.show_earlier(int(run_id))

    # -- export ----------------------------------------------------------------------------

    def choose_export(self) -> None:
        dialog = QFileDialog(self, "Export the scores")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilters(["Markdown (*.md)", "HTML (*.html)", "CSV (*.csv)"])
        dialog.fileSelected.connect(lambda path: self.export_to(path))
        self._dialog = dialog
        dialog.open()

    def export_to(self, path: str | Path) -> asyncio.Task | None:
        """Write the report (format by suffix; Markdown when there is none) off the GUI
        thread; returns the task (its result is the path, or None on failure)."""
        if self.run is None:
            return None
        path = Path(path)
        if path.suffix.lower() not in report.SUFFIXES:
            path = path.with_name(path.name + ".md")
        run = self.run

        async def write() -> Path | None:
            try:
                written = await self._cpu(lambda: report.write(run, path))
            except KanoaError as err:
                self.message.setText(f"{err.message} {err.hint}".strip())
                return None
            self.last_report = written
            self.message.setText(plain(f"Exported to {written}"))
            return written

        self._export_task = asyncio.ensure_future(write())
        return self._export_task

    # -- closing ---------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop a running score and wait until its questions are recorded."""
        self._timer.stop()
        if self.run is not None:
            self.run.stop()
        for task in (self._task, self._export_task):
            if task is not None:
                with contextlib.suppress(Exception):
                    await task

    @guarded()
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        # Nothing runs unseen: closing stops the run (what was scored is kept).
        if self.run is not None and self.busy:
            self.run.stop()
        self._timer.stop()
        super().closeEvent(event)
