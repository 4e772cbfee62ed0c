"""The window's Fleet dock: a View menu toggle, tabbed with the GPU panel, reading the
fleet from the profile's Prometheus address (the real Prometheus, scraping a vLLM test
server) once shown."""

from __future__ import annotations

import pytest

from tests.fleet.conftest import address, require
from tests.servers import prometheus as prom_mod
from tests.servers.prometheus import PrometheusServer
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    require(prom_mod.missing_reason())
    server = VLLMTestServer().start()
    prometheus = PrometheusServer({"vllm": [address(server.base_url)]})
    try:
        prometheus.start(tmp_path_factory.mktemp("prometheus"))
        prometheus.wait_for_targets()
        yield server, prometheus
    finally:
        prometheus.stop()
        server.stop()


def test_fleet_dock_reads_the_profiles_prometheus_when_shown(scraped, make_window, run):
    server, prometheus = scraped
    w = make_window(server.api_base, server.model, prometheus_url=prometheus.url)
    dock = w.fleet_dock
    assert dock.objectName() == "fleetDock"
    assert dock.toggleViewAction() in w.view_menu.actions()
    assert dock in w.tabifiedDockWidgets(w.gpu_dock)
    panel = w.fleet_panel
    assert panel.poller is None, "nothing asks Prometheus while the Fleet tab is not shown"
    # A profile change while the tab is still behind the GPU panel builds nothing either.
    w._on_profile_changed(w.store.active)
    assert panel.poller is None

    async def scenario():
        dock.show()
        dock.raise_()
        await wait_until(
            lambda: panel.snapshot is not None and panel.snapshot.row(address(server.base_url)),
            timeout=30,
            message="the fleet dock never showed the scraped server",
        )

    run(scenario())
    table = panel.servers_table
    assert table.cell_text(0, "instance") == address(server.base_url)
    assert table.cell_text(0, "state") == "up"
    assert panel.poller.reader.url == prometheus.url
    w.grab().save("/tmp/kanoa-window-fleet.png")


@pytest.mark.llama
def test_gpu_panel_shows_the_last_llama_answers_own_timings(make_window, run, llama_server):
    from PySide6.QtWidgets import QLabel

    w = make_window(llama_server.api_base, llama_server.model, max_tokens=12)
    w.inputs.question.setPlainText("Say something about plots.")
    answer = w.gpu_panel.findChild(QLabel, "gpuPanelValue_answer")

    async def scenario():
        w.interpret()
        await wait_until(lambda: not w.streaming and w.conversation.turns, 120, "llama answer")
        await wait_until(lambda: w.monitor.poller is not None, 30, "the GPU panel's poller")
        await wait_until(
            lambda: "generation" in answer.text(), 30, "the answer's timings in the GPU panel"
        )

    run(scenario())
    timings = w.monitor.poller.latest.last_answer
    assert timings is not None and timings.generated_tokens == w.runner.stats.output_tokens
    assert f"generation {timings.generation_per_s:,.1f} tok/s" in answer.text()
