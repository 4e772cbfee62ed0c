"""The fleet view's numbers against the servers' own counters, through the real Prometheus.

Answers stream through the real vLLM router to three vLLM test servers (one with the old
metric names); Prometheus scrapes them, the router, the real llama-server and a DCGM
exporter every second. The fleet rows must match rates computed by hand from each test
server's own ``/metrics`` before and after, and a killed server must show as down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import time

import pytest

from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.core.endpoint.client import ChatClient, collect
from kanoa_desktop.core.endpoint.events import Finished, Usage
from kanoa_desktop.core.monitor.fleet import FleetReader, PrometheusError, fleet_query
from kanoa_desktop.core.monitor.metrics import histogram_quantile
from tests.fleet.conftest import MODEL, address, buckets, counters, wait_until

pytestmark = [pytest.mark.vllm, pytest.mark.llama]

GEN = "vllm:generation_tokens_total"
PROMPT = "vllm:prompt_tokens_total"


def ask(api_base: str, n: int, *, model: str = MODEL, max_tokens: int = 24) -> list[list]:
    """Stream ``n`` answers (two at a time) and return each one's events."""

    async def one(client: ChatClient, i: int) -> list:
        request = ChatRequest(
            model=model,
            messages=[user_message(f"Question {i}: what does the growth curve show?")],
            max_tokens=max_tokens,
            temperature=0.0,
        )
        return await collect(client, request)

    async def main() -> list[list]:
        async with ChatClient(api_base) as client:
            out: list[list] = []
            for start in range(0, n, 2):
                out += await asyncio.gather(
                    *(one(client, i) for i in range(start, min(start + 2, n)))
                )
            return out

    return asyncio.run(main())


def snapshot(fleet, **kw):
    """The fleet now, read as the view reads it."""

    async def main():
        reader = FleetReader(fleet.prometheus.url, **kw)
        try:
            return await reader.snapshot()
        finally:
            await reader.aclose()

    return asyncio.run(main())


def _bucket_around(value: float, bounds: list[float]) -> tuple[float, float]:
    """The histogram bucket (lower, upper bound) that ``value`` falls in."""
    finite = sorted(b for b in bounds if b != float("inf"))
    low = 0.0
    for upper in finite:
        if value <= upper:
            return low, upper
        low = upper
    return low, float("inf")


def read_at(fleet, at: float, window: float, **kw):
    async def main():
        reader = FleetReader(fleet.prometheus.url, rate_window_s=window, **kw)
        try:
            return await reader.snapshot(at=at)
        finally:
            await reader.aclose()

    return asyncio.run(main())


