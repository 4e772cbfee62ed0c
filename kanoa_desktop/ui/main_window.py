"""The main window: inputs on the left, the streamed answer on the right, a live status bar
and docks (GPU and server, knowledge base, history, usage).

The window is an adapter. A question runs in a :class:`~kanoa_desktop.core.ask.pipeline.
ConversationRunner` (core, no Qt), which reports typed events; the window renders them.
Inputs load through :class:`~kanoa_desktop.ui.input_loader.InputLoader` on a worker pool,
the GPU panel's poller is managed by :class:`~kanoa_desktop.ui.monitor_host.MonitorHost`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QSettings, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMainWindow, QPlainTextEdit

from kanoa_desktop import APP_NAME
from kanoa_desktop.core.ask.prompts import DEFAULT_SYSTEM_PROMPT
from kanoa_desktop.core.config import paths
from kanoa_desktop.core.config.profiles import Profile, ProfileStore, fleet_prometheus_url
from kanoa_desktop.core.config.secrets import KeyStore
from kanoa_desktop.core.lazy import LazyModule
from kanoa_desktop.ui import window_layout as layout
from kanoa_desktop.ui.monitor_host import MonitorHost
from kanoa_desktop.ui.qt_guard import guarded
from kanoa_desktop.ui.window_actions import build_actions
from kanoa_desktop.ui.window_parts import DeferredParts, P, dialogs

if TYPE_CHECKING:
    # Not imported at start-up: a QEvent subclass builds QEvent.Type (179 members).
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    from kanoa_desktop.core.ask.outbox import Outbox
    from kanoa_desktop.core.inputs.figures import PreparedFigure
    from kanoa_desktop.core.inputs.tables import LoadedTable

# Loaded after the first paint, on a worker thread (issue 18: the window shows first).
E = LazyModule("kanoa_desktop.core.endpoint.errors")
_tables = LazyModule("kanoa_desktop.core.inputs.tables")
_figures = LazyModule("kanoa_desktop.core.inputs.figures")

log = logging.getLogger(__name__)


class MainWindow(DeferredParts, QMainWindow):
    """The application window. Create it on a running (or soon running) qasync loop.

    It shows in two phases (issue 18): the constructor builds what the first frame shows
    (inputs, answer, status bar, toolbar, GPU panel); the rest are
    :class:`~kanoa_desktop.ui.window_parts.DeferredParts`, built after the first paint.
    """

    closed = Signal()  # after the window closed: the app then awaits shutdown()

    def __init__(
        self,
        *,
        profile_name: str | None = None,
        store: ProfileStore | None = None,
        keys: KeyStore | None = None,
    ) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.keys = keys or KeyStore()
        self.store = store or ProfileStore(keys=self.keys)
        store_problems = self.store.load() if store is None else []
        if profile_name and self.store.get(profile_name):
            self.store.set_active(profile_name)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kanoa-cpu")
        self._tasks: set[asyncio.Task] = set()
        self._retired: list = []  # stopped runners, still ending their turn
        self.table_plot: PreparedFigure | None = None
        self._context_length: int | None = None
        self._asked_text = ""  # the question field's text when it was asked
        self._settings = QSettings(
            str(paths.config_dir() / "window.ini"), QSettings.Format.IniFormat
        )
        self._closing = False
        self._misc_http = None  # httpx client for side jobs (benchmark metrics), made lazily
        self._kb_profile_id = self.store.active.id

        self._init_deferred()
        self._apply_appearance()  # before the widgets: nothing to restyle yet
        layout.build_layout(self)
        build_actions(
            self,
            (self.gpu_dock, self.fleet_dock, self.kb_dock, self.history_dock, self.usage_dock),
        )
        # Its panel is attached after the first paint (window_parts: gpu_panel).
        self.monitor = MonitorHost(None, self.spawn, ready=self._started.wait)
        self._restore_state()
        self._on_profile_changed(self.store.active)
        self._apply_monitor_preferences()
        QTimer.singleShot(0, lambda: self._closing or self.spawn(self._finish_start()))
        for problem in store_problems:
            self.banner.show_message("Settings problem", problem.message)


    # ------------------------------------------------------------------ construction

    def _restore_state(self) -> None:
        for key, restore in (("geometry", self.restoreGeometry), ("windowState", self.restoreState),
                             ("splitter", self.splitter.restoreState)):  # fmt: skip
            value = self._settings.value(key)
            if isinstance(value, QByteArray) and not value.isEmpty():
                restore(value)

    def _save_state(self) -> None:
        self._settings.setValue("geometry", self.saveGeometry())
        self._settings.setValue("windowState", self.saveState())
        self._settings.setValue("splitter", self.splitter.saveState())
        self._settings.sync()

    @property
    def last_folder(self) -> str:
        return str(self._settings.value("lastFolder", str(Path.home())))

    @property
    def profile(self) -> Profile:
        return self.store.active

    @property
    def streaming(self) -> bool:
        return self._busy()  # answering, or a question waiting for start-up to finish

    @property
    def conversation(self):
        return self.runner.conversation

    @property
    def outbox(self) -> Outbox:
        """What the conversation sends: its figures, table, context and focus (the inputs
        panel shows it; Ctrl+N starts a new, empty one)."""
        return self.runner.outbox

    @property
    def stats(self):
        return self.runner.stats

    @property
    def last_request(self) -> dict[str, Any] | None:
        return self.runner.last_request

    @property
    def _conversation_id(self) -> int | None:
        return self.runner.conversation_id

    # ------------------------------------------------------------------ tasks

    def spawn(self, coro) -> asyncio.Task:
        """Run a coroutine on the loop, keep it referenced, report its failures."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not self._closing:
            log.error("background task failed", exc_info=exc)
            self.banner.show_error(P.as_error(exc), can_retry=False)

    async def run_cpu(self, fn, *args):
        """Run CPU work (decoding, parsing) on the worker pool, off the GUI thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ------------------------------------------------------------------ the conversation

    def _grounding(self):
        """The knowledge base for this question: none when its switch is cleared."""
        return self.services.knowledge_base() if self.inputs.knowledge_base_wanted else None

    def _new_runner(self, **kwargs):
        return P.ConversationRunner(
            self.profile,
            # Left out for a question whose "Ground in the knowledge base" is cleared.
            self.services.replace(knowledge_base=self._grounding),
            listener=self._on_event,
            system_prompt=self.inputs.system_prompt.toPlainText().strip() or None,
            **kwargs,
        )

    def _replace_runner(self, why: str, **kwargs) -> None:
        """Stop the running turn (it is recorded in its own conversation, with its partial
        text and stats), detach it from the view, and start a clean conversation."""
        self._cancel_queued()
        old = self.runner
        old.unsubscribe(self._on_event)
        old.subscribe(self._on_background_event)
        old.stop(why)
        if old.busy:
            self._retired.append(old)
        self._retired = [r for r in self._retired if r.busy]
        self._status_timer.stop()
        self._set_busy(False)
        self.runner = self._new_runner(**kwargs)

    def _on_background_event(self, ev) -> None:
        # A stopped conversation's turn ended after the view moved on: refresh the lists.
        if isinstance(ev, P.TurnEnded) and not self._closing:
            self._refresh_lists()

    def _refresh_lists(self) -> None:
        # A list not built yet reads the store when it is.
        for part in ("history_panel", "usage_view"):
            if (view := self._built(part)) is not None:
                view.refresh()

    def _on_event(self, ev) -> None:  # noqa: C901 - one dispatch on the event type
        if ev.runner is not self.runner or self._closing:
            return
        if isinstance(ev, P.TurnStarted):
            self._set_busy(True)
            self.status.reset()
            self.sources.clear()
        elif isinstance(ev, P.StateChanged):
            if ev.state not in ("done", "stopped", "error"):
                self.status.set_state(ev.state, ev.detail)
        elif isinstance(ev, P.ModelResolved):
            self.status.set_model(ev.model)
            self._context_length = ev.context_length
            self._update_vision_note()
        elif isinstance(ev, P.Notice):
            if not (ev.title == "Figures not sent" and self.vision_note.isVisible()):
                self.banner.show_message(ev.title, ev.message, ev.hint)  # not said twice
        elif isinstance(ev, P.Asked):
            if not self.inputs.knowledge_base_wanted and self.kb_panel.folders:
                self.sources.show_left_out()  # said under the answer, not silently skipped
            self.answer.begin_answer(P.you_markdown(ev.asked))
            self.inputs.figures.show_sent(self.outbox.sent_with)
            self._status_timer.start()
            self._refresh_status()
        elif isinstance(ev, P.AnswerDelta):
            self.answer.append(ev.text)
        elif isinstance(ev, P.Progress):
            self.status.show_activity(ev.activity)  # what the server is doing
        elif isinstance(ev, P.Sources):
            self.sources.set_grounding(ev.grounding, ev.answer)
        elif isinstance(ev, P.TurnEnded):
            self._turn_ended(ev)

    def _turn_ended(self, ev) -> None:
        self._status_timer.stop()
        if ev.stats is not None:  # the question was asked: close its answer in the view
            self.answer.end_answer(ev.note)
            if ev.reasoning.strip() and not ev.answer.strip():
                show = getattr(self.answer, "show_reasoning", None)
                if callable(show):
                    show(ev.reasoning)
            self._refresh_status()
            if ev.energy_wh is not None:
                self.status.set_energy(ev.energy_wh, self.profile.electricity_price_per_kwh)
            # llama.cpp's own account of the answer (timings): the GPU panel shows it.
            usage, poller = ev.stats.usage, self.monitor.poller
            if usage is not None and usage.server_timings and poller is not None:
                poller.record_timings(usage.server_timings)
        self.status.set_state(ev.state, ev.error.title if ev.error else "", ev.finish_reason)
        self._set_busy(False)
        if (
            ev.state in ("done", "stopped")
            and self.inputs.question.toPlainText() == self._asked_text
        ):
            self.inputs.question.clear()  # only what was asked: never text typed since
        if ev.error is not None:
            if isinstance(ev.error, E.VisionUnsupported):
                self._update_vision_note()
            self.banner.show_error(ev.error, can_retry=ev.can_retry)
        self._refresh_lists()

    def _set_busy(self, busy: bool) -> None:
        self.interpret_action.setEnabled(not busy)
        self.stop_action.setEnabled(busy)

    def _refresh_status(self) -> None:
        stats = self.runner.stats
        if stats is None:
            return
        costs, live = self.services.costs, self.runner.busy  # a finished answer is counted
        self.status.show_stats(
            stats,
            time.monotonic(),
            context_length=self._context_length,
            max_tokens=self.profile.max_tokens,
            session_cost=costs.cost + (stats.cost if live else 0.0),
            session_estimated=costs.estimated or (live and stats.cost > 0 and stats.estimated),
        )

    def current_inputs(self) -> Outbox:
        """The outbox with the context and focus fields as they are now."""
        outbox = self.outbox
        outbox.context, outbox.focus = self.inputs.context.toPlainText(), self.inputs.focus.text()
        return outbox

    def interpret(self) -> None:
        if self.streaming:
            return
        outbox, question = self.current_inputs(), self.inputs.question.toPlainText()
        if not (self.conversation.turns or outbox.figures or outbox.table or question.strip()):
            self.banner.show_message(
                "Nothing to interpret",
                "Add a figure or a table, or type a question.",
                "Drop a file on the window, paste one with Ctrl+V, or open one with Ctrl+O.",
            )
            return
        self.banner.hide()
        self._asked_text = question
        self.runner.profile = self.profile
        self.runner.conversation.system_prompt = (
            self.inputs.system_prompt.toPlainText().strip() or DEFAULT_SYSTEM_PROMPT
        )
        self._start_turn(question)

    def retry(self) -> None:
        """Ask the failed question again: its turn is taken out and the question resent."""
        self.banner.hide()
        if not self.runner.can_retry():
            return
        if self.runner.drop_failed_turn():
            self.answer.set_conversation_markdown(self._conversation_markdown())
        self.runner.profile = self.profile
        self._start_turn("", retry=True)

    def stop(self) -> None:
        self._stop_turn()

    def _conversation_markdown(self) -> str:
        return P.conversation_markdown(self.conversation)

    def new_conversation(self, why: str = "you started a new conversation", **kwargs) -> None:
        """Start an empty conversation (Ctrl+N): no figure, table, context or focus; the
        running answer stops and is recorded in its own."""
        self._replace_runner(why if isinstance(why, str) else "you started a new conversation",
                             **kwargs)  # fmt: skip
        self.answer.clear_conversation()
        self.sources.clear()
        self.inputs.show_outbox(self.outbox)
        self.table_plot = None
        self.banner.hide()
        self.status.reset()
        self.status.set_state("idle")
        self._update_vision_note()

    def reopen_conversation(self, conversation_id: int) -> None:
        """Restore a stored conversation: figures, table summary, turns; follow-ups go on."""
        comparison_id = self.history.comparison_of(conversation_id)
        if comparison_id is not None:  # reopens as the whole comparison, in its own window
            dialogs.reopen_comparison(self, comparison_id)
            return
        conv = self.history.load_conversation(conversation_id)
        if conv is None:
            self.banner.show_message("Conversation not found", "It may have been deleted.")
            return
        if conv.system_prompt:
            self.inputs.system_prompt.setPlainText(conv.system_prompt)
        conversation, outbox = P.reopened(conv)
        self.new_conversation("you opened another conversation", conversation=conversation,
                              conversation_id=conv.id, outbox=outbox)  # fmt: skip
        self.answer.set_conversation_markdown(self._conversation_markdown())
        self.statusBar().showMessage(f"Reopened “{conv.title}”.", 4000)

    # ------------------------------------------------------------------ inputs

    def open_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        from kanoa_desktop.ui.input_loader import FILE_FILTER

        dlg = QFileDialog(
            self, "Open figures, a table, a PDF or a notebook", self.last_folder, FILE_FILTER
        )
        dlg.setObjectName("openDialog")
        dlg.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dlg.filesSelected.connect(lambda files: self.open_paths([Path(f) for f in files]))
        dlg.open()  # never exec(): no nested event loop under qasync

    def open_forwarded(self, files: list[str]) -> None:
        """Files handed over by a second launch or the OS: open them and come to the front."""
        if self.isMinimized():
            self.showNormal()
        self.raise_()
        self.activateWindow()
        if files:
            self.open_paths([Path(f) for f in files])

    def open_paths(self, paths_: list[Path]) -> None:
        for p in paths_:
            self._settings.setValue("lastFolder", str(p.parent if p.is_file() else p))
        self.loader.open_paths(list(paths_))

    def _open_document(self, item) -> None:
        self.picker = dialogs.open_document(self, item)

    def _input_loaded(self, item, summary: str) -> None:
        if isinstance(item, _tables.LoadedTable):
            if self.outbox.table is not item:  # not shown yet by _table_read
                self._table_read(item)
            self.outbox.table_summary = summary
        elif isinstance(item, _figures.PreparedFigure):
            self.add_figure(item)
        else:
            self._open_document(item)

    def _table_read(self, item) -> None:
        # Shown before its summary is made; a question asked meanwhile gets the summary
        # made by the pipeline (ConversationRunner._run).
        outbox = self.outbox
        outbox.set_table(item)
        self.inputs.table.set_table(item)
        # Shown on the next turn: its layout and paint are not in one block with set_table.
        QTimer.singleShot(0, lambda: outbox.table is item and self.inputs.set_has_table(True))
        # Warnings say rows were skipped or values read differently; the other notes
        # (how the file was read, date columns) stay in the table's caption.
        if item.warnings:
            self.banner.show_message(f"{item.name}: read with warnings", " ".join(item.warnings))

    def _show_loading(self, text: str) -> None:
        self.inputs.loading.setText(text)
        self.inputs.loading.setVisible(bool(text))

    def add_figure(self, fig: PreparedFigure, code: str = "") -> None:
        """Add a figure to the conversation (``code``: the notebook cell that drew it): it
        goes with the next question, then stays in the conversation."""
        if not self.outbox.add_figure(fig, code):
            self.statusBar().showMessage(f"{fig.name} is in this conversation already.", 4000)
            return
        self.inputs.figures.add_figure(fig)
        self.inputs.refresh()
        self._update_vision_note()
        notes = [n for n in getattr(fig, "notes", ()) if "refused" in n or "blank" in n]
        if notes:
            self.statusBar().showMessage(f"{fig.name}: {'; '.join(notes)}", 8000)

    def _figure_removed(self, index: int) -> None:
        self.outbox.remove_figure(self.outbox.figures[index])  # the card of one not sent yet
        if self.table_plot is not None and self.table_plot not in self.outbox.figures:
            self.table_plot = None
        self.inputs.refresh()
        self._update_vision_note()

    def _plot_requested(self, x, y, kind: str) -> None:
        if self.outbox.table is not None:
            self.spawn(self._make_plot(self.outbox.table, x, y, kind))

    async def _make_plot(self, table: LoadedTable, x, y, kind: str) -> None:
        fig = await self.loader.plot(table, x, y, kind)
        if fig is None:
            return
        # One quick plot at a time goes with the table: replace the previous one (unless it
        # was sent: then it is in the conversation).
        figs, old = self.outbox.figures, self.table_plot
        index = figs.index(old) if old in figs else None
        if index is not None and self.outbox.remove_figure(old):
            self.inputs.figures.remove_figure(index)
        self.table_plot = fig
        self.add_figure(fig)

    def paste(self) -> None:
        focus = QApplication.focusWidget()
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            return
        wants_text = isinstance(focus, QPlainTextEdit | type(self.inputs.focus))
        if mime.hasImage() or mime.hasUrls():
            self.accept_mime(mime)
        elif wants_text and focus is not None:
            focus.paste()
        elif mime.hasText():
            self.banner.show_message(
                "Nothing to paste",
                "The clipboard holds text, not a figure or a file.",
                "Copy an image or a file and paste again, or paste the text into a field.",
            )

    def accept_mime(self, mime) -> bool:
        return self.loader.accept_mime(mime)

    @guarded()
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage():
            event.acceptProposedAction()
            self.inputs.drop.set_dragging(True)

    @guarded()
    def dragLeaveEvent(self, event) -> None:  # noqa: N802
        self.inputs.drop.set_dragging(False)

    @guarded()
    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        self.inputs.drop.set_dragging(False)
        if self.accept_mime(event.mimeData()):
            event.acceptProposedAction()

    # ------------------------------------------------------------------ profile & settings

    def _on_profile_changed(self, profile: Profile) -> None:
        # Parts not built yet read the active profile when they are.
        if self.streaming:
            # The answer belongs to the old endpoint: stop and record it, start clean.
            self.new_conversation(f"you switched to {profile.name}")
        if (runner := self._built("runner")) is not None:
            runner.profile = profile
        self.status.set_model(profile.model or "(first model the server lists)")
        if not self.streaming:
            self.status.set_state("idle")  # an old endpoint's error does not carry over
        self._update_vision_note()
        self.monitor.watch(profile, self.store.preferences)
        self._show_fleet(profile)
        self._kb_profile_id = profile.id
        folders = [str(f) for f in getattr(profile, "kb_folders", ()) or ()]
        if (kb := self._built("kb_panel")) is not None:
            kb.apply_profile(folders, profile.kb_follow_links)
        if not folders:
            self.sources.clear()
        if runner is None or not runner.conversation.turns:
            # The box starts from the profile's system prompt (edits apply to this window).
            self.inputs.system_prompt.setPlainText(profile.system_prompt or DEFAULT_SYSTEM_PROMPT)

    def _kb_follow_links_changed(self, on: bool) -> None:
        self._kb_changed(kb_follow_links=on)

    def _kb_folders_changed(self, folders: list) -> None:
        self._kb_changed(kb_folders=tuple(str(f) for f in folders))

    def _kb_changed(self, **values) -> None:
        # Knowledge-base settings belong to the profile that was active when they changed.
        profile = self.store.get_by_id(getattr(self, "_kb_profile_id", self.profile.id))
        if profile is not None and any(getattr(profile, k) != v for k, v in values.items()):
            self.store.update(profile.with_user_values(**values))
            if (problem := self.store.save()) is not None:
                self.banner.show_message("Settings not saved", problem.message)

    def apply_preferences(self) -> None:
        """Apply the app-wide preferences now: theme, font size, GPU panel, poller."""
        self._apply_appearance()
        self._apply_monitor_preferences()

    def _apply_appearance(self) -> None:
        prefs = self.store.preferences
        try:
            from kanoa_desktop.ui.theme import apply_appearance
        except ImportError:
            return
        apply_appearance(QApplication.instance(), prefs.theme, prefs.font_size_pt)

    def _apply_monitor_preferences(self) -> None:
        prefs = self.store.preferences
        self.gpu_dock.setVisible(bool(prefs.gpu_panel_visible))
        self.monitor.watch(self.profile, prefs)
        self._show_fleet(self.profile)

    def _show_fleet(self, profile: Profile) -> None:
        """Point the Fleet view at the app's Prometheus (or the profile's own)."""
        if (fleet := self._built("fleet_panel")) is not None:
            fleet.set_prometheus_url(fleet_prometheus_url(profile, self.store.preferences))

    def _vision_block(self, profile: Profile | None = None) -> str | None:
        if profile is not None:
            self.runner.profile = profile
        return self.runner.images_blocked()

    def _update_vision_note(self) -> None:
        reason = self._vision_block() if self.inputs.figures.count() > 0 else None
        show = bool(reason)
        self.vision_note.setText(f"⚠ {reason}" if show else "")
        self.vision_note.setVisible(show)

    def copy_answer(self) -> None:
        QGuiApplication.clipboard().setText(self.answer.markdown)
        self.statusBar().showMessage("Conversation copied as Markdown.", 3000)

    def show_request(self) -> None:
        self.request_dialog = dialogs.show_request(self)

    def open_settings(self) -> None:
        self.settings_dialog = dialogs.open_settings(self)

    def _profiles_saved(self) -> None:
        self.clients.forget_models()
        self.profile_switcher.refresh()
        self._on_profile_changed(self.store.active)
        self.apply_preferences()

    def open_benchmark(self) -> None:
        self.spawn(dialogs.open_benchmark(self))

    def open_compare(self) -> None:
        dialogs.open_compare(self)

    def open_score(self) -> None:
        dialogs.open_score(self)

    def open_batch(self) -> None:
        dialogs.open_batch(self)

    # ------------------------------------------------------------------ shutdown

    @guarded()
    def closeEvent(self, event) -> None:  # noqa: N802
        self._save_state()
        self._closing = True
        if (runner := self._built("runner")) is not None:
            runner.stop("the window closed")
        super().closeEvent(event)
        self.closed.emit()


__all__ = ["MainWindow"]
