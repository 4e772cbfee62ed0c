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