def test_fleet_rows_match_rates_computed_by_hand_from_the_servers_own_counters(fleet):
    servers = fleet.vllm_servers
    prom = fleet.prometheus
    # The rate window must start after Prometheus's first scrape of every target.
    while time.time() < prom.started_at + 5:
        time.sleep(0.2)
    before = {s.port: counters(s.metrics_url, GEN, PROMPT) for s in servers}
    ttft_before = buckets(fleet.a.metrics_url, "vllm:time_to_first_token_seconds")
    t0 = time.time()

    answers = ask(fleet.router.api_base, 6)

    for events in answers:
        done = [e for e in events if isinstance(e, Finished)]
        usage = [e for e in events if isinstance(e, Usage)]
        assert done and done[0].text, "every answer streamed through the router to its end"
        assert usage and not usage[0].estimated, "the usage chunk passes through the router"
    # Let every target be scraped twice after the last answer, then read the counters.
    time.sleep(2.5 * prom.scrape_interval_s)
    after = {s.port: counters(s.metrics_url, GEN, PROMPT) for s in servers}
    ttft_after = buckets(fleet.a.metrics_url, "vllm:time_to_first_token_seconds")
    at = time.time()
    window = math.ceil(at - t0 + 2.0)

    snap = read_at(fleet, at, window)

    total_generated = 0.0
    for s in servers:
        row = snap.row(address(s.base_url))
        assert row is not None, f"no fleet row for {s.base_url}: {snap.rows}"
        assert row.kind == "vllm" and row.up is True and row.models == (MODEL,)
        for name, got in ((GEN, row.generation_tokens_per_s), (PROMPT, row.prompt_tokens_per_s)):
            delta = after[s.port][name] - before[s.port][name]
            assert delta > 0, f"round robin sent {s.base_url} no answer"
            # rate() = increase extrapolated over the window: between delta / window and
            # delta / (the span actually sampled, at least window - 2 scrape intervals).
            low = delta / window
            high = delta / (window - 2.5 * prom.scrape_interval_s)
            assert got is not None and low * 0.97 <= got <= high * 1.03, (
                f"{s.base_url} {name}: fleet says {got}, by hand {low:.3f}..{high:.3f}"
            )
        total_generated += after[s.port][GEN] - before[s.port][GEN]
        assert row.requests_running == 0 and row.requests_waiting == 0
        assert row.kv_cache_usage is not None  # old name on b, new name on a and victim
        assert row.itl_p50_s is not None and row.itl_p95_s is not None
    assert total_generated == sum(
        e.completion_tokens for events in answers for e in events if isinstance(e, Usage)
    ), "the servers' counters add up to the usage the router passed through"

    # Quantiles: histogram_quantile over the buckets' rates lands in the bucket of the
    # quantile of the buckets' increase computed by hand. Not always on the same value:
    # rate() extrapolates each bucket's series on its own (a series that starts from zero
    # inside the window is extrapolated less), so the scale cancels out only when every
    # bucket's samples line up, which depends on when Prometheus scraped (seen once:
    # 0.0216 against 0.02 by hand, in the same bucket).
    delta = [(b, c - dict(ttft_before).get(b, 0.0)) for b, c in ttft_after]
    row_a = snap.row(address(fleet.a.base_url))
    for q, got in ((0.5, row_a.ttft_p50_s), (0.95, row_a.ttft_p95_s)):
        low, high = _bucket_around(histogram_quantile(q, delta), [b for b, _ in delta])
        assert got is not None and low <= got <= high, (q, got, low, high)

    router_row = snap.row(fleet.router.metrics_address)
    assert router_row.kind == "router" and router_row.up is True
    assert router_row.router_workers_total == 3 and router_row.router_workers_healthy == 3
    assert router_row.router_requests_per_s is not None and router_row.router_requests_per_s > 0


def test_a_full_kv_cache_and_a_growing_queue_are_warned_about(fleet):
    busy = address(fleet.busy.base_url)
    question = "Explain the figure: " + " ".join(f"point{i} rises" for i in range(52))

    async def main():
        async with ChatClient(fleet.busy.api_base) as client:
            request = ChatRequest(model=MODEL, messages=[user_message(question)], max_tokens=200)
            # One runs (its prompt fills the 8-block KV cache), the others queue up.
            tasks = [asyncio.ensure_future(collect(client, request)) for _ in range(4)]
            reader = FleetReader(fleet.prometheus.url, rate_window_s=10)
            try:
                for _ in range(40):
                    await asyncio.sleep(0.5)
                    snap = await reader.snapshot()
                    row = snap.row(busy)
                    if row and row.requests_waiting == 3 and (row.waiting_change or 0) > 0:
                        return snap
                return snap
            finally:
                await reader.aclose()
                for task in tasks:
                    task.cancel()  # closing the streams aborts them on the server
                await asyncio.gather(*tasks, return_exceptions=True)

    snap = asyncio.run(main())
    row = snap.row(busy)
    assert row.requests_running == 1 and row.requests_waiting == 3, row
    assert row.waiting_for_capacity == 3  # newer vLLM: why they wait
    assert row.kv_cache_usage > 0.9
    assert any(f"{busy} (vllm): KV cache is" in w for w in snap.warnings), snap.warnings
    assert any(
        f"{busy} (vllm): the waiting queue is growing (3 requests waiting" in w
        for w in snap.warnings
    ), snap.warnings
    assert fleet.busy.wait_for(lambda s: s.running == 0 and s.waiting == 0, timeout=10)


def test_llama_server_row_reads_its_llamacpp_counters(fleet):
    llama = fleet.llama
    name = "llamacpp:tokens_predicted_total"
    before = counters(llama.metrics_url, name)[name]
    t0 = time.time()
    events = ask(llama.api_base, 1, model=llama.model, max_tokens=16)[0]
    assert any(isinstance(e, Finished) for e in events)
    time.sleep(2.5 * fleet.prometheus.scrape_interval_s)
    delta = counters(llama.metrics_url, name)[name] - before
    at = time.time()
    window = max(math.ceil(at - t0 + 2.0), 8)

    row = read_at(fleet, at, window).row(address(llama.base_url))

    assert row.kind == "llamacpp" and row.up is True
    assert delta > 0
    low, high = delta / window, delta / (window - 2.5)
    assert low * 0.97 <= row.generation_tokens_per_s <= high * 1.03
    # llama.cpp's own busy timer: tokens per second while generating, far above the
    # per-wall-second rate.
    assert row.generation_busy_tok_s is not None
    assert row.generation_busy_tok_s > row.generation_tokens_per_s


