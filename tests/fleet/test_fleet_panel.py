"""The Fleet view's widget fed with snapshots built from Prometheus-shaped results (no
servers): a down server is marked, 50 instances render in place, warnings show, and a
failed refresh keeps the last rows and says why. The real-Prometheus run of the same panel
is in test_fleet_prometheus.py."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt

from kanoa_desktop.core.monitor.fleet import FleetUpdate, build_snapshot
from kanoa_desktop.ui.fleet_panel import FleetPanel, make_fleet_dock


def sample(figure: str, instance: str, value: float | str, **labels: str) -> dict:
    return {
        "metric": {"kanoa_figure": figure, "instance": instance, **labels},
        "value": [time.time(), str(value)],
    }


def fleet_result(n: int, *, down: set[int] = frozenset(), kv_full: set[int] = frozenset()):
    result = []
    for i in range(n):
        inst = f"10.0.0.{i}:8000"
        result.append(sample("up", inst, 0 if i in down else 1, job="vllm"))
        if i in down:
            continue
        result += [
            sample("kind_vllm", inst, 1),
            sample("models", inst, 1, model_name="qwen2.5-vl-7b"),
            sample("running", inst, i % 4),
            sample("waiting", inst, 0),
            sample("kv", inst, 0.95 if i in kv_full else 0.25),
            sample("generation_tps", inst, 20.0 + i),
            sample("prompt_tps", inst, 100.0 + i),
            sample("ttft_p50", inst, 0.05),
            sample("ttft_p95", inst, "NaN"),  # no observations: unknown, not zero
        ]
    return result


def test_down_server_and_full_kv_cache_are_marked_and_warned(qtbot):
    panel = FleetPanel()
    qtbot.addWidget(panel)
    snap = build_snapshot(fleet_result(3, down={1}, kv_full={2}), time.time(), 60.0)
    panel.show_update(FleetUpdate(snap, took_s=0.012))
    table = panel.servers_table
    # Down servers first, then the others in address order.
    assert [table.cell_text(r, "instance") for r in range(3)] == [
        "10.0.0.1:8000",
        "10.0.0.0:8000",
        "10.0.0.2:8000",
    ]
    assert [table.cell_text(r, "state") for r in range(3)] == ["down", "up", "up"]
    assert table.cell_text(0, "generation") == "—"
    assert table.cell_text(1, "ttft") == "50 ms / —"
    assert table.cell_text(2, "kv") == "95 %"
    assert table.item(0, 0).background().color().alpha() > 0
    assert table.item(1, 0).background().style() == Qt.BrushStyle.NoBrush
    warnings = panel.warnings_label.text()
    assert "10.0.0.1:8000 (vllm) is down" in warnings
    assert "10.0.0.2:8000 (vllm): KV cache is 95% full" in warnings
    assert "1 down" in panel.state_label.text()


def test_fifty_instances_refresh_in_place(qtbot):
    panel = FleetPanel()
    qtbot.addWidget(panel)
    panel.resize(1000, 700)
    panel.show_update(FleetUpdate(build_snapshot(fleet_result(50), time.time(), 60.0)))
    first_item = panel.servers_table.item(10, 0)
    panel.show_update(FleetUpdate(build_snapshot(fleet_result(50, down={10}), time.time(), 60.0)))
    assert panel.servers_table.rowCount() == 50
    assert panel.servers_table.item(10, 0) is first_item, "items are reused, not rebuilt"
    assert panel.servers_table.cell_text(0, "instance") == "10.0.0.10:8000"
    assert panel.servers_table.cell_text(0, "state") == "down"
    assert panel.servers_table.cell_text(49, "generation") == "69.0"
    panel.show()
    panel.grab().save("/tmp/kanoa-fleet-50.png")


def test_failed_refresh_keeps_the_last_rows_and_says_why(qtbot):
    panel = FleetPanel()
    qtbot.addWidget(panel)
    snap = build_snapshot(fleet_result(2), time.time(), 60.0)
    panel.show_update(FleetUpdate(snap))
    panel.show_update(FleetUpdate(snap, "Cannot ask Prometheus: nothing is listening.", stale=True))
    assert panel.servers_table.rowCount() == 2
    assert "nothing is listening" in panel.state_label.text()
    assert "last good refresh" in panel.state_label.text()


def test_history_draws_one_curve_per_instance_in_minutes_before_now(qtbot):
    panel = FleetPanel()
    qtbot.addWidget(panel)
    now = time.time()
    data = {
        "10.0.0.1:8000": [(now - 600, 10.0), (now - 300, 20.0), (now, 30.0)],
        "10.0.0.2:8000": [(now - 60, 0.5)],
    }
    panel.show_history("kv", data, range_s=900.0, now=now)
    curves = panel.curve_data("kv")
    assert curves["10.0.0.1:8000"] == ([-10.0, -5.0, 0.0], [1000.0, 2000.0, 3000.0])
    assert curves["10.0.0.2:8000"] == ([-1.0], [50.0])
    panel.show_history("kv", {"10.0.0.2:8000": data["10.0.0.2:8000"]}, range_s=900.0, now=now)
    assert set(panel.curve_data("kv")) == {"10.0.0.2:8000"}, "a gone instance's curve is removed"


def test_fleet_dock_is_tabified_with_the_gpu_dock(qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow

    window = QMainWindow()
    qtbot.addWidget(window)
    window.gpu_dock = QDockWidget("GPU and server", window)
    window.gpu_dock.setWidget(QLabel("gpu"))
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, window.gpu_dock)
    dock = make_fleet_dock(window)
    assert dock.objectName() == "fleetDock"
    assert isinstance(dock.widget(), FleetPanel)
    assert window.tabifiedDockWidgets(window.gpu_dock) == [dock]
    assert dock.toggleViewAction().text() == "Fleet"


def test_a_profiles_prometheus_address_starts_refreshing_when_shown_on_qasync(qtbot, qapp):
    import asyncio
    import socket

    from PySide6.QtCore import QTimer

    from kanoa_desktop.ui.app import close_event_loop, create_event_loop

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    panel = FleetPanel()
    qtbot.addWidget(panel)
    panel.set_prometheus_url(closed, interval_s=0.05)
    assert panel.poller is None, "nothing is built (no httpx) before the panel is shown"
    assert closed in panel.state_label.text()
    loop = create_event_loop(qapp)
    asyncio.set_event_loop(loop)
    seen = {}

    async def scenario() -> None:
        QTimer.singleShot(0, panel.show)  # as the main window shows its dock
        for _ in range(200):
            if panel.poller is not None and panel.poller.latest is not None:
                break
            await asyncio.sleep(0.02)
        seen["poller"] = poller = panel.poller
        panel.set_prometheus_url(f"http://{closed}/", interval_s=0.05)
        seen["same"] = panel.poller is poller
        panel.set_prometheus_url(None)
        await asyncio.sleep(0.05)

    try:
        loop.run_until_complete(scenario())
    finally:
        close_event_loop(loop)
        asyncio.set_event_loop(None)
    poller = seen["poller"]
    assert poller.reader.url == f"http://{closed}"
    assert seen["same"], "the same address keeps the running poller"
    assert poller.latest is not None and "nothing is listening" in poller.latest.error
    assert panel.poller is None
    assert panel.state_label.text().startswith("No Prometheus server set")
