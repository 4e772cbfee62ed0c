"""The Fleet view: every model server, router and GPU a Prometheus server scrapes.

:class:`FleetPanel` renders what :mod:`kanoa_desktop.core.monitor.fleet` reads; it never
queries by itself. Give it a :class:`~kanoa_desktop.core.monitor.fleet.FleetPoller` and
it starts the poller on the running asyncio loop (qasync in the app) while shown, pauses
it while hidden, and asks for the plots' history (Prometheus ``query_range``) when the
range changes and every few refreshes. Tests feed it with :meth:`FleetPanel.show_update`
and :meth:`FleetPanel.show_history`.

Tables are updated in place (items reused, no rebuild per refresh), so 50 instances cost
the same few milliseconds a refresh as 2; the plots are painted with QPainter (no plotting
library or numpy). Importing this module and building the panel load nothing heavy: the
fleet core (httpx) is imported when the panel is first shown with a Prometheus address set.
:func:`make_fleet_dock` wraps the panel in a dock for the main window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QHideEvent, QPainter, QPainterPath, QPen, QShowEvent
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

from kanoa_desktop.core.safety import escape_rich
from kanoa_desktop.ui.gpu_panel import format_latency
from kanoa_desktop.ui.plain_text import make_labels_plain
from kanoa_desktop.ui.qt_guard import guarded
from kanoa_desktop.ui.sparkline import round_down

if TYPE_CHECKING:  # the fleet core brings httpx: imported when a Prometheus is set
    from kanoa_desktop.core.monitor.fleet import (
        FleetPoller,
        FleetRow,
        FleetSnapshot,
        FleetUpdate,
    )

__all__ = ["FleetPanel", "make_fleet_dock"]

log = logging.getLogger(__name__)

# The plots' time ranges (label, seconds); history comes from Prometheus's query_range.
RANGES: tuple[tuple[str, float], ...] = (("15 min", 900.0), ("1 h", 3600.0), ("6 h", 21600.0))
# What the plots show: fleet figure -> (title, unit, scale applied to the value).
PLOT_FIGURES: dict[str, tuple[str, str, float]] = {
    "generation_tps": ("Generation", "tok/s", 1.0),
    "kv": ("KV cache", "%", 100.0),
    "waiting": ("Waiting requests", "", 1.0),
    "ttft_p95": ("TTFT p95", "s", 1.0),
}

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
        "ttft": f"{format_latency(row.ttft_p50_s)} / {format_latency(row.ttft_p95_s)}",
        "itl": f"{format_latency(row.itl_p50_s)} / {format_latency(row.itl_p95_s)}",
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


class MultiLinePlot(QWidget):
    """One figure for every instance: a line each, painted with QPainter (no plotting
    library, no numpy), x in seconds before now over ``range_s``, y from zero (0..100 for
    percent). Repaints only when its data changes or Qt asks."""

    def __init__(self, title: str, unit: str, range_s: float, parent: QWidget | None = None):
        super().__init__(parent)
        self.title, self.unit, self.range_s = title, unit, range_s
        self._series: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
        self._colours: dict[str, str] = {}
        self._top = 100.0 if unit == "%" else 1.0
        self.setMinimumHeight(90)
        self.setMaximumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_series(
        self,
        series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
        range_s: float,
        colours: Mapping[str, str] | None = None,
    ) -> None:
        """Show one line per name; ``colours`` (name -> colour) keeps an instance's colour
        the same on every plot."""
        self._colours = dict(colours or {})
        data = {k: (tuple(xs), tuple(ys)) for k, (xs, ys) in series.items()}
        high = max((y for _, ys in data.values() for y in ys if math.isfinite(y)), default=0.0)
        top = 100.0 if self.unit == "%" else (high * 1.15 if high > 0 else 1.0)
        if (data, range_s, top) == (self._series, self.range_s, self._top):
            return
        self._series, self.range_s, self._top = data, range_s, top
        self.update()

    def series(self) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
        return dict(self._series)

    @guarded()
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        from kanoa_desktop.ui.theme import plot_colours

        fg = QColor(plot_colours().foreground)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        font = p.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        p.setFont(font)
        fm = p.fontMetrics()
        left, top_m, bottom_m = 38.0, fm.height() + 2.0, fm.height() + 2.0
        area = QRectF(left, top_m, max(1.0, self.width() - left - 6.0),
                      max(1.0, self.height() - top_m - bottom_m))  # fmt: skip
        p.setPen(fg)
        unit = f" ({self.unit})" if self.unit else ""
        p.drawText(QRectF(0, 0, self.width(), top_m), Qt.AlignmentFlag.AlignHCenter,
                   f"{self.title}{unit}")  # fmt: skip
        span = self.range_s

        def sx(x: float) -> float:
            return area.left() + (x + span) / span * area.width()

        def sy(y: float) -> float:
            return area.bottom() - min(max(y / self._top, 0.0), 1.0) * area.height()

        p.drawLine(QPointF(area.left(), area.top()), QPointF(area.left(), area.bottom()))
        p.drawLine(QPointF(area.left(), area.bottom()), QPointF(area.right(), area.bottom()))
        if self.unit == "%":
            ticks = [0.0, 50.0, 100.0]
        else:
            high = self._top / 1.15 if self._top != 1.0 else 0.0
            ticks = [0.0, round_down(high) if high > 0 else 1.0]
        for tick in ticks:
            y = sy(tick)
            p.drawLine(QPointF(area.left(), y), QPointF(area.left() + 4, y))
            p.drawText(QRectF(0, y - fm.height() / 2, left - 4, fm.height()),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       f"{tick:g}")  # fmt: skip
        minutes = span / 60.0
        step = next((m for m in (1, 5, 10, 15, 30, 60, 120) if minutes / m <= 6), 120)
        for m in range(step, int(minutes), step):  # not at the left edge: no room
            px = sx(-m * 60.0)
            p.drawLine(QPointF(px, area.bottom()), QPointF(px, area.bottom() - 4))
            label = f"−{m // 60} h" if m % 60 == 0 and m >= 60 else f"−{m} min"
            p.drawText(QRectF(px - 40, area.bottom() + 1, 80, bottom_m),
                       Qt.AlignmentFlag.AlignHCenter, label)  # fmt: skip
        p.setClipRect(area.adjusted(-1, -1, 1, 1))
        for i, name in enumerate(sorted(self._series)):
            xs, ys = self._series[name]
            path = QPainterPath()
            down = False
            for x, y in zip(xs, ys, strict=True):
                if not math.isfinite(y) or x < -span:
                    down = False
                    continue
                point = QPointF(sx(x), sy(y))
                if down:
                    path.lineTo(point)
                else:
                    path.moveTo(point)
                    down = True
            pen = QPen(QColor(self._colours.get(name, _PALETTE[i % len(_PALETTE)])))
            pen.setWidthF(1.4)
            p.setPen(pen)
            p.drawPath(path)
            if path.elementCount() == 1:  # one sample so far: a dot, not nothing
                p.drawEllipse(path.elementAt(0).x - 1.5, path.elementAt(0).y - 1.5, 3.0, 3.0)
        p.end()


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
        self._dock_hooked = False
        self._seen = False  # on screen: shown, and its dock's tab is the current one
        self._wanted: tuple[str, str | None, float] | None = None  # set_prometheus_url's
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
        # Says Prometheus's own words (its errors): shown as text, never as markup.
        self.state_label.setTextFormat(Qt.TextFormat.PlainText)
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

        self._plots: dict[str, MultiLinePlot] = {}
        grid = QGridLayout()
        grid.setSpacing(2)
        outer.addLayout(grid)
        for index, (key, (title, unit, _scale)) in enumerate(PLOT_FIGURES.items()):
            plot = MultiLinePlot(title, unit, RANGES[0][1])
            plot.setObjectName(f"fleetPlot_{key}")
            plot.setAccessibleName(f"{title} per instance")
            self._plots[key] = plot
            grid.addWidget(plot, index // 2, index % 2)
        # Which colour is which instance (the same in every plot: sorted names).
        self.legend_label = QLabel("")
        self.legend_label.setObjectName("fleetLegend")
        self.legend_label.setAccessibleName("Plot legend")
        self.legend_label.setTextFormat(Qt.TextFormat.RichText)
        self.legend_label.setWordWrap(True)
        outer.addWidget(self.legend_label)
        outer.addStretch(1)
        make_labels_plain(self)  # the legend above is the one label built for markup

    # -- poller wiring

    @property
    def poller(self) -> FleetPoller | None:
        return self._poller

    def set_prometheus_url(
        self, url: str | None, *, router_url: str | None = None, interval_s: float = 5.0
    ) -> None:
        """Read the fleet from the Prometheus server at ``url`` (the app's, or the active
        profile's own: ``fleet_prometheus_url``), refreshing every ``interval_s`` while
        shown; None or "" shows how to set one. The same URL again keeps the running
        poller."""
        url = (url or "").strip() or None
        self._wanted = (url, router_url, interval_s) if url is not None else None
        if url is None:
            self.set_poller(None)
            return
        if self._seen:
            self._apply_wanted()
        else:
            self.state_label.setText(f"Reads the fleet from {url} when shown.")

    def _apply_wanted(self) -> None:
        if self._wanted is None:
            return
        url, router_url, interval_s = self._wanted
        # Imported now, not with the window: the fleet core brings httpx.
        from kanoa_desktop.core.monitor.fleet import FleetPoller, FleetReader

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
        if self._seen:
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

    def _dock(self) -> QDockWidget | None:
        parent = self.parentWidget()
        while parent is not None and not isinstance(parent, QDockWidget):
            parent = parent.parentWidget()
        return parent

    @guarded()
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        dock = self._dock()
        if dock is not None:
            # In a dock tabbed behind another, the panel is "shown" without being seen:
            # the dock's visibilityChanged says when its tab is really on screen.
            if not self._dock_hooked:
                dock.visibilityChanged.connect(self._dock_visibility)
                self._dock_hooked = True
            return
        self._dock_visibility(True)

    def dock_shown(self) -> None:
        """Its dock's tab is on screen now: for a panel made in answer to that very
        ``visibilityChanged`` (the window builds its hidden docks' contents lazily), whose
        own connection came too late to hear it."""
        self._dock_visibility(True)

    def _dock_visibility(self, visible: bool) -> None:
        self._seen = visible
        if visible:
            self._apply_wanted()
            self._start_or_resume()
        elif self._poller is not None:  # nobody looks: stop asking Prometheus
            self._poller.pause()

    @guarded()
    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 - Qt's name
        self._seen = False
        if self._poller is not None:  # nobody looks: stop asking Prometheus
            self._poller.pause()
        super().hideEvent(event)

    @guarded()
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
        from kanoa_desktop.core.monitor.fleet import PrometheusError

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
        _title, _unit, scale = PLOT_FIGURES[key]
        now = time.time() if now is None else now
        range_s = self.range_s if range_s is None else range_s
        series = {
            instance: ([t - now for t, _ in points], [v * scale for _, v in points])
            for instance, points in data.items()
        }
        names = sorted(set(series).union(*(p.series() for k, p in self._plots.items() if k != key)))
        colours = {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(names)}
        self._plots[key].set_series(series, range_s, colours)
        self.legend_label.setText(
            " ".join(
                f"<span style='color:{colours[n]}'>●</span>&nbsp;{escape_rich(n)}" for n in names
            )
        )

    def curve_data(self, key: str) -> dict[str, tuple[list[float], list[float]]]:
        """Each instance's plotted (x in minutes before now, y) on one plot (for tests)."""
        return {
            instance: ([x / 60.0 for x in xs], list(ys))
            for instance, (xs, ys) in self._plots[key].series().items()
        }

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
