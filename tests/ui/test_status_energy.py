"""The status bar's energy reading: watt-hours in, the electricity cost in the one format."""

from __future__ import annotations

from kanoa_desktop.ui.status_bar import StreamStatus


def test_energy_shows_watt_hours_and_its_cost(qtbot):
    status = StreamStatus()
    qtbot.addWidget(status)
    status.set_energy(3.0, 0.25)  # 3 Wh at 0.25 a kWh
    assert status.energy.text() == "3.000 Wh ($0.00075)"
    status.set_energy(12.5, None)
    assert status.energy.text() == "12.5 Wh"
