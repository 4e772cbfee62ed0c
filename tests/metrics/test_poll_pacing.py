"""How often the GPU panel's poller scrapes: the user's interval while an answer streams,
slower between answers and slower still while the window is minimised; at once when an
answer starts or ends. Checked on the delays the poller chooses, never on a clock."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from kanoa_desktop.core.monitor.poller import MetricsPoller
from kanoa_desktop.ui.monitor_host import BACKGROUND_POLL_S, IDLE_POLL_S, MonitorHost

URL = "http://127.0.0.1:9/metrics"


def test_the_interval_applies_while_an_answer_streams_and_the_idle_one_between_answers():
    poller = MetricsPoller(URL, interval_s=1.0, idle_interval_s=5.0)
    assert poller.next_delay_s() == 5.0
    poller.mark_request("start")
    assert poller.next_delay_s() == 1.0
    poller.mark_request("end")
    assert poller.next_delay_s() == 5.0


def test_without_an_idle_interval_the_poller_keeps_one_pace():
    poller = MetricsPoller(URL, interval_s=0.5)
    assert poller.next_delay_s() == 0.5
    poller.mark_request("start")
    assert poller.next_delay_s() == 0.5


def test_an_answer_starting_or_ending_wakes_the_poller_at_once():
    async def scenario() -> list[bool]:
        poller = MetricsPoller(URL, interval_s=1.0, idle_interval_s=30.0)
        poller._wake = asyncio.Event()  # as run() makes it
        woken = []
        for event in ("start", "end"):
            poller._wake.clear()
            poller.mark_request(event)
            woken.append(poller._wake.is_set())
        return woken

    assert asyncio.run(scenario()) == [True, True]


class _Panel:
    """Stands in for GpuPanel: holds the poller MonitorHost gives it."""

    def __init__(self) -> None:
        self.poller = None

    def set_poller(self, poller) -> None:
        self.poller = poller


def test_the_host_polls_rarely_while_the_window_is_minimised_and_as_usual_after():
    panel = _Panel()
    host = MonitorHost(panel, spawn=lambda coro: coro.close())
    profile = SimpleNamespace(effective_metrics_url=URL, dcgm_url=None)
    prefs = SimpleNamespace(gpu_poll_interval_s=1.0, local_nvml=False)
    host.watch(profile, prefs)
    poller = panel.poller
    assert (poller.interval_s, poller.idle_interval_s) == (1.0, IDLE_POLL_S)
    host.set_background(True)
    assert poller.idle_interval_s == BACKGROUND_POLL_S
    host.set_background(False)
    assert poller.idle_interval_s == IDLE_POLL_S
    assert poller.interval_s == 1.0  # the user's preference: the pace while streaming


def test_a_slow_preference_is_never_sped_up_between_answers():
    panel = _Panel()
    host = MonitorHost(panel, spawn=lambda coro: coro.close())
    profile = SimpleNamespace(effective_metrics_url=URL, dcgm_url=None)
    host.watch(profile, SimpleNamespace(gpu_poll_interval_s=10.0, local_nvml=False))
    assert panel.poller.idle_interval_s == 10.0
