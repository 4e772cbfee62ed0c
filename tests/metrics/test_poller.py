"""The poller's states against a real local HTTP server (stdlib, in a thread)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from kanoa_desktop.core.config.profiles import Profile, derive_metrics_url
from kanoa_desktop.core.monitor.gpu import LocalGpuReader, NvmlUnavailable
from kanoa_desktop.core.monitor.metrics import ServerKind
from kanoa_desktop.core.monitor.poller import (
    MetricsPoller,
    PollState,
)
from tests.metrics import fake_pynvml
from tests.metrics.bodies import Series, vllm_body

REFERENCE = (Path(__file__).parents[1] / "data" / "vllm-0.33-metrics.prom").read_text()


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://localhost:8000/v1", "http://localhost:8000/metrics"),
        ("http://localhost:8000/v1/", "http://localhost:8000/metrics"),
        ("http://gpu-box:8080", "http://gpu-box:8080/metrics"),
        ("https://host/proxy/v1", "https://host/proxy/metrics"),
    ],
)
def test_the_metrics_url_is_derived_from_the_api_base(base, url):
    assert derive_metrics_url(base) == url
    assert Profile(api_base=base).effective_metrics_url == url


async def test_live_scrape_of_the_reference_body(metrics_server):
    metrics_server.respond(200, REFERENCE)
    seen = []
    poller = MetricsPoller(metrics_server.url, on_update=seen.append)
    try:
        update = await poller.poll_once()
    finally:
        await poller.aclose()
    assert update.state is PollState.LIVE
    assert update.snapshot.kind is ServerKind.VLLM
    assert update.snapshot.models == ("qwen2.5-vl-7b",)
    assert seen == [update] and poller.latest is update


async def test_rates_between_two_polls_use_the_poller_clock(metrics_server, clock):
    poller = MetricsPoller(metrics_server.url, clock=clock)
    try:
        metrics_server.respond(200, vllm_body(Series(generation=100)))
        await poller.poll_once()
        clock.now += 2.0
        metrics_server.respond(200, vllm_body(Series(generation=180)))
        update = await poller.poll_once()
    finally:
        await poller.aclose()
    assert update.snapshot.generation_tokens_per_s == pytest.approx(40.0)  # 80 tokens / 2 s


@pytest.mark.parametrize(
    ("status", "hint"), [(404, "llama-server needs --metrics"), (501, "with --metrics")]
)
async def test_404_and_501_say_there_is_no_metrics_endpoint_and_how_to_enable_it(
    metrics_server, status, hint
):
    metrics_server.respond(status, "Not Found")
    poller = MetricsPoller(metrics_server.url)
    try:
        update = await poller.poll_once()
    finally:
        await poller.aclose()
    assert update.state is PollState.NO_ENDPOINT
    assert update.message.startswith("No metrics endpoint")
    assert hint in update.message


@pytest.mark.parametrize("body", ["<html><body>hello</body></html>", ""])
async def test_garbage_or_empty_body_is_reported_as_bad_body(metrics_server, body):
    metrics_server.respond(200, body)
    poller = MetricsPoller(metrics_server.url)
    try:
        update = await poller.poll_once()
    finally:
        await poller.aclose()
    assert update.state is PollState.BAD_BODY
    assert "metrics" in update.message
    assert update.snapshot is None


async def test_connection_refused_is_unreachable_with_the_reason(refused_url):
    poller = MetricsPoller(refused_url)
    try:
        update = await poller.poll_once()
    finally:
        await poller.aclose()
    assert update.state is PollState.UNREACHABLE
    assert "connection refused" in update.message
    assert "is the server running?" in update.message


async def test_failure_after_a_good_scrape_is_stale_then_unreachable(metrics_server, clock):
    poller = MetricsPoller(metrics_server.url, clock=clock, stale_after_s=10.0)
    try:
        metrics_server.respond(200, REFERENCE)
        good = await poller.poll_once()
        metrics_server.respond(503, "")
        clock.now += 3.0
        stale = await poller.poll_once()
        clock.now += 20.0
        gone = await poller.poll_once()
    finally:
        await poller.aclose()
    assert stale.state is PollState.STALE
    assert stale.message.startswith("Stale: last good scrape 3 s ago")
    assert stale.snapshot is good.snapshot  # the last numbers stay visible
    assert gone.state is PollState.UNREACHABLE
    assert "HTTP 503" in gone.message and "loading the model" in gone.message
    assert gone.last_good_age_s == pytest.approx(23.0)


async def test_backoff_doubles_while_failing_up_to_the_cap_and_resets_when_live(
    metrics_server, refused_url
):
    poller = MetricsPoller(refused_url, interval_s=1.0, max_backoff_s=30.0)
    try:
        delays = []
        for _ in range(6):
            await poller.poll_once()
            delays.append(poller.next_delay_s())
        assert delays == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
        metrics_server.respond(200, REFERENCE)
        poller.url = metrics_server.url
        await poller.poll_once()
        assert poller.next_delay_s() == 1.0
    finally:
        await poller.aclose()


async def test_run_reports_through_the_async_iterator_and_pause_stops_requests(metrics_server):
    metrics_server.respond(200, REFERENCE)
    seen = []
    poller = MetricsPoller(metrics_server.url, interval_s=0.01, on_update=seen.append)
    updates = poller.updates()
    first_update = asyncio.ensure_future(anext(updates))
    task = asyncio.ensure_future(poller.run())
    try:
        first = await asyncio.wait_for(first_update, 5)
        assert first.state is PollState.LIVE
        poller.pause()
        await asyncio.sleep(0.1)  # let a poll already under way finish
        hits, reported = metrics_server.hits, len(seen)
        await asyncio.sleep(0.2)  # twenty intervals
        assert (metrics_server.hits, len(seen)) == (hits, reported)
        poller.resume()
        for _ in range(500):
            if len(seen) > reported:
                break
            await asyncio.sleep(0.01)
        assert seen[-1].state is PollState.LIVE
        assert metrics_server.hits > hits
    finally:
        await poller.aclose()
        await asyncio.wait_for(task, 5)
        await updates.aclose()


async def test_request_markers_give_spans_with_energy_from_nvml_power(
    metrics_server, clock, monkeypatch
):
    gpu = fake_pynvml.FakeGpu(power_mw=200_000)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml.make_module([gpu]))
    metrics_server.respond(200, REFERENCE)
    reader = LocalGpuReader()
    poller = MetricsPoller(metrics_server.url, clock=clock, gpu_reader=reader)
    try:
        poller.mark_request("start")
        during = await poller.poll_once()  # power 200 W at t=1000
        clock.now += 18.0
        gpu.power_mw = 400_000
        await poller.poll_once()  # power 400 W at t=1018: mean 300 W for 18 s = 1.5 Wh
        clock.now += 1.0
        span = poller.mark_request("end")
        after = await poller.poll_once()
    finally:
        await poller.aclose()
        reader.close()
    assert during.request_active and not after.request_active
    assert during.gpus[0].power_w == 200.0
    assert span.start == 1000.0 and span.end == 1019.0
    assert span.energy_wh == pytest.approx(1.5)
    assert after.requests == (span,)


async def test_without_nvml_updates_carry_the_unavailable_status(metrics_server, monkeypatch):
    monkeypatch.setitem(
        sys.modules,
        "pynvml",
        fake_pynvml.make_module([], init_error=fake_pynvml.NVMLError_DriverNotLoaded),
    )
    metrics_server.respond(200, REFERENCE)
    poller = MetricsPoller(metrics_server.url, read_gpus=True)
    try:
        poller.mark_request("start")
        update = await poller.poll_once()
        span = poller.mark_request("end")
    finally:
        await poller.aclose()
    assert update.state is PollState.LIVE
    assert isinstance(update.gpus, NvmlUnavailable)
    assert span.energy_wh is None  # no power readings: unknown, not zero
