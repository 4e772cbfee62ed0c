"""The GPU panel: live model-server metrics and local GPU readings, beside the answer.

:class:`GpuPanel` renders what the core derives (:mod:`kanoa_desktop.core.monitor.metrics`,
:mod:`kanoa_desktop.core.monitor.gpu`); it never parses or polls itself. Give it a
:class:`~kanoa_desktop.core.monitor.poller.MetricsPoller` and it starts the poller on the
running asyncio loop (qasync in the app) while shown and pauses it while hidden, or feed it
directly with :meth:`GpuPanel.show_snapshot` / :meth:`GpuPanel.show_update` (tests do).

Plots are :class:`~kanoa_desktop.ui.sparkline.Sparkline` widgets (QPainter, no plotting library or
numpy at start) covering the last five minutes, with the answers that streamed meanwhile
shaded. A label, a style or a plot is touched only when what it shows changed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QHideEvent, QPaintEvent, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.lazy import LazyModule
from kanoa_desktop.core.safety import plain_tooltip
from kanoa_desktop.ui.plain_text import make_labels_plain
from kanoa_desktop.ui.qt_guard import guarded
from kanoa_desktop.ui.sparkline import Sparkline

# The parsers load with the first update, the poller (httpx) on a worker thread after the
# first paint (MonitorHost): the panel shows without them (issue 18).
_gpu = LazyModule("kanoa_desktop.core.monitor.gpu")
_metrics = LazyModule("kanoa_desktop.core.monitor.metrics")
if TYPE_CHECKING:
    from kanoa_desktop.core.monitor.gpu import GpuReading, NvmlUnavailable
    from kanoa_desktop.core.monitor.metrics import DcgmGpu, ServerMetrics
    from kanoa_desktop.core.monitor.poller import (
        MetricsPoller,
        MetricsUpdate,
        PollState,
        RequestSpan,
        ServerTimings,
    )

__all__ = ["GpuPanel", "HISTORY_S"]

HISTORY_S = 300.0
_ALL_MODELS = "All models"
# PollState is a StrEnum: its members are these strings.
_STATE_COLOURS = {
    "live": "#2e7d32",
    "waiting": "#757575",
    "stale": "#ef6c00",
    "unreachable": "#c62828",
    "no_endpoint": "#c62828",
    "bad_body": "#c62828",
}
_GIB = 1024.0**3


def _num(value: float | None, unit: str, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f} {unit}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def format_latency(value: float | None) -> str:
    """A latency in seconds as "250 ms" or "1.25 s"; "—" when unknown (GPU and fleet
    panels alike)."""
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


@dataclass
class _Series:
    """One plotted quantity: its points and curve."""

    title: str
    unit: str
    plot: Sparkline
    points: deque[tuple[float, float]]


class GpuPanel(QWidget):
    """Numbers, five small five-minute plots, a state line and warnings.

    ``poller``: optional; the panel listens to it, starts ``poller.run()`` with
    ``asyncio.ensure_future`` when shown (only if an asyncio loop is running), resumes it
    on show and pauses it on hide. Without one, call :meth:`show_update` or
    :meth:`show_snapshot` yourself.
    """

    firstShown = Signal()  # noqa: N815 - once, on the first show (the window is about to paint)
    backgroundChanged = Signal(bool)  # noqa: N815 - the window was minimised (True) or restored
    firstPainted = Signal()  # noqa: N815 - once, after the first paint (then the poller loads)

    def __init__(self, poller: MetricsPoller | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._shown_once = False
        self._painted_once = False
        self.setObjectName("gpuPanel")
        self.setAccessibleName("GPU panel")
        self._poller: MetricsPoller | None = None
        self._task: asyncio.Future[None] | None = None
        self._models: tuple[str, ...] = ()
        self._live = False  # llama.cpp rates read live from /slots
        self._last_answer: ServerTimings | None = None
        self._spans: tuple[RequestSpan, ...] = ()
        self._build()
        if poller is not None:
            self.set_poller(poller)

    # -- construction

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        outer.setSpacing(4)

        top = QHBoxLayout()
        self.state_label = QLabel("Waiting for the first scrape…")
        self.state_label.setTextFormat(Qt.TextFormat.PlainText)  # may quote a server's body
        self.state_label.setObjectName("gpuPanelState")
        self.state_label.setAccessibleName("Metrics state")
        self.state_label.setWordWrap(True)
        self.state_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top.addWidget(self.state_label, 1)
        self.model_box = QComboBox()
        self.model_box.setObjectName("gpuPanelModel")
        self.model_box.setAccessibleName("Model shown")
        self.model_box.setToolTip("Show one served model, or the sum over all of them")
        self.model_box.addItem(_ALL_MODELS)
        self.model_box.setVisible(False)
        self.model_box.currentTextChanged.connect(self._model_chosen)
        top.addWidget(self.model_box)
        outer.addLayout(top)

        self.nvml_label = QLabel("")
        self.nvml_label.setObjectName("gpuPanelNvml")
        self.nvml_label.setAccessibleName("Local GPU status")
        self.nvml_label.setVisible(False)
        outer.addWidget(self.nvml_label)

        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(1)
        self._values: dict[str, QLabel] = {}
        self._names: dict[str, QLabel] = {}
        rows = [
            ("requests", "Requests"),
            ("kv", "KV cache"),
            ("prompt", "Prompt"),
            ("generation", "Generation"),
            ("ttft", "Time to first token"),
            ("itl", "Inter-token"),
            ("e2e", "End-to-end"),
            ("preemptions", "Preemptions"),
            ("prefix", "Prefix-cache hits"),
            ("sources", "Prompt sources"),
            ("prefill", "Prefill computed"),
            ("finished", "Finished"),
            ("gpu", "GPU"),
            ("energy", "Last answer"),
            ("answer", "Server timings"),
        ]
        for row, (key, title) in enumerate(rows):
            name = QLabel(title)
            name.setStyleSheet("color: palette(placeholder-text);")
            value = QLabel("—")
            value.setObjectName(f"gpuPanelValue_{key}")
            value.setAccessibleName(title)
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            name.setBuddy(value)
            grid.addWidget(name, row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(value, row, 1)
            self._values[key] = value
            self._names[key] = name
        grid.setColumnStretch(1, 1)
        outer.addLayout(grid)

        self.warnings_label = QLabel("")
        self.warnings_label.setObjectName("gpuPanelWarnings")
        self.warnings_label.setAccessibleName("Warnings")
        self.warnings_label.setWordWrap(True)
        self.warnings_label.setTextFormat(Qt.TextFormat.PlainText)
        self.warnings_label.setStyleSheet("color: #b45309;")
        self.warnings_label.setVisible(False)
        outer.addWidget(self.warnings_label)

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        outer.addWidget(line)

        self._series: dict[str, _Series] = {}
        for key, title, unit in (
            ("kv", "KV cache", "%"),
            ("generation", "Generation", "tok/s"),
            ("ttft", "TTFT p95", "s"),
            ("gpu_util", "GPU utilisation", "%"),
            ("vram", "VRAM used", "GiB"),
        ):
            self._series[key] = self._make_plot(key, title, unit)
            outer.addWidget(self._series[key].plot)
        outer.addStretch(1)
        # Values quote the server (finish reasons, model names) and NVML: text, not markup.
        make_labels_plain(self)

    def _make_plot(self, key: str, title: str, unit: str) -> _Series:
        plot = Sparkline(title, unit, HISTORY_S)
        plot.setObjectName(f"gpuPanelPlot_{key}")
        plot.setAccessibleName(f"{title} ({unit}), last 5 minutes")
        return _Series(title, unit, plot, deque())

    # -- poller wiring

    @property
    def poller(self) -> MetricsPoller | None:
        return self._poller

    def set_poller(self, poller: MetricsPoller | None) -> None:
        """Listen to ``poller`` (replacing any previous one, which is stopped)."""
        if self._poller is not None:
            self._poller.remove_listener(self.show_update)
            self._poller.stop()
            self._task = None
        self._poller = poller
        if poller is not None:
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

    @guarded()
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            self.window().installEventFilter(self)
            self.firstShown.emit()
        self._start_or_resume()

    @guarded()
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        super().paintEvent(event)
        if not self._painted_once:
            self._painted_once = True
            QTimer.singleShot(0, self.firstPainted.emit)  # once this paint is on screen

    @guarded(fallback=False)
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.WindowStateChange and obj is self.window():
            self.backgroundChanged.emit(self.window().isMinimized())
        return False

    @guarded()
    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 - Qt's name
        # Nobody sees the numbers: stop scraping the server (and reading NVML).
        if self._poller is not None:
            self._poller.pause()
        super().hideEvent(event)

    def _model_chosen(self, text: str) -> None:
        if self._poller is None or not text:
            return
        self._poller.deriver.model = None if text == _ALL_MODELS else text

    # -- rendering

    def show_update(self, update: MetricsUpdate) -> None:
        """Render one poller update (state line, numbers, local GPUs, request spans)."""
        gpus: Sequence[GpuReading] | NvmlUnavailable | None = update.gpus
        self._live = update.live_from_slots
        self._last_answer = update.last_answer
        self.show_snapshot(
            update.snapshot if update.state in ("live", "stale") else None,
            gpus,
            now=update.timestamp,
            requests=update.requests,
            plot=update.state == "live",
        )
        self.show_state(update.state, update.message, update.snapshot)

    def show_state(
        self, state: PollState, message: str, snapshot: ServerMetrics | None = None
    ) -> None:
        """Set the state line: live / stale N s / unreachable: reason / no endpoint: how."""
        text = message
        if state == "live" and snapshot is not None:
            kinds = _metrics.ServerKind
            server = {
                kinds.VLLM: "vLLM",
                kinds.LLAMACPP: "llama.cpp",
                kinds.DCGM: "DCGM exporter",
            }.get(snapshot.kind, "unknown server")
            text = f"{message} · {server}"
            if snapshot.models:
                text += f" · {', '.join(snapshot.models)}"
        colour = _STATE_COLOURS.get(state, "#757575")
        self.state_label.setText(f"● {text}")  # QLabel ignores an unchanged text
        style = f"color: {colour};"
        if self.state_label.styleSheet() != style:  # a style sheet re-polishes on every set
            self.state_label.setStyleSheet(style)
        if self.state_label.accessibleDescription() != text:
            self.state_label.setAccessibleDescription(text)

    def show_snapshot(
        self,
        snapshot: ServerMetrics | None,
        gpu_readings: Sequence[GpuReading] | NvmlUnavailable | None = None,
        *,
        now: float | None = None,
        requests: Sequence[RequestSpan] = (),
        plot: bool = True,
    ) -> None:
        """Render a snapshot and local GPU readings.

        ``snapshot`` None clears the server numbers (shown as "—"). ``gpu_readings``: a
        list of :class:`GpuReading`, :class:`NvmlUnavailable` (one line says so), or None
        (no local reading; a DCGM snapshot's GPUs are shown instead). ``now`` is the
        monotonic time of the reading (default: the snapshot's timestamp); ``requests``
        are answer spans on the same clock, shaded on the plots. ``plot`` False updates
        the numbers without adding points (e.g. a stale repeat).
        """
        if now is None:
            now = snapshot.timestamp if snapshot is not None else time.monotonic()
        s = snapshot
        v = self._values
        if s is None:
            for label in v.values():
                label.setText("—")
        else:
            self._set_models(s.models)
            counts = f"{_num(s.requests_running, 'running', 0)} · {_num(s.requests_waiting, 'waiting', 0)}"
            reasons = {k: n for k, n in s.waiting_by_reason.items() if n}
            if reasons:
                # vLLM's reasons: capacity = no room in the KV cache; deferred = LoRA
                # budget or a KV transfer holds it back.
                words = {"capacity": "for KV space", "deferred": "deferred"}
                counts += (
                    " ("
                    + ", ".join(f"{n:.0f} {words.get(k, k)}" for k, n in sorted(reasons.items()))
                    + ")"
                )
            v["requests"].setText(counts)
            v["kv"].setText(_pct(s.kv_cache_usage))
            prompt = _num(s.prompt_tokens_per_s, "tok/s")
            generation = _num(s.generation_tokens_per_s, "tok/s")
            if s.prompt_speed_tok_s is not None:
                prompt += f" (busy {_num(s.prompt_speed_tok_s, 'tok/s', 0)})"
            if s.generation_speed_tok_s is not None:
                generation += f" (busy {_num(s.generation_speed_tok_s, 'tok/s', 0)})"
            if self._live and s.kind is _metrics.ServerKind.LLAMACPP:
                # Read from /slots during the answer: not held back until it ends.
                prompt += " · live"
                generation += " · live"
            v["prompt"].setText(prompt)
            v["generation"].setText(generation)
            for key, p50, p95 in (
                ("ttft", s.ttft_p50_s, s.ttft_p95_s),
                ("itl", s.itl_p50_s, s.itl_p95_s),
                ("e2e", s.e2e_p50_s, s.e2e_p95_s),
            ):
                v[key].setText(f"p50 {format_latency(p50)} · p95 {format_latency(p95)}")
            v["preemptions"].setText(_num(s.preemptions_per_min, "/min"))
            prefix = _pct(s.prefix_cache_hit_rate)
            if s.prefix_cache_hit_rate_lifetime is not None:
                prefix += f" (overall {_pct(s.prefix_cache_hit_rate_lifetime)})"
            v["prefix"].setText(prefix)
            sources = s.prompt_tokens_by_source
            if s.prompt_cache_share is not None:
                v["sources"].setText(
                    f"{_pct(s.prompt_cache_share)} from the prefix cache ("
                    f"{sources.get('local_cache_hit', 0):,.0f} cached · "
                    f"{sources.get('local_compute', 0):,.0f} computed"
                    + (
                        f" · {sources['external_kv_transfer']:,.0f} transferred"
                        if sources.get("external_kv_transfer")
                        else ""
                    )
                    + " tokens, last minute)"
                )
            else:
                v["sources"].setText("—")
            if s.prefill_computed_p50_tokens is not None:
                v["prefill"].setText(
                    f"p50 {s.prefill_computed_p50_tokens:,.0f} · "
                    f"p95 {_num(s.prefill_computed_p95_tokens, 'tokens', 0)} per request"
                )
            else:
                v["prefill"].setText("—")
            v["finished"].setText(
                " · ".join(f"{k} {n}" for k, n in sorted(s.finished_reasons.items()) if n) or "—"
            )

        warnings: list[str] = list(s.warnings) if s is not None else []
        gpu_text, util, vram_gib = "—", None, None
        if isinstance(gpu_readings, _gpu.NvmlUnavailable):
            self.nvml_label.setText(gpu_readings.message)
            self.nvml_label.setToolTip(plain_tooltip(gpu_readings.detail))
            self.nvml_label.setVisible(True)
        else:
            self.nvml_label.setVisible(False)
        local = list(gpu_readings) if isinstance(gpu_readings, Sequence) else []
        if local:
            gpu_text = "\n".join(_local_gpu_text(g) for g in local)
            util = _mean([g.utilization_pct for g in local])
            vram_gib = _total([g.memory_used_bytes for g in local], _GIB)
            for g in local:
                warnings.extend(g.warnings)
        elif s is not None and s.gpus:
            gpu_text = "\n".join(_dcgm_gpu_text(g) for g in s.gpus)
            util = _mean([g.utilization_pct for g in s.gpus])
            vram_gib = _total([g.fb_used_mib for g in s.gpus], 1024.0)
        v["gpu"].setText(gpu_text)

        t = self._last_answer
        if t is not None and (t.generation_per_s is not None or t.prompt_per_s is not None):
            parts = [
                f"generation {_num(t.generation_per_s, 'tok/s')}",
                f"prompt {_num(t.prompt_per_s, 'tok/s', 0)}",
            ]
            if t.cached_tokens:
                parts.append(f"{t.cached_tokens:,} cached")
            v["answer"].setText(" · ".join(parts))
        else:
            v["answer"].setText("—")
        # Rows only some servers fill (newer vLLM, llama.cpp timings) hide when empty.
        for key in ("sources", "prefill", "answer"):
            shown = v[key].text() != "—"
            v[key].setVisible(shown)
            self._names[key].setVisible(shown)

        self._spans = tuple(requests)
        finished = [r for r in self._spans if r.end is not None]
        if finished and finished[-1].energy_wh is not None:
            v["energy"].setText(f"{finished[-1].energy_wh:.2f} Wh")
        elif any(r.end is None for r in self._spans):
            v["energy"].setText("streaming…")
        else:
            v["energy"].setText("—")

        self.warnings_label.setText("\n".join(f"⚠ {w}" for w in warnings))
        self.warnings_label.setVisible(bool(warnings))

        if plot:
            self._add_points(
                now,
                {
                    "kv": s.kv_cache_usage * 100 if s and s.kv_cache_usage is not None else None,
                    "generation": s.generation_tokens_per_s if s else None,
                    "ttft": s.ttft_p95_s if s else None,
                    "gpu_util": util,
                    "vram": vram_gib,
                },
            )
        self._draw(now)

    def _set_models(self, models: tuple[str, ...]) -> None:
        if models == self._models:
            return
        self._models = models
        current = self.model_box.currentText()
        self.model_box.blockSignals(True)
        self.model_box.clear()
        self.model_box.addItem(_ALL_MODELS)
        self.model_box.addItems(list(models))
        index = self.model_box.findText(current)
        self.model_box.setCurrentIndex(max(index, 0))
        self.model_box.blockSignals(False)
        # A choice only matters with more than one model.
        self.model_box.setVisible(len(models) > 1)

    def _add_points(self, now: float, values: dict[str, float | None]) -> None:
        for key, value in values.items():
            points = self._series[key].points
            # NaN breaks the line: an unknown value is a gap, not a zero.
            points.append((now, math.nan if value is None else float(value)))
            while points and points[0][0] < now - HISTORY_S:
                points.popleft()

    def _draw(self, now: float) -> None:
        for key in ("gpu_util", "vram"):
            # Without NVML or DCGM there is no GPU line to draw: do not show empty plots.
            series = self._series[key]
            series.plot.setVisible(any(not math.isnan(y) for _, y in series.points))
        spans = [
            (max(r.start - now, -HISTORY_S), min((r.end if r.end is not None else now) - now, 0.0))
            for r in self._spans
            if (r.end if r.end is not None else now) >= now - HISTORY_S
        ]
        for series in self._series.values():
            # Repaints only a plot whose points or spans changed (Sparkline compares).
            series.plot.set_data(
                [t - now for t, _ in series.points], [y for _, y in series.points], spans
            )

    def series_points(self, key: str) -> list[tuple[float, float]]:
        """The plotted ``(monotonic time, value)`` points of ``kv``, ``generation``, ``ttft``,
        ``gpu_util`` or ``vram`` (NaN where unknown); for tests and exports."""
        return list(self._series[key].points)

    def visible_request_spans(self, key: str = "kv") -> list[tuple[float, float]]:
        """The shaded regions now drawn on a plot, as (start, end) seconds relative to now."""
        return self._series[key].plot.spans()

    @guarded()
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._poller is not None:
            self._poller.stop()
        super().closeEvent(event)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    # qasync marks its loop as running while Qt dispatches events (run_forever sets it), so
    # this finds it from a showEvent. Never create a loop here: without one, do nothing.
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _total(values: Sequence[float | None], per_unit: float) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / per_unit if known else None


def _local_gpu_text(g: GpuReading) -> str:
    parts = [g.name or f"GPU {g.index}", _num(g.utilization_pct, "%", 0)]
    if g.memory_used_bytes is not None and g.memory_total_bytes:
        parts.append(f"{g.memory_used_bytes / _GIB:.1f} / {g.memory_total_bytes / _GIB:.1f} GiB")
    parts.append(_num(g.temperature_c, "°C", 0))
    if g.power_w is not None:
        limit = f" / {g.power_limit_w:.0f}" if g.power_limit_w is not None else ""
        parts.append(f"{g.power_w:.0f}{limit} W")
    if g.pcie_gen is not None and g.pcie_width is not None:
        best = ""
        if g.pcie_max_gen is not None and g.pcie_max_width is not None:
            best = f" (max {g.pcie_max_gen} x{g.pcie_max_width})"
        parts.append(f"PCIe {g.pcie_gen} x{g.pcie_width}{best}")
    return " · ".join(parts)


def _dcgm_gpu_text(g: DcgmGpu) -> str:
    parts = [f"{g.name or 'GPU'} #{g.gpu}", _num(g.utilization_pct, "%", 0)]
    if g.fb_used_mib is not None and g.fb_free_mib is not None:
        total = (g.fb_used_mib + g.fb_free_mib) / 1024
        parts.append(f"{g.fb_used_mib / 1024:.1f} / {total:.1f} GiB")
    parts.append(_num(g.temperature_c, "°C", 0))
    parts.append(_num(g.power_w, "W", 0))
    return " · ".join(parts)
