"""The Fleet view: every model server, router and GPU a Prometheus server scrapes.

:class:`FleetPanel` renders what :mod:`kanoa_desktop.core.monitor.fleet` reads; it never
queries by itself. Give it a :class:`~kanoa_desktop.core.monitor.fleet.FleetPoller` and
it starts the poller on the running asyncio loop (qasync in the app) while shown, pauses
it while hidden, and asks for the plots' history (Prometheus ``query_range``) when the
range changes and every few refreshes. Tests feed it with :meth:`FleetPanel.show_update`
and :meth:`FleetPanel.show_history`.

Tables are updated in place (items reused, no rebuild per refresh), so 50 instances cost
the same few milliseconds a refresh as 2. :func:`make_fleet_dock` wraps the panel in a
dock for the main window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDockWidget,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.monitor.fleet import (
    PLOT_FIGURES,
    RANGES,
    FleetPoller,
    FleetReader,
    FleetRow,
    FleetSnapshot,
    FleetUpdate,
    PrometheusError,
)

__all__ = ["FleetPanel", "make_fleet_dock"]

log = logging.getLogger(__name__)

# Ask Prometheus for the plots' history every this many refreshes (and on range change).
HISTORY_EVERY = 6
# Rows a table shows before it scrolls.
VISIBLE_ROWS = 8
_PALETTE = (
    "#1565c0", "#2e7d32", "#c62828", "#6a1b9a", "#ef6c00", "#00838f", "#ad1457", "#4e342e",
    "#283593", "#558b2f",
)  # fmt: skip
_DOWN_BRUSH = QBrush(QColor(198, 40, 40, 40))

SERVER_COLUMNS = (
    ("instance", "Instance"),
    ("kind", "Kind"),
    ("state", "State"),
    ("running", "Running"),
    ("waiting", "Waiting"),
    ("kv", "KV cache"),
    ("generation", "Generation tok/s"),
    ("prompt", "Prompt tok/s"),
    ("ttft", "TTFT p50 / p95"),
    ("itl", "Inter-token p50 / p95"),
    ("preemptions", "Preempt./min"),
    ("cache", "Prompt from cache"),
    ("models", "Models"),
)
ROUTER_COLUMNS = (
    ("instance", "Router"),
    ("state", "State"),
    ("requests", "Requests/s"),
    ("retries", "Retries/min"),
    ("errors", "Errors/min"),
    ("healthy", "Healthy servers"),
    ("circuits", "Open circuits"),
)
GPU_COLUMNS = (
    ("host", "Host"),
    ("gpu", "GPU"),
    ("name", "Name"),
    ("util", "Utilisation"),
    ("memory", "Memory"),
    ("temp", "Temperature"),
    ("power", "Power"),
)


def _n(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{unit}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


def _secs(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _state(row: FleetRow) -> str:
    return {True: "up", False: "down", None: "?"}[row.up]


def _waiting(row: FleetRow) -> str:
    text = _n(row.requests_waiting, 0)
    if row.waiting_deferred:
        text += f" ({row.waiting_deferred:.0f} deferred)"
    return text


def server_cells(row: FleetRow) -> dict[str, str]:
    """The text of each server-table cell for one row (also used by tests)."""
    generation = _n(row.generation_tokens_per_s)
    if row.generation_busy_tok_s is not None:
        generation += f" (busy {row.generation_busy_tok_s:.0f})"
    return {
        "instance": row.instance,
        "kind": {"vllm": "vLLM", "llamacpp": "llama.cpp"}.get(row.kind, row.kind),
        "state": _state(row),
        "running": _n(row.requests_running, 0),
        "waiting": _waiting(row),
        "kv": _pct(row.kv_cache_usage),
        "generation": generation,
        "prompt": _n(row.prompt_tokens_per_s),
        "ttft": f"{_secs(row.ttft_p50_s)} / {_secs(row.ttft_p95_s)}",
        "itl": f"{_secs(row.itl_p50_s)} / {_secs(row.itl_p95_s)}",
        "preemptions": _n(row.preemptions_per_min),
        "cache": _pct(row.prompt_cache_share),
        "models": ", ".join(row.models) or "—",
    }


def router_cells(row: FleetRow) -> dict[str, str]:
    return {
        "instance": row.instance,
        "state": _state(row),
        "requests": _n(row.router_requests_per_s, 2),
        "retries": _n(row.router_retries_per_min),
        "errors": _n(row.router_errors_per_min),
        "healthy": f"{_n(row.router_workers_healthy, 0)} of {_n(row.router_workers_total, 0)}",
        "circuits": ", ".join(row.open_circuits) or "none",
    }


class _Table(QTableWidget):
    """A read-only table whose items are reused between refreshes."""

    def __init__(self, name: str, columns: Sequence[tuple[str, str]]) -> None:
        super().__init__(0, len(columns))
        self.setObjectName(name)
        self.keys = [k for k, _ in columns]
        self.setHorizontalHeaderLabels([title for _, title in columns])
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def fill(self, rows: Sequence[Mapping[str, str]], down: Sequence[bool] = ()) -> None:
        self.setUpdatesEnabled(False)
        try:
            self.setRowCount(len(rows))
            for r, cells in enumerate(rows):
                is_down = bool(down[r]) if r < len(down) else False
                for c, key in enumerate(self.keys):
                    item = self.item(r, c)
                    if item is None:
                        item = QTableWidgetItem()
                        self.setItem(r, c, item)
                    text = cells.get(key, "—")
                    if item.text() != text:
                        item.setText(text)
                    item.setBackground(_DOWN_BRUSH if is_down else QBrush())
            # Header, rows, the horizontal scroll bar a wide table shows, and the frame.
            height = self.horizontalHeader().sizeHint().height() + 2 * self.frameWidth()
            height += self.horizontalScrollBar().sizeHint().height()
            height += sum(self.rowHeight(r) for r in range(min(len(rows), VISIBLE_ROWS)))
            self.setFixedHeight(max(height, 40))
        finally:
            self.setUpdatesEnabled(True)

    def cell_text(self, row: int, key: str) -> str:
        item = self.item(row, self.keys.index(key))
        return item.text() if item is not None else ""


class FleetPanel(QWidget):
    """State line, range choice, server/router/GPU tables, warnings and history plots."""

    def __init__(self, poller: FleetPoller | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("fleetPanel")
        self.setAccessibleName("Fleet")
        self._poller: FleetPoller | None = None
        self._task: asyncio.Future[None] | None = None
        self._history_task: asyncio.Future[None] | None = None
        self._refreshes = 0
        self._snapshot: FleetSnapshot | None = None
        self._build()
        if poller is not None:
            self.set_poller(poller)

    # -- construction

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        outer.setSpacing(4)
        top = QHBoxLayout()
        self.state_label = QLabel("No Prometheus server set: add one in Settings > GPU panel.")
        self.state_label.setObjectName("fleetState")
        self.state_label.setAccessibleName("Fleet state")
        self.state_label.setWordWrap(True)
        self.state_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top.addWidget(self.state_label, 1)
        self.range_box = QComboBox()
        self.range_box.setObjectName("fleetRange")
        self.range_box.setAccessibleName("Plot range")
        for label, seconds in RANGES:
            self.range_box.addItem(label, seconds)
        self.range_box.currentIndexChanged.connect(lambda _i: self.request_history())
        top.addWidget(QLabel("Plots:"))
        top.addWidget(self.range_box)
        outer.addLayout(top)

        self.servers_table = _Table("fleetServers", SERVER_COLUMNS)
        self.servers_table.setAccessibleName("Model servers")
        outer.addWidget(self.servers_table)
        self.routers_table = _Table("fleetRouters", ROUTER_COLUMNS)
        self.routers_table.setAccessibleName("Routers")
        self.routers_table.setVisible(False)
        outer.addWidget(self.routers_table)
        self.gpus_table = _Table("fleetGpus", GPU_COLUMNS)
        self.gpus_table.setAccessibleName("GPUs")
        self.gpus_table.setVisible(False)
        outer.addWidget(self.gpus_table)

        self.warnings_label = QLabel("")
        self.warnings_label.setObjectName("fleetWarnings")
        self.warnings_label.setAccessibleName("Fleet warnings")
        self.warnings_label.setWordWrap(True)
        self.warnings_label.setTextFormat(Qt.TextFormat.PlainText)
        self.warnings_label.setStyleSheet("color: #b45309;")
        self.warnings_label.setVisible(False)
        outer.addWidget(self.warnings_label)

        self._plots: dict[str, pg.PlotWidget] = {}
        self._curves: dict[str, dict[str, pg.PlotDataItem]] = {}
        grid = QGridLayout()
        grid.setSpacing(2)
        outer.addLayout(grid)
        for index, (key, (title, unit, _scale)) in enumerate(PLOT_FIGURES.items()):
            plot = pg.PlotWidget(background=None)
            plot.setObjectName(f"fleetPlot_{key}")
            plot.setAccessibleName(f"{title} per instance")
            plot.setMinimumHeight(90)
            plot.setMaximumHeight(160)
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            item = plot.getPlotItem()
            item.setTitle(f"{title}{f' ({unit})' if unit else ''}", size="8pt")
            item.getAxis("left").setWidth(38)
            item.showGrid(y=True, alpha=0.15)
            item.setXRange(-RANGES[0][1] / 60.0, 0, padding=0)
            item.setYRange(0, 100 if unit == "%" else 1, padding=0)
            item.setLabel("bottom", "minutes ago", **{"font-size": "7pt"})
            self._plots[key] = plot
            self._curves[key] = {}
            grid.addWidget(plot, index // 2, index % 2)
        outer.addStretch(1)

    # -- poller wiring

    @property
    def poller(self) -> FleetPoller | None:
        return self._poller

    def set_prometheus_url(
        self, url: str | None, *, router_url: str | None = None, interval_s: float = 5.0
    ) -> None:
        """Read the fleet from the Prometheus server at ``url`` (a profile's
        ``prometheus_url``), refreshing every ``interval_s`` while shown; None or "" shows
        how to set one. The same URL again keeps the running poller."""
        url = (url or "").strip() or None
        if url is None:
            self.set_poller(None)
            return
        # Opens no connection until asked: cheap to build just to compare addresses.
        reader = FleetReader(url, router_url=router_url)
        current = self._poller
        if current is not None and (current.reader.url, current.reader.router_url) == (
            reader.url,
            reader.router_url,
        ):
            current.interval_s = interval_s
            return
        self.set_poller(FleetPoller(reader, interval_s=interval_s))

    def set_poller(self, poller: FleetPoller | None) -> None:
        """Listen to ``poller`` (a previous one is stopped and closed). None: no
        Prometheus set."""
        if self._history_task is not None and not self._history_task.done():
            self._history_task.cancel()  # it asks the old poller's Prometheus
        self._history_task = None
        if self._poller is not None:
            old = self._poller
            old.remove_listener(self.show_update)
            old.stop()
            self._task = None
            loop = _running_loop()
            if loop is not None:
                loop.create_task(old.aclose())
        self._poller = poller
        if poller is None:
            self.state_label.setText("No Prometheus server set: add one in Settings > GPU panel.")
            return
        self.state_label.setText(f"Asking {poller.reader.url}…")
        poller.add_listener(self.show_update)
        if self.isVisible():
            self._start_or_resume()

    def _start_or_resume(self) -> None:
        poller = self._poller
        if poller is None:
            return
        poller.resume()
        if self._task is not None and not self._task.done():
            return
        loop = _running_loop()
        if loop is not None:
            self._task = asyncio.ensure_future(poller.run(), loop=loop)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._start_or_resume()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 - Qt's name
        if self._poller is not None:  # nobody looks: stop asking Prometheus
            self._poller.pause()
        super().hideEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._poller is not None:
            self._poller.stop()
        super().closeEvent(event)

    # -- history

    @property
    def range_s(self) -> float:
        return float(self.range_box.currentData())

    def request_history(self) -> None:
        """Ask Prometheus for every plot's history over the chosen range (async)."""
        poller, loop = self._poller, _running_loop()
        if poller is None or loop is None:
            return
        if self._history_task is not None and not self._history_task.done():
            self._history_task.cancel()
        self._history_task = asyncio.ensure_future(self._load_history(poller), loop=loop)

    async def _load_history(self, poller: FleetPoller) -> None:
        range_s = self.range_s
        try:
            results = await asyncio.gather(
                *(poller.reader.history(key, range_s) for key in PLOT_FIGURES)
            )
        except PrometheusError as err:
            log.info("fleet history: %s", err)
            return
        for key, data in zip(PLOT_FIGURES, results, strict=True):
            self.show_history(key, data, range_s=range_s)

    def show_history(
        self,
        key: str,
        data: Mapping[str, Sequence[tuple[float, float]]],
        *,
        range_s: float | None = None,
        now: float | None = None,
    ) -> None:
        """Draw one figure's ``instance -> [(unix time, value)]`` on its plot (x in minutes
        before now), one curve per instance, reusing curves between calls."""
        title, unit, scale = PLOT_FIGURES[key]
        plot, curves = self._plots[key], self._curves[key]
        now = time.time() if now is None else now
        range_s = self.range_s if range_s is None else range_s
        for instance in list(curves):
            if instance not in data:
                plot.removeItem(curves.pop(instance))
        for i, instance in enumerate(sorted(data)):
            points = data[instance]
            xs = [(t - now) / 60.0 for t, _ in points]
            ys = [v * scale for _, v in points]
            curve = curves.get(instance)
            if curve is None:
                colour = _PALETTE[i % len(_PALETTE)]
                curve = plot.plot([], [], pen=pg.mkPen(colour, width=1.3), name=instance)
                curve.setToolTip(instance)
                curves[instance] = curve
            curve.setData(xs, ys)
        item = plot.getPlotItem()
        item.setXRange(-range_s / 60.0, 0, padding=0)
        top = max((v * scale for pts in data.values() for _, v in pts), default=0.0)
        item.setYRange(0, 100 if unit == "%" else (top * 1.15 if top > 0 else 1), padding=0)

    def curve_data(self, key: str) -> dict[str, tuple[list[float], list[float]]]:
        """Each instance's plotted (x, y) on one plot (for tests)."""
        out = {}
        for instance, curve in self._curves[key].items():
            xs, ys = curve.getData()
            out[instance] = ([] if xs is None else list(xs), [] if ys is None else list(ys))
        return out

    # -- rendering

    def show_update(self, update: FleetUpdate) -> None:
        """Render one refresh: the snapshot (kept, marked stale, after a failed one)."""
        if update.snapshot is not None:
            self.show_snapshot(update.snapshot)
        url = self._poller.reader.url if self._poller is not None else "Prometheus"
        if update.error:
            stale = " (showing the last good refresh)" if update.stale else ""
            self._set_state(f"● {update.error}{stale}", "#c62828")
        elif update.snapshot is not None:
            s = update.snapshot
            servers = s.servers
            down = len(s.down)
            text = f"● Live from {url} · {len(servers)} model server{'s' * (len(servers) != 1)}"
            if down:
                text += f" · {down} down"
            if update.took_s is not None:
                text += f" · {update.took_s * 1000:.0f} ms"
            self._set_state(text, "#c62828" if down else "#2e7d32")
        self._refreshes += 1
        if self._refreshes == 1 or self._refreshes % HISTORY_EVERY == 0:
            self.request_history()

    def _set_state(self, text: str, colour: str) -> None:
        self.state_label.setText(text)
        self.state_label.setStyleSheet(f"color: {colour};")
        self.state_label.setAccessibleDescription(text)

    def show_snapshot(self, snapshot: FleetSnapshot) -> None:
        self._snapshot = snapshot
        servers = [r for r in snapshot.rows if r.kind not in ("router", "dcgm")]
        servers.sort(key=lambda r: r.up is not False)  # down servers first: seen at once
        self.servers_table.fill(
            [server_cells(r) for r in servers], [r.up is False for r in servers]
        )
        routers = [r for r in snapshot.rows if r.kind == "router"]
        self.routers_table.fill(
            [router_cells(r) for r in routers], [r.up is False for r in routers]
        )
        self.routers_table.setVisible(bool(routers))
        gpus = [
            {
                "host": g.hostname or g.instance,
                "gpu": g.gpu.gpu,
                "name": g.gpu.name or "—",
                "util": _n(g.gpu.utilization_pct, 0, " %"),
                "memory": _pct(g.gpu.fb_used_fraction),
                "temp": _n(g.gpu.temperature_c, 0, " °C"),
                "power": _n(g.gpu.power_w, 0, " W"),
            }
            for g in snapshot.gpus
        ]
        self.gpus_table.fill(gpus)
        self.gpus_table.setVisible(bool(gpus))
        self.warnings_label.setText("\n".join(f"⚠ {w}" for w in snapshot.warnings))
        self.warnings_label.setVisible(bool(snapshot.warnings))

    @property
    def snapshot(self) -> FleetSnapshot | None:
        return self._snapshot

    async def aclose(self) -> None:
        """Stop refreshing and close the poller's HTTP client."""
        for task in (self._task, self._history_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._poller is not None:
            await self._poller.aclose()


def make_fleet_dock(window: QMainWindow, panel: FleetPanel | None = None) -> QDockWidget:
    """A "Fleet" dock holding ``panel`` (a new one if None), tabified with the window's
    GPU dock when it has one (``window.gpu_dock``); its toggle action is
    ``dock.toggleViewAction()`` for the View menu."""
    dock = QDockWidget("Fleet", window)
    dock.setObjectName("fleetDock")
    dock.setWidget(panel if panel is not None else FleetPanel())
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    gpu_dock = getattr(window, "gpu_dock", None)
    if isinstance(gpu_dock, QDockWidget):
        window.tabifyDockWidget(gpu_dock, dock)
        gpu_dock.raise_()
    return dock


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