def test_dcgm_gpus_become_gpu_rows_with_their_warnings(fleet):
    snap = snapshot(fleet, rate_window_s=10)
    gpus = {g.gpu.gpu: g for g in snap.gpus}
    assert set(gpus) == {"0", "1"}
    hot = gpus["0"]
    assert hot.instance == address(fleet.dcgm.url)
    assert hot.hostname == "node1" and hot.gpu.name == "NVIDIA H100 80GB HBM3"
    assert hot.gpu.utilization_pct == 87 and hot.gpu.temperature_c == 86
    assert hot.gpu.fb_used_fraction == pytest.approx(79000 / 80000)
    assert any("GPU 0 on node1" in w and "°C" in w for w in snap.warnings)
    assert any("GPU 0 on node1" in w and "full" in w for w in snap.warnings)
    assert not any("GPU 1 on node1" in w for w in snap.warnings)


def test_history_comes_from_query_range(fleet):
    async def main():
        reader = FleetReader(fleet.prometheus.url, rate_window_s=10)
        try:
            return await reader.history("generation_tps", 900.0)
        finally:
            await reader.aclose()

    history = asyncio.run(main())
    for s in fleet.vllm_servers:
        points = history.get(address(s.base_url))
        assert points, f"no history for {s.base_url}: {sorted(history)}"
        assert all(t <= time.time() + 1 for t, _ in points)
    # The answers streamed earlier in this module made some generation rate non-zero.
    assert any(v > 0 for pts in history.values() for _, v in pts)


