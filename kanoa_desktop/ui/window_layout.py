"""The main window's layout: inputs | banner, answer and sources; status bar; docks.

Docks are tabbed on the right so the window fits a 1,280 × 720 screen with all of them open.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QLabel,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.ui.answer_view import AnswerView
from kanoa_desktop.ui.banner import ErrorBanner
from kanoa_desktop.ui.inputs_panel import InputsPanel
from kanoa_desktop.ui.sources_view import SourcesView
from kanoa_desktop.ui.status_bar import StreamStatus

STATUS_INTERVAL_MS = 250  # the status bar updates four times a second, never per token


def build_layout(self) -> None:  # noqa: PLR0915 - one layout, top to bottom
    """Central splitter (inputs | banner, answer, sources), status bar and docks."""
    self.inputs = InputsPanel()
    self.inputs.interpretRequested.connect(self.interpret)
    self.inputs.drop.open_button.clicked.connect(self.open_dialog)
    self.inputs.figures.removed.connect(self._figure_removed)
    self.inputs.plotRequested.connect(self._plot_requested)
    self.inputs.sheetRequested.connect(
        lambda name: (t := self.outbox.table) is not None and self.loader.load_sheet(t.path, name)
    )

    right = QWidget()
    rlay = QVBoxLayout(right)
    self.answer_column = rlay  # the first-run card goes above the answer
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
    for w in (self.banner, self.vision_note):
        rlay.addWidget(w)
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

    # Its content (the GPU panel) comes right after the first paint: it shows no figure
    # before the first scrape anyway, and building and painting it cost the first frame
    # ~40 ms (window_parts.DeferredParts.gpu_panel).
    self.gpu_dock = _dock(self, "GPU and server", "gpuDock", None)
    # The other docks are tabs behind the GPU panel: their contents (and the knowledge
    # base and fleet code) are built after the first paint, or when first shown or used
    # (MainWindow's lazy properties, issue 18). Their tabs are there at once. The history
    # panel is built now and gets its store after the first paint: its row of buttons sets
    # the dock area's width (426 px here), which must not change once the window shows.
    from kanoa_desktop.ui.history_panel import HistoryPanel

    self.history_panel = HistoryPanel(None)
    self.history_panel.reopenRequested.connect(self.reopen_conversation)
    tab_with = self.gpu_dock
    for attr, dock_attr, title, name in DOCKS:
        widget = self.history_panel if attr == "history_panel" else None
        dock = _dock(self, title, name, widget, tab_with)
        setattr(self, dock_attr, dock)
        if widget is None:
            dock.visibilityChanged.connect(lambda shown, attr=attr: shown and _shown(self, attr))
        tab_with = dock
    self.gpu_dock.raise_()
    self.resize(1280, 720)
    self.resizeDocks([self.gpu_dock], [360], Qt.Orientation.Horizontal)


# (panel attribute, dock attribute, dock title, dock object name), in tab order.
DOCKS = (
    ("kb_panel", "kb_dock", "Knowledge base", "kbDock"),
    ("history_panel", "history_dock", "History", "historyDock"),
    ("usage_view", "usage_dock", "Usage", "usageDock"),
    ("fleet_panel", "fleet_dock", "Fleet", "fleetDock"),
)


def _shown(self, attr: str) -> None:
    """A lazy dock's tab came on screen: build its content if not yet, and tell a panel
    that polls while seen (the fleet panel) that it is."""
    if self._built(attr) is not None:
        return  # built already: it heard this itself
    panel = getattr(self, attr)
    if callable(shown := getattr(panel, "dock_shown", None)):
        shown()


def make_gpu_panel(self) -> QWidget:
    return _fill(self.gpu_dock, _make_gpu_panel())


def make_kb_panel(self) -> QWidget:
    from kanoa_desktop.ui.kb_panel import KnowledgeBasePanel

    panel = KnowledgeBasePanel()
    panel.setObjectName("kbPanel")
    panel.foldersChanged.connect(self._kb_folders_changed)
    panel.followLinksChanged.connect(self._kb_follow_links_changed)
    return _fill(self.kb_dock, panel)


def make_usage_view(self) -> QWidget:
    from kanoa_desktop.ui.usage_view import UsageView

    return _fill(self.usage_dock, UsageView(self.history))


def make_fleet_panel(self) -> QWidget:
    # The lab's fleet from Prometheus (the app's address, or a profile's); loads nothing heavy
    # until its tab is shown.
    from kanoa_desktop.ui.fleet_panel import FleetPanel

    return _fill(self.fleet_dock, FleetPanel())


def _dock(self, title: str, name: str, widget: QWidget | None, tab_with=None) -> QDockWidget:
    dock = QDockWidget(title, self)
    dock.setObjectName(name)
    # In a scroll area: a dock's content must never set the window's minimum height (the
    # GPU panel's twelve rows and five plots asked for 617-730 px and pushed the window past
    # a 720 px screen); a short window scrolls the dock instead.
    scroll = QScrollArea()
    scroll.setObjectName(f"{name}Scroll")
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    dock.setWidget(scroll)
    if widget is not None:
        _fill(dock, widget)
    self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    if tab_with is not None:
        self.tabifyDockWidget(tab_with, dock)
    return dock


def _fill(dock: QDockWidget, widget: QWidget) -> QWidget:
    scroll = dock.widget()
    scroll.setWidget(widget)
    # Only the height scrolls: the dock stays as wide as its content needs.
    bar = scroll.verticalScrollBar().sizeHint().width()
    scroll.setMinimumWidth(widget.minimumSizeHint().width() + bar)
    return widget


def _make_gpu_panel() -> QWidget:
    try:
        from kanoa_desktop.ui.gpu_panel import GpuPanel
    except ImportError as exc:  # a stripped install (the panel itself needs only Qt)
        lab = QLabel(f"GPU panel unavailable: {exc}")
        lab.setWordWrap(True)
        return lab
    return GpuPanel()


# ------------------------------------------------------------------ state
