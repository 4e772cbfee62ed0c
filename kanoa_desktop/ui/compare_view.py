"""The comparison window: 2 to 4 answers side by side, rendered from a core Comparison.

A :class:`CompareView` is a non-modal top-level window (``show()``, never ``exec()``). It
owns a :class:`~kanoa_desktop.core.ask.compare.Comparison` per session of questions and
renders its events: each pane is an :class:`~kanoa_desktop.ui.answer_view.AnswerView` with
its own one-line status (state, TTFT, tokens/s, tokens, cost, energy) and Stop button.
Above the panes, a profile chooser per pane (and an optional model, to compare models of
one server); below, the question field (the first question takes the main window's inputs,
later ones are follow-ups to every pane), Ask, Stop all, New, Export and the comparison
table, filled when every pane has ended.

The status line is refreshed by one timer a few times a second, never per token; the
answers stream through AnswerView's own buffered flush, so four panes at 2,000 tokens/s
each stay smooth (``make bench``: bench_compare).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.ask import pipeline as P
from kanoa_desktop.core.ask.compare import (
    MAX_PANES,
    MIN_PANES,
    TABLE_HEADERS,
    Comparison,
    ComparisonEnded,
    table_cells,
)
from kanoa_desktop.core.ask.outbox import Outbox
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.ui.answer_view import AnswerView
from kanoa_desktop.ui.plain_text import make_labels_plain
from kanoa_desktop.ui.qt_guard import guarded
from kanoa_desktop.ui.status_bar import STATES, state_text

log = logging.getLogger(__name__)

STATUS_INTERVAL_MS = 250


class ComparePane(QFrame):
    """One pane: a profile chooser, its answer, a status line and a Stop button."""

    stopRequested = Signal(int)

    def __init__(self, index: int, store: ProfileStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = index
        self.setObjectName(f"comparePane{index}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        head = QHBoxLayout()
        self.profile = QComboBox()
        self.profile.setObjectName("paneProfile")
        self.profile.setAccessibleName(f"Profile of pane {index + 1}")
        self.profile.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.profile.setMinimumContentsLength(10)
        for p in store.profiles:
            self.profile.addItem(p.name, p.id)
        self.model = QLineEdit()
        self.model.setObjectName("paneModel")
        self.model.setAccessibleName(f"Model of pane {index + 1}")
        self.model.setPlaceholderText("model (profile's)")
        self.model.setToolTip(
            "Leave empty for the profile's model; name another model of the same server to "
            "compare models of one server."
        )
        self.stop = QToolButton()
        self.stop.setObjectName("paneStop")
        self.stop.setText("Stop")
        self.stop.setToolTip(f"Stop pane {index + 1}; the others go on")
        self.stop.setEnabled(False)
        self.stop.clicked.connect(lambda: self.stopRequested.emit(self.index))
        head.addWidget(self.profile, 2)
        head.addWidget(self.model, 2)
        head.addWidget(self.stop)
        lay.addLayout(head)
        self.title = QLabel()
        self.title.setObjectName("paneTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.title)
        self.answer = AnswerView()
        self.answer.setPlaceholderText("This model's answer appears here.")
        lay.addWidget(self.answer, 1)
        self.status = QLabel(STATES["idle"])
        self.status.setObjectName("paneStatus")
        self.status.setAccessibleName(f"Status of pane {index + 1}")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        make_labels_plain(self)  # its title and status quote models and servers
        self.state = "idle"
        self.finish_reason: str | None = None
        self.energy_wh: float | None = None

    def chosen_profile(self, store: ProfileStore) -> Profile | None:
        profile = store.get_by_id(self.profile.currentData())
        if profile is None:
            return None
        model = self.model.text().strip()
        if model:
            profile = dataclasses.replace(profile, model=model)
        return profile

    def set_choosers_enabled(self, enabled: bool) -> None:
        self.profile.setEnabled(enabled)
        self.model.setEnabled(enabled)

    def show_status(self, runner: P.ConversationRunner | None, detail: str = "") -> None:
        text = state_text(self.state, detail, self.finish_reason)
        stats = runner.stats if runner is not None else None
        if stats is not None:
            now = time.monotonic()
            mark = "~" if stats.estimated else ""
            bits = [text]
            if stats.ttft_s is not None:
                bits.append(f"TTFT {stats.ttft_s:.2f} s")
            # While it streams, up to now; once over, up to its last token (as the table).
            tps = stats.tokens_per_s(now if runner.busy else None)
            if tps:
                bits.append(f"{tps:,.1f} tok/s")
            bits.append(f"{mark}{stats.prompt_tokens:,} in / {mark}{stats.output_tokens:,} out")
            bits.append(format_cost(stats.cost, stats.estimated))
            if self.energy_wh is not None:
                bits.append(f"{self.energy_wh:.3f} Wh")
            text = " · ".join(bits)
        self.status.setText(text)
        self.status.setProperty("state", self.state)


class CompareView(QWidget):
    """The comparison window; see the module docstring.

    ``store`` gives the profiles to choose from; ``services`` are every pane's (its history
    records the comparison, its ``run_cpu`` runs exports off the GUI thread); ``inputs``
    returns what the first question carries (the main window's figures, table, context and
    focus).
    """

    comparisonEnded = Signal(object)  # ComparisonEnded

    def __init__(
        self,
        store: ProfileStore,
        services: Services,
        *,
        inputs: Callable[[], Outbox] = Outbox,
        panes: int = MIN_PANES,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("compareView")
        self.setWindowTitle("Compare models")
        self.store = store
        self.services = services
        self.pool, self.history = services.pool, services.history
        self.inputs_provider = inputs
        self.comparison: Comparison | None = None
        self.last: ComparisonEnded | None = None
        self._task: asyncio.Task | None = None
        self._export_task: asyncio.Task | None = None
        self._dialog: QFileDialog | None = None
        self._asked = ""
        self._pending: dict[int, tuple] = {}
        self._model_tasks: set[asyncio.Task] = set()

        root = QVBoxLayout(self)
        root.setContentsMargins(8, 8, 8, 8)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Panes:"))
        self.add_pane_button = QToolButton()
        self.add_pane_button.setText("+")
        self.add_pane_button.setToolTip("Add a pane (at most 4)")
        self.add_pane_button.setAccessibleName("Add a pane")
        self.add_pane_button.clicked.connect(self.add_pane)
        self.remove_pane_button = QToolButton()
        self.remove_pane_button.setText("−")
        self.remove_pane_button.setToolTip("Remove the last pane (at least 2)")
        self.remove_pane_button.setAccessibleName("Remove a pane")
        self.remove_pane_button.clicked.connect(self.remove_pane)
        bar.addWidget(self.add_pane_button)
        bar.addWidget(self.remove_pane_button)
        bar.addStretch(1)
        self.message = QLabel()
        self.message.setObjectName("compareMessage")
        self.message.setWordWrap(True)
        bar.addWidget(self.message, 4)
        root.addLayout(bar)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        root.addWidget(self.splitter, 1)
        self.panes: list[ComparePane] = []

        ask = QHBoxLayout()
        self.question = QLineEdit()
        self.question.setObjectName("compareQuestion")
        self.question.setAccessibleName("Question for every pane")
        self.question.setPlaceholderText(
            "Question (the first uses the main window's figures, table, context and focus; "
            "later ones are follow-ups to every pane)"
        )
        self.question.returnPressed.connect(self.ask)
        self.ask_button = QPushButton("Ask all")
        self.ask_button.setDefault(True)
        self.ask_button.clicked.connect(self.ask)
        self.stop_button = QPushButton("Stop all")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop_all)
        self.new_button = QPushButton("New")
        self.new_button.setToolTip("Start a new comparison (choose other profiles)")
        self.new_button.clicked.connect(self.new_comparison)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Markdown, HTML or PDF, one reproducibility block per model")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.choose_export)
        for w in (self.question,):
            ask.addWidget(w, 1)
        for b in (self.ask_button, self.stop_button, self.new_button, self.export_button):
            ask.addWidget(b)
        root.addLayout(ask)

        self.table = QTableWidget(0, len(TABLE_HEADERS))
        self.table.setObjectName("compareTable")
        self.table.setAccessibleName("Comparison")
        self.table.setHorizontalHeaderLabels(list(TABLE_HEADERS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        self.table.hide()
        root.addWidget(self.table)

        self._timer = QTimer(self)
        self._timer.setInterval(STATUS_INTERVAL_MS)
        self._timer.timeout.connect(self._refresh_status)
        for _ in range(max(MIN_PANES, min(MAX_PANES, panes))):
            self.add_pane()
        make_labels_plain(self)  # the message line quotes servers' notices and errors
        self.resize(1200, 760)

    # -- panes -----------------------------------------------------------------------------

    def add_pane(self) -> None:
        if len(self.panes) >= MAX_PANES or self.comparison is not None:
            return
        pane = ComparePane(len(self.panes), self.store)
        # Pre-select different profiles, so two panes do not start identical.
        if pane.profile.count():
            pane.profile.setCurrentIndex(len(self.panes) % pane.profile.count())
        pane.stopRequested.connect(self.stop_pane)
        pane.profile.currentIndexChanged.connect(lambda *_, p=pane: self._offer_models(p))
        self.panes.append(pane)
        self.splitter.addWidget(pane)
        self.splitter.setSizes([1000] * len(self.panes))
        self._update_buttons()
        self._offer_models(pane)

    def _offer_models(self, pane: ComparePane) -> asyncio.Task | None:
        """Offer the models the pane's server lists as completions of its model field (to
        compare models of one server); fetched once per endpoint, off the GUI's way."""
        profile = self.store.get_by_id(pane.profile.currentData())
        if profile is None:
            return None

        def offer(models) -> None:
            completer = QCompleter([m.id for m in models], pane.model)
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            pane.model.setCompleter(completer)

        cached = self.pool.cached_models(profile.api_base)
        if cached is not None:
            offer(cached)
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return None  # no loop yet (built before the app's loop runs)

        async def fetch() -> None:
            try:
                await self.pool.resolve_model(profile)
            except Exception:  # noqa: BLE001 - only a convenience; asking reports errors
                return
            models = self.pool.cached_models(profile.api_base)
            if models is not None and pane.profile.currentData() == profile.id:
                offer(models)

        task = asyncio.ensure_future(fetch())
        self._model_tasks.add(task)
        task.add_done_callback(self._model_tasks.discard)
        return task

    def remove_pane(self) -> None:
        if len(self.panes) <= MIN_PANES or self.comparison is not None:
            return
        pane = self.panes.pop()
        pane.setParent(None)
        pane.deleteLater()
        self._update_buttons()

    def set_profiles(self, profiles: list[Profile | tuple[Profile, str]]) -> None:
        """Choose the panes' profiles (and models): for tests and the window's defaults."""
        while len(self.panes) < len(profiles):
            self.add_pane()
        while len(self.panes) > max(MIN_PANES, len(profiles)):
            self.remove_pane()
        for pane, choice in zip(self.panes, profiles, strict=False):
            profile, model = choice if isinstance(choice, tuple) else (choice, "")
            pane.profile.setCurrentIndex(pane.profile.findData(profile.id))
            pane.model.setText(model)

    # -- asking ----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.comparison is not None and self.comparison.busy

    def ask(self) -> asyncio.Task | None:
        """Ask every pane: the first question with the main window's inputs, then
        follow-ups. Returns the running task (None when nothing was started)."""
        if self.busy:
            return None
        text = self.question.text().strip()
        if self.comparison is None:
            profiles = [p.chosen_profile(self.store) for p in self.panes]
            if any(p is None for p in profiles):
                self.message.setText("Every pane needs a profile: create one in Settings.")
                return None
            outbox = self.inputs_provider()
            if not (outbox.figures or outbox.table is not None or text):
                self.message.setText(
                    "Nothing to compare: add a figure or a table in the main window, or type "
                    "a question."
                )
                return None
            self.comparison = Comparison(
                profiles, self.services, listener=self._on_event, outbox=outbox
            )
            for pane, cp in zip(self.panes, self.comparison.panes, strict=True):
                pane.title.setText(cp.label)
                pane.answer.clear_conversation()
        elif not text:
            self.message.setText("Type a follow-up question for every pane.")
            return None
        self.message.setText("")
        self._asked = text
        self.table.hide()
        self._set_busy(True)
        self._task = self.comparison.start(text)
        self._task.add_done_callback(self._ask_done)
        return self._task

    def _ask_done(self, task: asyncio.Task) -> None:
        # State that always comes back: whatever the task ended with.
        self._set_busy(False)
        if not task.cancelled() and task.exception() is not None:
            log.error("comparison failed", exc_info=task.exception())
            self.message.setText(f"The comparison failed: {task.exception()}")

    def stop_pane(self, index: int) -> None:
        if self.comparison is not None:
            self.comparison.stop(index)

    def stop_all(self) -> None:
        if self.comparison is not None:
            self.comparison.stop_all()

    def new_comparison(self) -> None:
        """Forget the current comparison (it stays in the history) and choose again."""
        if self.comparison is not None:
            self.comparison.stop_all()
            self.comparison.unsubscribe(self._on_event)
        self.comparison = None
        self.last = None
        self._pending.clear()
        for pane in self.panes:
            pane.answer.clear_conversation()
            pane.title.setText("")
            pane.state, pane.finish_reason = "idle", None
            pane.energy_wh = None
            pane.show_status(None)
        self.table.hide()
        self.export_button.setEnabled(False)
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self.ask_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        self.new_button.setEnabled(not busy)
        for pane in self.panes:
            pane.set_choosers_enabled(self.comparison is None)
        if busy:
            self._timer.start()
        else:
            self._timer.stop()
            self._refresh_status()
        self._update_buttons()

    def _update_buttons(self) -> None:
        free = self.comparison is None
        self.add_pane_button.setEnabled(free and len(self.panes) < MAX_PANES)
        self.remove_pane_button.setEnabled(free and len(self.panes) > MIN_PANES)

    # -- events ----------------------------------------------------------------------------

    def _pane_for(self, ev) -> ComparePane | None:
        if self.comparison is None:
            return None
        if isinstance(ev, ComparisonEnded):
            return None
        index = self.comparison.pane_of(ev.runner)
        return self.panes[index] if index is not None and index < len(self.panes) else None

    def _on_event(self, ev) -> None:  # noqa: C901 - one dispatch on the event type
        if isinstance(ev, ComparisonEnded):
            if ev.comparison is self.comparison:
                # After the panes' deferred end renders (zero timers fire in order).
                QTimer.singleShot(
                    0,
                    self,
                    lambda: self._show_table(ev) if ev.comparison is self.comparison else None,
                )
            return
        pane = self._pane_for(ev)
        if pane is None:
            return
        if isinstance(ev, P.TurnStarted):
            pane.stop.setEnabled(True)
            pane.energy_wh = None
        elif isinstance(ev, P.StateChanged):
            pane.state = ev.state
            pane.show_status(ev.runner, ev.detail)
        elif isinstance(ev, P.ModelResolved):
            label = self.comparison.panes[pane.index].label
            pane.title.setText(label if label == ev.model else f"{label} — {ev.model}")
        elif isinstance(ev, P.Notice):
            self.message.setText(f"Pane {pane.index + 1}: {ev.title}. {ev.message}")
        elif isinstance(ev, P.Asked):
            self._end_render(pane.index)  # a previous answer's render still pending
            pane.answer.begin_answer(P.you_markdown(ev.asked))
        elif isinstance(ev, P.AnswerDelta):
            pane.answer.append(ev.text)
        elif isinstance(ev, P.TurnEnded):
            pane.stop.setEnabled(False)
            pane.energy_wh = ev.energy_wh
            note = ev.note
            if ev.error is not None:
                note = f"{ev.error.title}: {ev.error.message}" + (
                    f" {ev.error.hint}" if ev.error.hint else ""
                )
            # The full render that closes an answer runs in its own pass of the event loop:
            # four panes ending together would otherwise render back to back in one.
            self._pending[pane.index] = (pane, note, ev.reasoning, ev.stats is not None)
            QTimer.singleShot(0, self, lambda i=pane.index: self._end_render(i))
            pane.state, pane.finish_reason = ev.state, ev.finish_reason
            pane.show_status(ev.runner, ev.error.title if ev.error else "")

    def _end_render(self, index: int) -> None:
        pending = self._pending.pop(index, None)
        if pending is None:
            return
        pane, note, reasoning, asked = pending
        if asked:
            pane.answer.end_answer(note, reasoning=reasoning)
        elif note:
            pane.answer.set_conversation_markdown(pane.answer.markdown + f"\n\n*{note}*")

    def _refresh_status(self) -> None:
        if self.comparison is None:
            return
        for pane, cp in zip(self.panes, self.comparison.panes, strict=False):
            pane.show_status(cp.runner)

    def _show_table(self, ev: ComparisonEnded) -> None:
        self.last = ev
        if self.question.text().strip() == self._asked:
            self.question.clear()  # only what was asked: never text typed since
        cells = table_cells(ev.results)
        self.table.setRowCount(len(cells))
        for r, row in enumerate(cells):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)
                if 0 < c < len(row) - 1:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(r, c, item)
        self.table.resizeRowsToContents()
        height = self.table.horizontalHeader().height() + 2 * self.table.frameWidth()
        height += sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        self.table.setFixedHeight(height)
        self.table.show()
        self.export_button.setEnabled(
            self.history is not None and self.comparison.comparison_id is not None
        )
        self.comparisonEnded.emit(ev)

    # -- a stored comparison ---------------------------------------------------------------

    def show_stored(self, stored) -> None:
        """Show a comparison from the history (``HistoryStore.load_comparison``): each
        pane's conversation, the last question's table; follow-ups continue it and Export
        writes it again."""
        from kanoa_desktop.core.ask.compare import profiles_for_stored, stored_results

        self.new_comparison()
        n = max(MIN_PANES, min(MAX_PANES, len(stored.panes)))
        while len(self.panes) < n:
            self.add_pane()
        while len(self.panes) > n:
            self.remove_pane()
        profiles = profiles_for_stored(stored.panes, self.store)
        if len(profiles) < MIN_PANES:  # a pane never reached a server: nothing to continue
            profiles += profiles[:1] * (MIN_PANES - len(profiles))
        self.set_profiles([(p, c.model) for p, c in zip(profiles, stored.panes, strict=False)])
        self.comparison = Comparison(profiles, self.services, listener=self._on_event, stored=stored)
        for pane, cp, conv in zip(self.panes, self.comparison.panes, stored.panes, strict=False):
            pane.title.setText(f"{cp.label} — {conv.model}" if conv.model else cp.label)
            pane.answer.set_conversation_markdown(P.conversation_markdown(cp.runner.conversation))
            last = next((t for t in reversed(conv.turns) if t.finish_reason != "retried"), None)
            pane.state = last.state if last else "idle"
            pane.finish_reason = last.finish_reason if last else None
            pane.show_status(None, last.error_title or "" if last else "")
        rounds = stored_results(stored.panes, [p.label for p in self.comparison.panes])
        if rounds:
            self._show_table(ComparisonEnded(self.comparison, rounds[-1], []))
        self.setWindowTitle(f"Compare models — {stored.title}")
        self._set_busy(False)

    # -- export ----------------------------------------------------------------------------

    def choose_export(self) -> None:
        """Ask where to export (a non-modal file dialog), then export off the GUI thread."""
        dialog = QFileDialog(self, "Export the comparison")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilters(["Markdown (*.md)", "HTML (*.html)", "PDF (*.pdf)"])
        dialog.fileSelected.connect(lambda path: self.export_to(path))
        self._dialog = dialog
        dialog.open()

    def export_to(self, path: str | Path) -> asyncio.Task | None:
        """Export the comparison to ``path`` (format by suffix); returns the task."""
        if self.comparison is None or self.history is None:
            return None
        from kanoa_desktop.core.ask.compare_report import export_comparison

        comparison = self.comparison

        def work() -> Path:
            stored = comparison.load()
            if stored is None:
                raise RuntimeError("nothing was recorded")
            return export_comparison(stored, path)

        async def run() -> Path | None:
            try:
                written = await self.services.run_cpu(work)
            except Exception as exc:  # noqa: BLE001 - shown, not raised
                self.message.setText(f"Export failed: {getattr(exc, 'message', exc)}")
                return None
            self.message.setText(f"Exported to {written}")
            return written

        self._export_task = asyncio.ensure_future(run())
        return self._export_task

    # -- closing ---------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop every pane and wait until their turns are recorded."""
        self._timer.stop()
        for task in list(self._model_tasks):
            task.cancel()
        if self.comparison is not None:
            await self.comparison.stop_and_wait("the comparison window closed")
        if self._export_task is not None:  # run() shows its own failure
            await asyncio.gather(self._export_task, return_exceptions=True)

    @guarded()
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.comparison is not None:
            self.comparison.stop_all("the comparison window closed")
        self._timer.stop()
        super().closeEvent(event)
