"""The GPU panel fed with derived snapshots (offscreen Qt), and wired to a real poller."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QLabel  # noqa: E402

from kanoa_desktop.core.monitor.gpu import GpuReading, NvmlUnavailable  # noqa: E402
from kanoa_desktop.core.monitor.metrics import MetricsDeriver, parse_scrape  # noqa: E402
from kanoa_desktop.core.monitor.poller import (  # noqa: E402
    MetricsPoller,
    MetricsUpdate,
    PollState,
    RequestSpan,
)
from kanoa_desktop.ui.gpu_panel import GpuPanel  # noqa: E402
from tests.metrics.bodies import Series, vllm_body  # noqa: E402

DATA = Path(__file__).parent / "data"
REFERENCE = (Path(__file__).parents[1] / "data" / "vllm-0.33-metrics.prom").read_text()


def snapshots(*series_at: tuple[Series, float], model: str | None = None):
    deriver = MetricsDeriver(model=model)
    return [deriver.update(parse_scrape(vllm_body(s), t)) for s, t in series_at]


def value(panel: GpuPanel, key: str) -> str:
    return panel.findChild(QLabel, f"gpuPanelValue_{key}").text()


@pytest.fixture
def panel(qtbot):
    widget = GpuPanel()
    qtbot.addWidget(widget)
    widget.resize(380, 900)
    return widget


def test_numbers_are_shown_with_units(panel):
    a, b = snapshots(
        (Series(generation=0, prompt=0, kv=0.42, running=2, waiting=0, ttft=[0] * 5), 0.0),
        (Series(generation=90, prompt=300, kv=0.5, running=2, ttft=[0, 2, 6, 8, 8]), 2.0),
    )
    panel.show_snapshot(a)
    panel.show_snapshot(b)
    assert value(panel, "kv") == "50.0 %"
    assert value(panel, "generation") == "45.0 tok/s"  # 90 tokens in 2 s
    assert value(panel, "prompt") == "150.0 tok/s"
    assert value(panel, "requests") == "2 running · 0 waiting"
    assert value(panel, "ttft") == "p50 375 ms · p95 900 ms"  # see test_metrics for the sums
    assert value(panel, "itl") == "p50 — · p95 —"  # nothing in the window: unknown


def test_time_series_keep_gaps_for_unknown_values_and_drop_points_after_5_minutes(panel):
    steps = [(Series(generation=10 * i, kv=0.1), float(i * 60)) for i in range(7)]
    for snap in snapshots(*steps):
        panel.show_snapshot(snap)
    generation = panel.series_points("generation")
    assert [t for t, _ in generation] == [60.0, 120.0, 180.0, 240.0, 300.0, 360.0]
    assert generation[-1][1] == pytest.approx(10 / 60)
    assert [y for _, y in panel.series_points("kv")] == pytest.approx([10.0] * 6)
    assert all(math.isnan(y) for _, y in panel.series_points("ttft"))  # no requests: no p95


def test_no_nvidia_driver_is_one_line_and_hides_the_gpu_plots(panel):
    [snap] = snapshots((Series(), 0.0))
    panel.show()
    panel.show_snapshot(snap, NvmlUnavailable("NVML could not start: Driver Not Loaded."))
    assert panel.nvml_label.isVisible()
    assert panel.nvml_label.text() == "No NVIDIA driver: showing server metrics only."
    assert not panel.findChild(object, "gpuPanelPlot_vram").isVisible()
    assert panel.findChild(object, "gpuPanelPlot_kv").isVisible()
    assert value(panel, "gpu") == "—"


def test_local_gpu_readings_and_their_warnings(panel):
    [snap] = snapshots((Series(), 0.0))
    gpu = GpuReading(
        index=0,
        name="RTX 4090",
        utilization_pct=50.0,
        memory_used_bytes=23 * 2**30,
        memory_total_bytes=24 * 2**30,
        temperature_c=70.0,
        power_w=300.0,
        power_limit_w=450.0,
        pcie_gen=3,
        pcie_width=1,
        pcie_max_gen=3,
        pcie_max_width=4,
    )
    panel.show()
    panel.show_snapshot(snap, [gpu])
    assert not panel.nvml_label.isVisible()
    text = value(panel, "gpu")
    assert "50 %" in text and "23.0 / 24.0 GiB" in text and "300 / 450 W" in text
    assert "PCIe 3 x1 (max 3 x4)" in text
    assert "slows model loading and image upload" in panel.warnings_label.text()
    assert "memory is 96% full" in panel.warnings_label.text()
    assert panel.series_points("vram")[-1][1] == pytest.approx(23.0)
    assert panel.findChild(object, "gpuPanelPlot_vram").isVisible()


def test_dcgm_gpus_are_shown_when_there_is_no_local_reading(panel):
    deriver = MetricsDeriver()
    snap = deriver.update(parse_scrape((DATA / "dcgm.prom").read_text(), 0.0))
    panel.show_snapshot(snap, None)
    assert "NVIDIA H100 80GB HBM3 #0 · 87 %" in value(panel, "gpu")
    assert panel.series_points("gpu_util")[-1][1] == pytest.approx(43.5)  # mean of 87 and 0


def test_server_warnings_are_listed(panel):
    [snap] = snapshots((Series(kv=0.95, waiting=2), 0.0))
    panel.show()
    panel.show_snapshot(snap)
    assert panel.warnings_label.isVisible()
    lines = panel.warnings_label.text().splitlines()
    assert lines[0].startswith("⚠ KV cache is 95% full")
    assert lines[1].startswith("⚠ 2 requests are waiting")


def test_streaming_requests_are_shaded_relative_to_now(panel):
    [snap] = snapshots((Series(), 500.0))
    spans = [RequestSpan(400.0, 430.0, 0.5), RequestSpan(480.0)]
    panel.show_snapshot(snap, requests=spans)
    assert panel.visible_request_spans("kv") == [(-100.0, -70.0), (-20.0, 0.0)]
    assert value(panel, "energy") == "0.50 Wh"
    panel.show_snapshot(snap, requests=[])
    assert panel.visible_request_spans("kv") == []


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (PollState.STALE, "Stale: last good scrape 4 s ago (x did not answer in time)"),
        (PollState.UNREACHABLE, "Unreachable: nothing is listening at x (connection refused)"),
        (PollState.NO_ENDPOINT, "No metrics endpoint: start llama-server with --metrics"),
    ],
)
def test_state_line_says_what_is_wrong(panel, state, message):
    [snap] = snapshots((Series(kv=0.3), 0.0))
    update = MetricsUpdate(state, message, "http://x/metrics", 5.0, snap, 4.0)
    panel.show_update(update)
    state_label = panel.findChild(QLabel, "gpuPanelState")
    assert state_label.text() == f"● {message}"
    # Stale keeps the last numbers; otherwise they are not current and are cleared.
    assert value(panel, "kv") == ("30.0 %" if state is PollState.STALE else "—")


def test_model_choice_is_offered_for_several_models_and_reaches_the_deriver(qtbot):
    poller = MetricsPoller("http://127.0.0.1:9/metrics")
    panel = GpuPanel(poller)
    qtbot.addWidget(panel)
    panel.show()
    [snap] = snapshots((Series(model="a"), 0.0), model=None)
    panel.show_snapshot(snap)
    assert not panel.model_box.isVisible()  # one model: nothing to choose
    [snap] = [
        MetricsDeriver().update(parse_scrape(vllm_body(Series(model="a"), Series(model="b")), 1.0))
    ]
    panel.show_snapshot(snap)
    assert panel.model_box.isVisible()
    assert panel.model_box.accessibleName() == "Model shown"
    panel.model_box.setCurrentText("b")
    assert poller.deriver.model == "b"
    panel.model_box.setCurrentText("All models")
    assert poller.deriver.model is None


def test_without_a_running_loop_show_and_hide_only_resume_and_pause(qtbot):
    poller = MetricsPoller("http://127.0.0.1:9/metrics")
    panel = GpuPanel(poller)
    qtbot.addWidget(panel)
    panel.show()
    assert not poller.paused and panel._task is None
    panel.hide()
    assert poller.paused
    panel.show()
    assert not poller.paused


async def test_panel_runs_the_poller_on_the_running_loop_and_pauses_when_hidden(
    qtbot, metrics_server
):
    metrics_server.respond(200, REFERENCE)
    poller = MetricsPoller(metrics_server.url, interval_s=0.05)
    panel = GpuPanel(poller)
    qtbot.addWidget(panel)
    try:
        panel.show()
        for _ in range(200):
            if poller.latest is not None:
                break
            await asyncio.sleep(0.02)
        assert panel.state_label.text() == "● Live · vLLM · qwen2.5-vl-7b"
        panel.hide()
        assert poller.paused
    finally:
        await poller.aclose()
        if panel._task is not None:
            await asyncio.wait_for(panel._task, 5)


def test_panel_shown_from_a_qt_event_starts_the_poller_on_a_qasync_loop(
    qtbot, qapp, metrics_server
):
    from PySide6.QtCore import QTimer

    metrics_server.respond(200, REFERENCE)
    poller = MetricsPoller(metrics_server.url, interval_s=0.05)
    panel = GpuPanel(poller)
    qtbot.addWidget(panel)
    from kanoa_desktop.ui.app import close_event_loop, create_event_loop

    loop = create_event_loop(qapp)
    asyncio.set_event_loop(loop)

    async def scenario() -> int:
        QTimer.singleShot(0, panel.show)  # as the main window shows its dock
        for _ in range(200):
            if poller.latest is not None:
                break
            await asyncio.sleep(0.02)
        panel.hide()
        await asyncio.sleep(0.1)  # a poll already under way may still land
        hits = metrics_server.hits
        await asyncio.sleep(0.3)  # six intervals while hidden
        paused_hits = metrics_server.hits - hits
        await poller.aclose()
        await asyncio.wait_for(panel._task, 5)
        return paused_hits

    try:
        paused_hits = loop.run_until_complete(scenario())
    finally:
        close_event_loop(loop)
        asyncio.set_event_loop(None)
    assert panel.state_label.text() == "● Live · vLLM · qwen2.5-vl-7b"
    assert paused_hits == 0
