"""The main window: inputs on the left, the streamed answer on the right, a live status bar
and the GPU panel docked beside.

Data flows one way: inputs -> request (core) -> stream of events -> answer view, status bar,
GPU panel markers. Network I/O runs as asyncio tasks on the qasync loop; decoding images and
parsing tables runs on a thread pool, so the window never freezes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop import APP_NAME
from kanoa_desktop.core.ask.interpret import (
    GenerationParams,
    Inputs,
    build_turn,
    load_input,
    plot_table,
    summarise,
)
from kanoa_desktop.core.ask.pricing import CostTracker, Prices, load_kanoa_pricing, prices_for
from kanoa_desktop.core.ask.prompts import DEFAULT_SYSTEM_PROMPT
from kanoa_desktop.core.ask.stats import StreamStats
from kanoa_desktop.core.ask.tokens import TOKENS_PER_IMAGE, estimate_message_tokens
from kanoa_desktop.core.config import paths
from kanoa_desktop.core.config.profiles import Profile, ProfileStore, vision_block_reason
from kanoa_desktop.core.config.secrets import KeyStore
from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import Conversation, describe_payload
from kanoa_desktop.core.endpoint.client import ChatClient, ModelInfo, Timeouts
from kanoa_desktop.core.endpoint.events import FirstToken, ReasoningDelta, RequestSent, TextDelta
from kanoa_desktop.core.history.store import HistoryStore, TurnRecorder
from kanoa_desktop.core.inputs.figures import PreparedFigure, prepare_figure
from kanoa_desktop.core.inputs.tables import LoadedTable
from kanoa_desktop.core.kb.budget import token_budget
from kanoa_desktop.core.kb.retrieval import Grounding, aground, embed_pending
from kanoa_desktop.ui.answer_view import AnswerView
from kanoa_desktop.ui.banner import ErrorBanner
from kanoa_desktop.ui.history_panel import HistoryPanel
from kanoa_desktop.ui.inputs_panel import InputsPanel
from kanoa_desktop.ui.kb_panel import KnowledgeBasePanel, SourcesView
from kanoa_desktop.ui.profile_switcher import ProfileSwitcher
from kanoa_desktop.ui.status_bar import StreamStatus
from kanoa_desktop.ui.usage_view import UsageView

log = logging.getLogger(__name__)

STATUS_INTERVAL_MS = 250
HYBRID_EMBED_SECONDS_PER_QUESTION = (
    20.0  # the status bar updates four times a second, never per token
)
MAX_REMOTE_IMAGE_BYTES = 50 * 1024 * 1024
FILE_FILTER = (
    "Figures and tables (*.png *.jpg *.jpeg *.gif *.bmp *.tif *.tiff *.webp *.svg *.svgz *.csv *.tsv *.tab *.txt);;"
    "Figures (*.png *.jpg *.jpeg *.gif *.bmp *.tif *.tiff *.webp *.svg *.svgz);;"
    "Tables (*.csv *.tsv *.tab *.txt);;All files (*)"
)


class MainWindow(QMainWindow):
    """The application window. Create it on a running (or soon running) qasync loop."""

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
        self._clients: dict[tuple, ChatClient] = {}
        self._models: dict[str, list[ModelInfo]] = {}
        self._first_model: dict[str, str] = {}  # api base -> the model it lists first
        self._tasks: set[asyncio.Task] = set()
        self._stream_task: asyncio.Task | None = None
        self._kanoa_pricing = load_kanoa_pricing()
        self.costs = CostTracker()
        self.conversation = Conversation(system_prompt=DEFAULT_SYSTEM_PROMPT)
        self.stats: StreamStats | None = None
        self.last_request: dict[str, Any] | None = None
        self.table: LoadedTable | None = None
        self.table_summary = ""
        self.table_plot: PreparedFigure | None = None
        self._last_inputs: Inputs | None = None
        self._retry_question: str | None = None
        self._context_length: int | None = None
        self._max_tokens: int | None = None
        self._settings = QSettings(
            str(paths.config_dir() / "window.ini"), QSettings.Format.IniFormat
        )
        self._closing = False
        self._counted = True  # whether the current answer's cost is in self.costs
        self.history = HistoryStore()
        self._misc_http = None  # httpx client for side jobs (benchmark metrics), made lazily
        self._conversation_id: int | None = None
        self._recorder: TurnRecorder | None = None

        self._build_ui()
        self._build_actions()
        self._restore_state()
        self._on_profile_changed(self.store.active)
        for problem in store_problems:
            self.banner.show_message("Settings problem", problem.message)
        if self.history.problem is not None:
            self.banner.show_message("History problem", self.history.problem.message)

    # ------------------------------------------------------------------ construction

    def _build_ui(self) -> None:
        self.inputs = InputsPanel()
        self.inputs.interpretRequested.connect(self.interpret)
        self.inputs.drop.open_button.clicked.connect(self.open_dialog)
        self.inputs.figures.removed.connect(self._figure_removed)
        self.inputs.table.plotRequested.connect(self._plot_requested)

        right = QWidget()
        rlay = QVBoxLayout(right)
        rlay.setContentsMargins(6, 6, 6, 6)
        self.banner = ErrorBanner()
        self.banner.retryRequested.connect(self.retry)
        self.vision_note = QLabel()
        self.vision_note.setObjectName("visionNote")
        self.vision_note.setWordWrap(True)
        self.vision_note.hide()
        self.answer = AnswerView()
        self.sources = SourcesView()
        self.sources.setObjectName("sourcesView")
        self.sources.openRequested.connect(self._open_source)
        rlay.addWidget(self.banner)
        rlay.addWidget(self.vision_note)
        rlay.addWidget(self.answer, 1)
        rlay.addWidget(self.sources)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(self.inputs)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([440, 660])
        self.setCentralWidget(self.splitter)

        self.status = StreamStatus()
        self.statusBar().addPermanentWidget(self.status, 1)
        self.statusBar().setSizeGripEnabled(True)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(STATUS_INTERVAL_MS)
        self._status_timer.timeout.connect(self._refresh_status)

        self.gpu_dock = QDockWidget("GPU and server", self)
        self.gpu_dock.setObjectName("gpuDock")
        self.gpu_panel = self._make_gpu_panel()
        self.gpu_dock.setWidget(self.gpu_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.gpu_dock)

        self.kb_dock = QDockWidget("Knowledge base", self)
        self.kb_dock.setObjectName("kbDock")
        self.kb_panel = KnowledgeBasePanel()
        self.kb_panel.setObjectName("kbPanel")
        self.kb_panel.foldersChanged.connect(self._kb_folders_changed)
        self.kb_dock.setWidget(self.kb_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.kb_dock)
        self.tabifyDockWidget(self.gpu_dock, self.kb_dock)

        self.history_dock = QDockWidget("History", self)
        self.history_dock.setObjectName("historyDock")
        self.history_panel = HistoryPanel(self.history)
        self.history_panel.reopenRequested.connect(self.reopen_conversation)
        self.history_dock.setWidget(self.history_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.history_dock)
        self.tabifyDockWidget(self.kb_dock, self.history_dock)

        self.usage_dock = QDockWidget("Usage", self)
        self.usage_dock.setObjectName("usageDock")
        self.usage_view = UsageView(self.history)
        self.usage_dock.setWidget(self.usage_view)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.usage_dock)
        self.tabifyDockWidget(self.history_dock, self.usage_dock)
        self.gpu_dock.raise_()
        self.resize(1280, 820)
        self.resizeDocks([self.gpu_dock], [360], Qt.Orientation.Horizontal)

    def _make_gpu_panel(self) -> QWidget:
        try:
            from kanoa_desktop.ui.gpu_panel import GpuPanel
        except ImportError as exc:  # pyqtgraph missing in a stripped install
            lab = QLabel(f"GPU panel unavailable: {exc}")
            lab.setWordWrap(True)
            return lab
        return GpuPanel()

    def _build_actions(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        self.addToolBar(tb)
        self.profile_switcher = ProfileSwitcher(self.store)
        self.profile_switcher.setObjectName("profileSwitcher")
        self.profile_switcher.profileChanged.connect(self._on_profile_changed)
        tb.addWidget(QLabel(" Endpoint "))
        tb.addWidget(self.profile_switcher)
        tb.addSeparator()

        def action(text, slot, shortcut=None, name="", tip="") -> QAction:
            a = QAction(text, self)
            a.setObjectName(name)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
                a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.setToolTip(
                f"{tip or text} ({QKeySequence(shortcut).toString()})" if shortcut else tip or text
            )
            a.triggered.connect(slot)
            self.addAction(a)
            return a

        self.open_action = action(
            "Open…",
            self.open_dialog,
            QKeySequence.StandardKey.Open,
            "openAction",
            "Open a figure or a table",
        )
        self.paste_action = action(
            "Paste", self.paste, None, "pasteAction", "Paste a figure or a file (Ctrl+V)"
        )
        self.interpret_action = action(
            "Interpret", self.interpret, "Ctrl+Return", "interpretAction", "Interpret"
        )
        self.interpret_action.setShortcuts(
            [QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")]
        )
        self.stop_action = action("Stop", self.stop, "Esc", "stopAction", "Stop the answer")
        self.new_action = action("New conversation", self.new_conversation, "Ctrl+N", "newAction")
        self.copy_action = action(
            "Copy answer",
            self.copy_answer,
            "Ctrl+Shift+C",
            "copyAction",
            "Copy the conversation as Markdown",
        )
        self.request_action = action(
            "Show request",
            self.show_request,
            None,
            "showRequestAction",
            "Show exactly what was sent",
        )
        self.bench_action = action(
            "Benchmark endpoint…",
            self.open_benchmark,
            None,
            "benchmarkAction",
            "Measure tokens/s and time to first token on kanoa's benchmark tasks",
        )
        self.settings_action = action(
            "Settings…", self.open_settings, "Ctrl+,", "settingsAction", "Settings"
        )
        self.quit_action = action("Quit", self.close, QKeySequence.StandardKey.Quit, "quitAction")
        for a in (self.open_action, self.paste_action):
            tb.addAction(a)
        tb.addSeparator()
        tb.addAction(self.interpret_action)
        tb.addAction(self.stop_action)
        tb.addSeparator()
        for a in (self.new_action, self.copy_action, self.request_action, self.settings_action):
            tb.addAction(a)
        self.interpret_button = tb.widgetForAction(self.interpret_action)
        self.interpret_button.setObjectName("interpretButton")
        self.interpret_button.setAccessibleName("Interpret")
        self.stop_button = tb.widgetForAction(self.stop_action)
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setAccessibleName("Stop")
        self.stop_action.setEnabled(False)

        # Paste only where no text field wants Ctrl+V itself.
        self.paste_shortcut_action = QAction(self)
        self.paste_shortcut_action.setShortcut(QKeySequence.StandardKey.Paste)
        self.paste_shortcut_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.paste_shortcut_action.triggered.connect(self.paste)
        self.addAction(self.paste_shortcut_action)

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for a in (self.open_action, self.paste_action, self.new_action):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        q_menu = menu.addMenu("&Question")
        for a in (self.interpret_action, self.stop_action, self.copy_action, self.request_action):
            q_menu.addAction(a)
        view_menu = menu.addMenu("&View")
        view_menu.addAction(self.gpu_dock.toggleViewAction())
        view_menu.addAction(self.kb_dock.toggleViewAction())
        view_menu.addAction(self.history_dock.toggleViewAction())
        view_menu.addAction(self.usage_dock.toggleViewAction())
        tools = menu.addMenu("&Tools")
        tools.addAction(self.bench_action)
        tools.addAction(self.settings_action)

    # ------------------------------------------------------------------ state

    def _restore_state(self) -> None:
        geo = self._settings.value("geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            self.restoreGeometry(geo)
        state = self._settings.value("windowState")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        split = self._settings.value("splitter")
        if isinstance(split, QByteArray) and not split.isEmpty():
            self.splitter.restoreState(split)

    def _save_state(self) -> None:
        self._settings.setValue("geometry", self.saveGeometry())
        self._settings.setValue("windowState", self.saveState())
        self._settings.setValue("splitter", self.splitter.saveState())
        self._settings.sync()

    @property
    def last_folder(self) -> str:
        return str(self._settings.value("lastFolder", str(Path.home())))

    def _remember_folder(self, path: Path) -> None:
        self._settings.setValue("lastFolder", str(path.parent if path.is_file() else path))

    @property
    def profile(self) -> Profile:
        return self.store.active

    @property
    def streaming(self) -> bool:
        return self._stream_task is not None and not self._stream_task.done()

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
            err = (
                exc
                if isinstance(exc, E.KanoaError)
                else E.KanoaError(
                    f"Something went wrong inside kanoa desktop: {type(exc).__name__}: {exc}",
                    "Your inputs and the answer so far are kept. Please report this with the log.",
                )
            )
            self.banner.show_error(err, can_retry=False)

    async def run_cpu(self, fn, *args):
        """Run CPU work (decoding, parsing) on the worker pool, off the GUI thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _client_for(self, profile: Profile) -> ChatClient:
        key = self.keys.get(profile.id)
        secret = key.reveal() if key else None
        verify: bool | str = (profile.ca_bundle or True) if profile.verify_tls else False
        ident = (
            profile.api_base,
            hash(secret) if secret else None,
            verify,
            profile.request_timeout_s,
        )
        client = self._clients.get(ident)
        if client is None or client.closed:
            client = ChatClient(
                profile.api_base,
                api_key=secret,
                verify=verify,
                timeouts=Timeouts(read=max(profile.request_timeout_s, 5.0)),
            )
            self._clients[ident] = client
        return client

    # ------------------------------------------------------------------ inputs

    def open_dialog(self) -> None:
        dlg = QFileDialog(self, "Open figures or a table", self.last_folder, FILE_FILTER)
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
            self._remember_folder(p)
            self.spawn(self._load_path(p))

    async def _load_path(self, path: Path) -> None:
        self._show_loading(f"Loading {path.name}…")
        try:
            item = await self.run_cpu(
                lambda: load_input(path, long_side=self.profile.image_long_side)
            )
        except E.KanoaError as err:
            self.banner.show_error(err, can_retry=False)
            return
        finally:
            self._show_loading("")
        if isinstance(item, LoadedTable):
            await self._set_table(item)
        else:
            self.add_figure(item)

    async def _load_bytes(self, data: bytes, name: str) -> None:
        self._show_loading(f"Preparing {name}…")
        try:
            fig = await self.run_cpu(
                lambda: prepare_figure(data, long_side=self.profile.image_long_side, name=name)
            )
        except E.KanoaError as err:
            self.banner.show_error(err, can_retry=False)
            return
        finally:
            self._show_loading("")
        self.add_figure(fig)

    def _show_loading(self, text: str) -> None:
        self.inputs.loading.setText(text)
        self.inputs.loading.setVisible(bool(text))

    def add_figure(self, fig: PreparedFigure) -> None:
        self.inputs.figures.add_figure(fig)
        self.inputs.refresh()
        self._update_vision_note()

    def _figure_removed(self, index: int) -> None:
        if self.table_plot is not None and self.table_plot not in self.inputs.figures.figures():
            self.table_plot = None
        self.inputs.refresh()
        self._update_vision_note()

    async def _set_table(self, table: LoadedTable) -> None:
        summary = await self.run_cpu(summarise, table)
        self.table, self.table_summary = table, summary
        self.inputs.table.set_table(table)
        self.inputs.table.setProperty("hasTable", True)
        self.inputs.refresh()

    def _plot_requested(self, x, y, kind: str) -> None:
        if self.table is None:
            return
        self.spawn(self._make_plot(self.table, x, y, kind))

    async def _make_plot(self, table: LoadedTable, x, y, kind: str) -> None:
        self._show_loading("Plotting…")
        try:
            fig = await self.run_cpu(
                lambda: plot_table(table, x, y, kind, long_side=self.profile.image_long_side)
            )
        except E.KanoaError as err:
            self.banner.show_error(err, can_retry=False)
            return
        finally:
            self._show_loading("")
        # One quick plot at a time goes with the table: replace the previous one.
        if self.table_plot is not None:
            figs = self.inputs.figures.figures()
            if self.table_plot in figs:
                self.inputs.figures.remove_figure(figs.index(self.table_plot))
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
        """Take figures and files from a drop or a paste. True if anything was taken."""
        local = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        if local:
            self.open_paths(local)
            return True
        if mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.spawn(self._load_bytes(_qimage_png(image), "pasted image"))
                return True
        remote = [u for u in mime.urls() if u.scheme() in ("http", "https")]
        if remote:
            self.spawn(self._fetch_remote(remote[0]))
            return True
        return False

    async def _fetch_remote(self, url: QUrl) -> None:
        """An image dragged from a browser that came as a link only: fetch it (capped)."""
        import httpx

        name = url.fileName() or "image from the web"
        self._show_loading(f"Downloading {name}…")
        try:
            async with httpx.AsyncClient(timeout=20.0, follow_redirects=True) as http:
                async with http.stream("GET", url.toString()) as resp:
                    resp.raise_for_status()
                    chunks, size = [], 0
                    async for chunk in resp.aiter_bytes():
                        size += len(chunk)
                        if size > MAX_REMOTE_IMAGE_BYTES:
                            raise E.KanoaError(
                                f"{name} is larger than 50 MB.",
                                "Save it and open the file instead.",
                            )
                        chunks.append(chunk)
        except httpx.HTTPError as exc:
            self.banner.show_message(
                "Cannot download the image",
                f"{url.toString()}: {exc}",
                "Save the image and drop the file instead.",
            )
            return
        except E.KanoaError as err:
            self.banner.show_error(err, can_retry=False)
            return
        finally:
            self._show_loading("")
        await self._load_bytes(b"".join(chunks), name)

    # -- drag and drop -------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage():
            event.acceptProposedAction()
            self.inputs.drop.set_dragging(True)

    def dragLeaveEvent(self, event) -> None:  # noqa: N802
        self.inputs.drop.set_dragging(False)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        self.inputs.drop.set_dragging(False)
        if self.accept_mime(event.mimeData()):
            event.acceptProposedAction()

    # ------------------------------------------------------------------ profile & vision

    def _on_profile_changed(self, profile: Profile) -> None:
        self.status.set_model(profile.model or "(first model the server lists)")
        self._update_vision_note()
        self._update_metrics_source(profile)
        self._kb_profile_id = profile.id
        folders = self._settings.value(f"kb/{profile.id}", [])
        folders = [folders] if isinstance(folders, str) else list(folders or [])
        if [str(f) for f in self.kb_panel.folders] != folders:
            self.kb_panel.set_folders(folders)

    def _kb_folders_changed(self, folders: list) -> None:
        # Knowledge-base folders belong to the profile that was active when attached.
        profile_id = getattr(self, "_kb_profile_id", self.profile.id)
        self._settings.setValue(f"kb/{profile_id}", [str(f) for f in folders])

    def _open_source(self, path: str) -> None:
        from PySide6.QtGui import QDesktopServices

        QDesktopServices.openUrl(QUrl.fromLocalFile(path))

    def _update_metrics_source(self, profile: Profile) -> None:
        panel = self.gpu_panel
        if not hasattr(panel, "set_poller"):
            return
        from kanoa_desktop.core.monitor.poller import MetricsPoller

        old = panel.poller
        if (
            old is not None
            and old.url == profile.effective_metrics_url
            and old.dcgm_url == (profile.dcgm_url or None)
        ):
            return
        prefs = self.store.preferences
        poller = MetricsPoller(
            profile.effective_metrics_url,
            interval_s=prefs.gpu_poll_interval_s,
            read_gpus=prefs.local_nvml,
            dcgm_url=profile.dcgm_url,
        )
        self.replace_poller(poller)

    def replace_poller(self, poller) -> None:
        """Give the GPU panel a new poller; the old one's task is cancelled and awaited
        before its HTTP client closes, so no request is cut off under a live socket."""
        panel = self.gpu_panel
        old, old_task = panel.poller, getattr(panel, "_task", None)
        panel.set_poller(poller)
        if old is not None:
            self.spawn(self._retire_poller(old, old_task))

    async def _retire_poller(self, poller, task) -> None:
        # Let the current scrape finish (bounded by the poller's own timeout) rather than
        # cancel it mid-connect, which can leave a socket behind.
        poller.stop()
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), poller.timeout_s + 1.0)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            except Exception:  # noqa: BLE001 - the poll's own failure is not ours to report
                pass
        await poller.aclose()

    def _vision_block(self, profile: Profile | None = None) -> str | None:
        profile = profile or self.profile
        # The profile's model, or the one the server listed first when the profile names none.
        model = profile.model or self._first_model.get(profile.api_base, "")
        probed = self.store.cached_vision(profile.api_base, model) if model else None
        return vision_block_reason(profile, probed)

    def _update_vision_note(self) -> None:
        reason = self._vision_block()
        has_figs = self.inputs.figures.count() > 0
        self.vision_note.setText(f"⚠ {reason}" if reason and has_figs else "")
        self.vision_note.setVisible(bool(reason and has_figs))

    # ------------------------------------------------------------------ asking

    def _gather_inputs(self) -> Inputs:
        return Inputs(
            figures=self.inputs.figures.figures(),
            table=self.table,
            table_summary=self.table_summary,
            context=self.inputs.context.toPlainText(),
            focus=self.inputs.focus.text(),
            question=self.inputs.question.toPlainText(),
        )

    def interpret(self) -> None:
        if self.streaming:
            return
        inputs = self._gather_inputs()
        if (
            not self.conversation.turns
            and not inputs.figures
            and not inputs.table
            and not inputs.question.strip()
        ):
            self.banner.show_message(
                "Nothing to interpret",
                "Add a figure or a table, or type a question.",
                "Drop a file on the window, paste one with Ctrl+V, or open one with Ctrl+O.",
            )
            return
        self.banner.hide()
        self._last_inputs = inputs
        self._stream_task = self.spawn(self._ask(inputs))

    def retry(self) -> None:
        """Ask the failed question again: its turn is removed and resent."""
        self.banner.hide()
        if self.streaming or self._last_inputs is None:
            return
        if self.conversation.turns and self.conversation.turns[-1].finish_reason == "error":
            last = getattr(self, "_last_turn_id", None)
            if last is not None:
                with contextlib.suppress(sqlite3.Error):
                    self.history.mark_retried(last)
            self.conversation.turns.pop()
            self.answer.set_conversation_markdown(self._conversation_markdown())
        self._stream_task = self.spawn(self._ask(self._last_inputs))

    def stop(self) -> None:
        if self.streaming:
            self._stream_task.cancel()

    async def _ask(self, inputs: Inputs) -> None:
        profile = self.profile
        client = self._client_for(profile)
        self.conversation.system_prompt = (
            self.inputs.system_prompt.toPlainText().strip() or DEFAULT_SYSTEM_PROMPT
        )
        self._set_busy(True)
        self.status.reset()
        self.status.set_state("connecting")
        turn = None
        grounding: Grounding | None = None
        gpu = getattr(self.gpu_panel, "poller", None)
        model = profile.model
        try:
            model, info = await self._resolve_model(client, profile)
            self.status.set_model(model)
            self._context_length = info.context_length if info else None
            self._max_tokens = profile.max_tokens
            block = self._vision_block(profile)
            params = GenerationParams(model, profile.temperature, profile.max_tokens, profile.top_p)
            grounding = await self._ground(inputs, params, profile, send_images=block is None)
            request, user_msg = build_turn(
                self.conversation,
                inputs,
                params,
                send_images=block is None,
                grounding=grounding.prompt_block if grounding else "",
            )
            self.last_request = request.payload()
            prices = prices_for(profile, self._kanoa_pricing)
            self.stats = StreamStats(
                price_in_per_million=prices.input_per_million,
                price_out_per_million=prices.output_per_million,
                prompt_estimate=estimate_message_tokens(request.messages),
            )
            turn = self.conversation.add_turn(user_msg)
            self._begin_record(inputs, user_msg, model, profile, grounding)
            self.sources.clear()
            self.answer.begin_answer(
                _question_markdown(inputs, len(self.conversation.turns) == 1, block)
            )
            self._counted = False
            self._status_timer.start()
            self._refresh_status()
            if gpu is not None:
                gpu.mark_request("start")
            stream = client.stream_chat(request)
            try:
                async for ev in stream:
                    self.stats.feed(ev)
                    if isinstance(ev, TextDelta):
                        self.answer.append(ev.text)
                        if self._recorder is not None:
                            self._recorder.append(ev.text)
                    elif isinstance(ev, ReasoningDelta):
                        # Counts towards speed and is kept in history; the view shows text.
                        if self._recorder is not None:
                            self._recorder.append_reasoning(ev.text)
                    elif isinstance(ev, RequestSent):
                        self.status.set_state("waiting")
                    elif isinstance(ev, FirstToken):
                        self.status.set_state("streaming")
            finally:
                await stream.aclose()
            turn.finish_reason = self.stats.finish_reason or "stop"
            note = (
                "Stopped at the max tokens limit (Settings > Generation)."
                if turn.finish_reason == "length"
                else ""
            )
            turn.assistant = self.answer.end_answer(note)
            self._show_sources(grounding, turn.assistant)
            self._end_record("done", turn.finish_reason, turn.assistant)
            self.inputs.question.clear()
            self._finish("done", prices)
        except asyncio.CancelledError:
            if turn is not None:
                turn.finish_reason = "stopped"
                turn.assistant = self.answer.end_answer("Stopped by you.")
                self._show_sources(grounding, turn.assistant)
                self._end_record("stopped", "stopped", turn.assistant)
                self.inputs.question.clear()
                self._finish("stopped", self._prices_or_default(profile))
            else:
                self.status.set_state("stopped")
                self._set_busy(False)
            if self._closing:
                raise
        except E.KanoaError as err:
            if turn is not None:
                turn.finish_reason = "error"
                partial = self.answer.end_answer(f"Answer interrupted: {err.title}.")
                turn.assistant = partial
                self._end_record("error", None, partial, err)
                self._finish("error", self._prices_or_default(profile), err.title)
            else:
                self.status.set_state("error", err.title)
                self._set_busy(False)
            if isinstance(err, E.VisionUnsupported) and model:
                # Remembered, so Retry (and every later question) goes without the figures.
                self.store.remember_vision(profile.api_base, model, False)
                self._update_vision_note()
            # A refused key needs Settings first; anything else may go through on Retry.
            self.banner.show_error(err, can_retry=not isinstance(err, E.AuthFailed))
        finally:
            self._end_gpu_span()  # when the answer ended before it was recorded

    async def _ground(
        self, inputs: Inputs, params: GenerationParams, profile: Profile, *, send_images: bool
    ) -> Grounding | None:
        """Knowledge-base passages for this question, packed into what the context leaves.

        None when no knowledge base is attached. The budget is the model's context minus the
        prompt, the images and the answer's max tokens (and a margin), capped by the
        profile's knowledge-base limit, so grounding never overflows the context.
        """
        kb = self.kb_panel.knowledge_base
        if kb is None:
            return None
        probe, _ = build_turn(self.conversation, inputs, params, send_images=send_images)
        images = probe.n_images
        prompt = estimate_message_tokens(probe.messages) - images * TOKENS_PER_IMAGE
        cap = profile.kb_max_context_tokens
        if self._context_length:
            budget = token_budget(
                self._context_length, prompt, images * TOKENS_PER_IMAGE, params.max_tokens or 0
            )
            budget = min(budget, cap)
        else:
            budget = cap
        hints = [f.name for f in inputs.figures]
        if inputs.table is not None:
            hints += [inputs.table.name, *map(str, inputs.table.frame.columns[:30])]
        embed = await self._hybrid_embedder(kb, profile)
        return await aground(
            kb,
            inputs.question,
            budget,
            context=inputs.context,
            focus=inputs.focus,
            hints=hints,
            k=max(1, profile.kb_top_k),
            embed=embed,
            embed_model=profile.kb_embeddings_model or "",
        )

    async def _hybrid_embedder(self, kb, profile: Profile):
        """The query embedder for hybrid search, after embedding chunks that lack vectors.

        None (keyword search only) when the profile names no embedding model or the
        endpoint cannot embed; the reason then shows in the banner and the question goes on.
        Embedding the pending chunks is bounded per question so a large, new knowledge base
        never holds a question up for long; the rest follows with the next questions.
        """
        model = profile.kb_embeddings_model
        if not model:
            return None
        client = self._client_for(profile)
        loop = asyncio.get_running_loop()

        def embed_on_worker(texts: list[str]) -> list[list[float]]:
            # Runs on the worker pool: the request itself runs on the loop.
            future = asyncio.run_coroutine_threadsafe(client.embeddings(model, texts), loop)
            return future.result(timeout=max(profile.request_timeout_s, 30.0))

        deadline = time.monotonic() + HYBRID_EMBED_SECONDS_PER_QUESTION
        try:
            await self.run_cpu(
                lambda: embed_pending(
                    kb, embed_on_worker, model, cancel=lambda: time.monotonic() > deadline
                )
            )
        except E.KanoaError as err:
            self.banner.show_message(
                "Hybrid search unavailable",
                f"{err.message} Keyword search is used instead.",
                f"{err.hint} Or clear the embedding model in Settings > Knowledge base.",
            )
            return None
        return lambda texts: client.embeddings(model, texts)

    def _show_sources(self, grounding: Grounding | None, answer: str) -> None:
        if grounding is None:
            self.sources.clear()
        else:
            self.sources.set_grounding(grounding, answer)

    # ------------------------------------------------------------------ history

    def _begin_record(
        self, inputs: Inputs, user_msg, model: str, profile: Profile, grounding
    ) -> None:
        first = len(self.conversation.turns) == 1
        try:
            self._recorder = self.history.begin_turn(
                self._conversation_id,
                user_message=user_msg,
                question=inputs.question.strip() or ("Interpret." if first else "Go on."),
                model=model,
                profile=profile,
                system_prompt=self.conversation.system_prompt,
                context=inputs.context,
                focus=inputs.focus,
                table_name=inputs.table.name if inputs.table is not None else "",
                table_summary=inputs.table_summary if first else "",
                figures=inputs.figures if first else (),
                passages=grounding,
            )
        except sqlite3.Error as exc:
            self._recorder = None
            self.banner.show_message(
                "History not saved",
                f"This answer is not being saved to the history: {exc}.",
                "Check free disk space; the answer itself is not affected.",
            )
            return
        self._conversation_id = self._recorder.conversation_id

    def _end_gpu_span(self) -> float | None:
        """Close the GPU panel's marker of the streaming answer; its energy in Wh if known."""
        poller = getattr(self.gpu_panel, "poller", None)
        span = poller.mark_request("end") if poller is not None else None
        if poller is not None and not poller.paused:
            poller.resume()  # scrape now: the panel shows the answer's end at once
        if span is None or span.energy_wh is None:
            return None
        self.status.set_energy(span.energy_wh, self.profile.electricity_price_per_kwh)
        return span.energy_wh

    def _end_record(
        self, state: str, finish_reason, answer: str, err: E.KanoaError | None = None
    ) -> None:
        energy_wh = self._end_gpu_span()
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        try:
            recorder.finish(
                state,
                finish_reason,
                stats=self.stats,
                energy_wh=energy_wh,
                answer=answer,
                error_title=err.title if err else None,
                error_message=err.message if err else None,
            )
        except sqlite3.Error as exc:
            log.warning("history: could not finish the turn: %s", exc)
        self._last_turn_id = recorder.turn_id
        self.history_panel.refresh()
        self.usage_view.refresh()

    def reopen_conversation(self, conversation_id: int) -> None:
        """Restore a stored conversation: figures, table summary, turns; follow-ups go on."""
        if self.streaming:
            self.stop()
        conv = self.history.load_conversation(conversation_id)
        if conv is None:
            self.banner.show_message("Conversation not found", "It may have been deleted.")
            return
        self.new_conversation()
        self.conversation = conv.conversation()
        self._conversation_id = conv.id
        for fig in conv.prepared_figures():
            self.inputs.figures.add_figure(fig)
        self.table_summary = conv.table_summary
        self.inputs.context.setPlainText(conv.context)
        self.inputs.focus.setText(conv.focus)
        if conv.system_prompt:
            self.inputs.system_prompt.setPlainText(conv.system_prompt)
        self.inputs.refresh()
        self.answer.set_conversation_markdown(self._conversation_markdown())
        self.statusBar().showMessage(f"Reopened “{conv.title}”.", 4000)

    def _prices_or_default(self, profile: Profile) -> Prices:
        return prices_for(profile, self._kanoa_pricing)

    async def _resolve_model(
        self, client: ChatClient, profile: Profile
    ) -> tuple[str, ModelInfo | None]:
        models = self._models.get(profile.api_base)
        if models is None or (profile.model and profile.model not in {m.id for m in models}):
            models = await client.models()
            self._models[profile.api_base] = models
        if models:
            self._first_model[profile.api_base] = models[0].id
        if not profile.model:
            if not models:
                raise E.BadRequest(
                    "The server lists no model.",
                    "Load a model on the server, or set one in Settings > Endpoint.",
                )
            return models[0].id, models[0]
        info = next((m for m in models if m.id == profile.model), None)
        return profile.model, info

    def _finish(self, state: str, prices: Prices, detail: str = "") -> None:
        self._status_timer.stop()
        if self.stats is not None and not self._counted:
            self.costs.add(self.stats.prompt_tokens, self.stats.output_tokens, prices)
            self._counted = True
        self._refresh_status()
        self.status.set_state(state, detail)
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self.interpret_action.setEnabled(not busy)
        self.stop_action.setEnabled(busy)

    def _refresh_status(self) -> None:
        if self._recorder is not None:
            # Saves streamed text at least once a second even when tokens stall.
            self._recorder.flush_if_due()
        if self.stats is None:
            return
        self.status.show_stats(
            self.stats,
            time.monotonic(),
            context_length=self._context_length,
            max_tokens=self._max_tokens,
            session_cost=self.costs.cost + (0.0 if self._counted else self.stats.cost),
        )

    # ------------------------------------------------------------------ conversation

    def _conversation_markdown(self) -> str:
        parts = []
        for i, turn in enumerate(self.conversation.turns):
            content = turn.user.get("content")
            text = (
                content
                if isinstance(content, str)
                else next((p["text"] for p in content if p.get("type") == "text"), "")
            )
            parts.append(f"**You** ({i + 1})\n\n{_quote(text)}\n\n{turn.assistant}\n\n---\n\n")
        return "".join(parts)

    def new_conversation(self) -> None:
        self.stop()
        self._conversation_id = None
        self.conversation.clear()
        self.answer.clear_conversation()
        self.inputs.figures.clear()
        self.inputs.table.setProperty("hasTable", False)
        self.table = None
        self.table_summary = ""
        self.table_plot = None
        self.stats = None
        self.last_request = None
        self.banner.hide()
        self.inputs.refresh()
        self.status.reset()
        self.status.set_state("idle")
        self._update_vision_note()

    def copy_answer(self) -> None:
        QGuiApplication.clipboard().setText(self.answer.markdown)
        self.statusBar().showMessage("Conversation copied as Markdown.", 3000)

    def show_request(self) -> None:
        dlg = QDialog(self)
        dlg.setObjectName("requestDialog")
        dlg.setWindowTitle("Request sent")
        lay = QVBoxLayout(dlg)
        view = QPlainTextEdit()
        view.setObjectName("requestView")
        view.setReadOnly(True)
        view.setPlainText(
            describe_payload(self.last_request)
            if self.last_request
            else "No request has been sent yet."
        )
        lay.addWidget(view)
        dlg.resize(720, 600)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()  # non-modal
        self.request_dialog = dlg

    def open_settings(self) -> None:
        from kanoa_desktop.ui.settings import SettingsDialog
        from kanoa_desktop.ui.settings.connection import check_connection

        dlg = SettingsDialog(self.store, self.keys, self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        async def run_check(req) -> None:
            report = await check_connection(req, self.keys.get(req.profile_id))
            with contextlib.suppress(RuntimeError):  # the dialog may be gone
                dlg.show_connection_result(report)

        dlg.testConnectionRequested.connect(lambda req: self.spawn(run_check(req)))
        dlg.profilesSaved.connect(self._profiles_saved)
        dlg.open()  # no exec(): qasync must keep running
        self.settings_dialog = dlg

    def open_benchmark(self) -> None:
        self.spawn(self._open_benchmark())

    async def _open_benchmark(self) -> None:
        """Tools > Benchmark endpoint: kanoa's per-task suite against the active profile."""
        import httpx

        from kanoa_desktop.core.endpoint.bench import scraping_reader
        from kanoa_desktop.ui.bench_dialog import BenchmarkDialog

        profile = self.profile
        client = self._client_for(profile)
        model, _ = await self._resolve_model(client, profile)  # errors land in the banner
        vision = {"yes": True, "no": False}.get(profile.vision)
        if vision is None:
            vision = self.store.cached_vision(profile.api_base, model)  # None: the suite probes
        if self._misc_http is None:
            self._misc_http = httpx.AsyncClient()
        dlg = BenchmarkDialog(
            client,
            model,
            vision=vision,
            metrics=scraping_reader(profile.effective_metrics_url, self._misc_http),
            parent=self,
        )
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()  # non-modal; it runs its suite as a task on this loop
        self.bench_dialog = dlg

    def _profiles_saved(self) -> None:
        self._models.clear()
        self.profile_switcher.refresh()
        self._on_profile_changed(self.store.active)

    # ------------------------------------------------------------------ shutdown

    def closeEvent(self, event) -> None:  # noqa: N802
        self._save_state()
        self._closing = True
        self.stop()
        super().closeEvent(event)
        self.closed.emit()

    async def shutdown(self) -> None:
        """Cancel running work and close every connection; await before the loop ends."""
        self._closing = True
        self._status_timer.stop()
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        poller = getattr(self.gpu_panel, "poller", None)
        if poller is not None:
            poll_task = getattr(self.gpu_panel, "_task", None)
            self.gpu_panel.set_poller(None)
            await self._retire_poller(poller, poll_task)
        self.kb_panel.shutdown()
        if self._recorder is not None:
            with contextlib.suppress(sqlite3.Error):
                self._recorder.finish("stopped", "stopped", stats=self.stats)
        self.history.close()
        for client in list(self._clients.values()):
            await client.aclose()
        if self._misc_http is not None:
            await self._misc_http.aclose()
        self._clients.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _qimage_png(image: QImage) -> bytes:
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    return bytes(buf.data())


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.strip().splitlines())


def _question_markdown(inputs: Inputs, first: bool, vision_block: str | None) -> str:
    bits = []
    q = inputs.question.strip() or ("Interpret." if first else "Go on.")
    bits.append(q)
    if first:
        if inputs.figures:
            names = ", ".join(f.name for f in inputs.figures)
            sent = "not sent: text-only model" if vision_block else "sent"
            bits.append(f"Figures ({sent}): {names}")
        if inputs.table is not None:
            bits.append(
                f"Table: {inputs.table.name} ({inputs.table.rows:,} rows × {inputs.table.columns} columns)"
            )
        if inputs.context.strip():
            bits.append(f"Context: {inputs.context.strip()}")
    if inputs.focus.strip():
        bits.append(f"Focus: {inputs.focus.strip()}")
    return "**You**\n\n" + _quote("\n\n".join(bits)) + "\n\n"


__all__ = ["MainWindow"]