def test_fleet_command_prints_one_json_object_per_instance(fleet):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run(
        [
            sys.executable, "-m", "kanoa_desktop", "fleet",
            "--prometheus", fleet.prometheus.url,
            "--router", fleet.router.base_url,
            "--once", "--json",
        ],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    objects = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    by_instance = {o["instance"]: o for o in objects}
    for s in fleet.vllm_servers:
        entry = by_instance[address(s.base_url)]
        assert entry["up"] is True and entry["kind"] == "vllm"
        assert "generation_tokens_per_s" in entry and "kv_cache_usage" in entry
    assert by_instance[address(fleet.llama.base_url)]["kind"] == "llamacpp"
    assert by_instance[fleet.router.metrics_address]["kind"] == "router"
    assert len(by_instance[address(fleet.dcgm.url)]["gpus"]) == 2

    table = subprocess.run(
        [sys.executable, "-m", "kanoa_desktop", "fleet", "--prometheus", fleet.prometheus.url,
         "--once"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert address(fleet.a.base_url) in table.stdout and "up" in table.stdout

    # A reader that stops reading (`fleet --json | head -1`) ends the command quietly.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        piped = subprocess.run(
            [sys.executable, "-m", "kanoa_desktop", "fleet", "--prometheus",
             fleet.prometheus.url, "--once", "--json"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, env=env,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr, piped.stderr
    assert piped.returncode == 141


def test_fleet_panel_shows_the_rows_routers_gpus_and_history(fleet, qtbot):
    from kanoa_desktop.core.monitor.fleet import FleetPoller
    from kanoa_desktop.ui.fleet_panel import FleetPanel

    reader = FleetReader(fleet.prometheus.url, rate_window_s=20)
    poller = FleetPoller(reader)
    panel = FleetPanel(poller)
    qtbot.addWidget(panel)
    panel.resize(1100, 900)

    async def main():
        try:
            update = await poller.refresh()
            history = {key: await reader.history(key, 900.0) for key in ("generation_tps", "kv")}
            return update, history
        finally:
            await reader.aclose()

    update, history = asyncio.run(main())
    assert update.error is None
    for key, data in history.items():
        panel.show_history(key, data, range_s=900.0)
    panel.show()
    table = panel.servers_table
    shown = {table.cell_text(r, "instance"): r for r in range(table.rowCount())}
    for s in fleet.vllm_servers:
        r = shown[address(s.base_url)]
        assert table.cell_text(r, "state") == "up" and table.cell_text(r, "kind") == "vLLM"
        assert table.cell_text(r, "models") == MODEL
    assert table.cell_text(shown[address(fleet.llama.base_url)], "kind") == "llama.cpp"
    assert panel.routers_table.isVisible() and panel.routers_table.rowCount() == 1
    assert panel.routers_table.cell_text(0, "healthy") == "3 of 3"
    assert panel.gpus_table.isVisible() and panel.gpus_table.rowCount() == 2
    assert "node1" in panel.warnings_label.text()
    assert "Live from" in panel.state_label.text()
    curves = panel.curve_data("generation_tps")
    assert {address(s.base_url) for s in fleet.vllm_servers} <= set(curves)
    assert all(-15.0 <= x <= 0.1 for xs, _ in curves.values() for x in xs)
    panel.grab().save("/tmp/kanoa-fleet-panel.png")


def test_streams_through_the_router_survive_a_killed_server_which_shows_as_down(fleet):
    victim = address(fleet.victim.base_url)
    fleet.victim.stop()
    killed_at = time.time()

    # Round robin still picks the dead server until the router's health check notices:
    # the router retries those requests on another server, so every answer completes.
    answers = ask(fleet.router.api_base, 6)
    for events in answers:
        done = [e for e in events if isinstance(e, Finished)]
        assert done and done[0].text

    def down():
        snap = snapshot(fleet, rate_window_s=10)
        row = snap.row(victim)
        return snap if row is not None and row.up is False else None

    snap = wait_until(down, timeout=6 * fleet.prometheus.scrape_interval_s + 5)
    assert snap is not None, f"{victim} not shown as down {time.time() - killed_at:.0f} s after"
    row = snap.row(victim)
    assert row.kind == "vllm", "a down server keeps the kind it was seen with"
    assert row.generation_tokens_per_s is None, "no figures for a server Prometheus cannot scrape"
    assert any(victim in w and "is down" in w for w in snap.warnings)
    for s in (fleet.a, fleet.b):
        assert snap.row(address(s.base_url)).up is True

    # A script sees it too: `fleet --once` exits 3 while an instance is down (--help says so).
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    once = subprocess.run(
        [sys.executable, "-m", "kanoa_desktop", "fleet", "--prometheus", fleet.prometheus.url,
         "--once"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert once.returncode == 3, once.stderr
    assert "DOWN" in once.stdout and victim in once.stdout
    assert "3 an instance" in " ".join(
        subprocess.run(
            [sys.executable, "-m", "kanoa_desktop", "fleet", "--help"],
            capture_output=True, text=True, timeout=60, env=env,
        ).stdout.split()
    )  # fmt: skip

    # The router's own view through Prometheus: the dead worker's circuit opened (the
    # router sends it nothing) and its health check marks it unhealthy.
    def router_notices():
        snap = snapshot(fleet, rate_window_s=10)
        r = snap.row(fleet.router.metrics_address)
        if r is None or fleet.victim.base_url not in r.unhealthy_workers:
            return None
        return snap if r.router_workers_healthy == 2 else None

    snap = wait_until(router_notices, timeout=20)
    assert snap is not None, "the router's metrics never showed the dead server unhealthy"
    router_row = snap.row(fleet.router.metrics_address)
    assert router_row.open_circuits == (fleet.victim.base_url,)
    assert any(f"opened its circuit to {fleet.victim.base_url}" in w for w in snap.warnings), (
        snap.warnings
    )


def test_prometheus_that_is_not_there_or_not_prometheus_gives_a_sentence(fleet):
    async def ask_fleet(url: str) -> str:
        reader = FleetReader(url)
        try:
            with pytest.raises(PrometheusError) as info:
                await reader.snapshot()
            return str(info.value)
        finally:
            await reader.aclose()

    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert "nothing is listening" in asyncio.run(ask_fleet(closed))
    # A model server is not Prometheus: its 404 says what address is expected.
    message = asyncio.run(ask_fleet(fleet.a.base_url))
    assert "no Prometheus query API" in message and "http://prometheus:9090" in message


def test_the_joined_query_is_one_valid_expression(fleet):
    # Prometheus parses the whole joined query (a syntax error anywhere fails it all).
    result = fleet.prometheus.query(fleet_query(30.0))
    figures = {r["metric"].get("kanoa_figure") for r in result}
    assert {"up", "running", "kv", "generation_tps", "router_workers_total"} <= figures
