"""Derived metrics against live servers: the vLLM test server and the real llama-server.

Expected values are computed by hand from the raw counters and the known requests.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.core.endpoint.client import ChatClient, collect
from kanoa_desktop.core.endpoint.events import Usage
from kanoa_desktop.core.monitor.metrics import MetricsDeriver, ServerKind, parse_scrape
from kanoa_desktop.core.monitor.poller import MetricsPoller, PollState
from tests.servers.vllm_server import VLLMTestServer, prompt_tokens


def _scrape(url: str) -> tuple[str, float]:
    body = httpx.get(url, timeout=5).text
    return body, time.monotonic()


def _total(body: str, name: str) -> float:
    return sum(
        float(m.group(1))
        for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", body, re.M)
    )


async def test_vllm_rates_and_ttft_quantiles_match_a_hand_computation():
    with VLLMTestServer(answer_tokens=20) as server:
        body1, t1 = _scrape(server.metrics_url)
        server.fail_next("slow_first_token", delay_s=0.3)
        messages = [user_message("Interpret the figure, please.")]
        async with ChatClient(server.api_base) as client:
            events = await collect(client, ChatRequest("qwen2.5-vl-7b", messages, max_tokens=100))
        body2, t2 = _scrape(server.metrics_url)

    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.completion_tokens == 21  # 20 pieces + the end-of-sequence token
    assert usage.prompt_tokens == prompt_tokens(messages)

    deriver = MetricsDeriver()
    deriver.update(parse_scrape(body1, t1))
    m = deriver.update(parse_scrape(body2, t2))
    dt = t2 - t1
    gen = _total(body2, "vllm:generation_tokens_total") - _total(
        body1, "vllm:generation_tokens_total"
    )
    prompt = _total(body2, "vllm:prompt_tokens_total") - _total(body1, "vllm:prompt_tokens_total")
    assert (gen, prompt) == (21, usage.prompt_tokens)
    assert m.kind == ServerKind.VLLM
    assert m.generation_tokens_per_s == pytest.approx(21 / dt)
    assert m.prompt_tokens_per_s == pytest.approx(usage.prompt_tokens / dt)
    # One observation of ~0.3 s falls in the (0.25, 0.5] bucket; Prometheus-style linear
    # interpolation puts p50 at 0.25 + 0.25 * 0.5 and p95 at 0.25 + 0.25 * 0.95.
    assert m.ttft_p50_s == pytest.approx(0.375)
    assert m.ttft_p95_s == pytest.approx(0.4875)
    assert m.finished_reasons.get("stop") == 1
    assert m.requests_running == 0


async def test_vllm_kv_cache_and_running_move_while_a_request_streams():
    with VLLMTestServer(tokens_per_second=40, answer_tokens=200) as server:
        poller = MetricsPoller(server.metrics_url, interval_s=0.2)
        try:
            idle = await poller.poll_once()
            async with ChatClient(server.api_base) as client:
                stream = client.stream_chat(
                    ChatRequest("qwen2.5-vl-7b", [user_message("word " * 3000)], max_tokens=200)
                )
                async for _ in stream:
                    busy = await poller.poll_once()
                    if busy.snapshot and busy.snapshot.requests_running:
                        break
                await stream.aclose()
        finally:
            await poller.aclose()
    assert idle.state == PollState.LIVE and idle.snapshot.requests_running == 0
    assert busy.snapshot.requests_running == 1
    assert busy.snapshot.kv_cache_usage > idle.snapshot.kv_cache_usage


@pytest.mark.parametrize(
    "options", [{"legacy_names": True, "engine_label": False}, {"multiprocess": True}]
)
async def test_vllm_old_names_and_multiprocess_mode_still_give_rates(options):
    with VLLMTestServer(answer_tokens=10, **options) as server:
        body1, t1 = _scrape(server.metrics_url)
        async with ChatClient(server.api_base) as client:
            await collect(client, ChatRequest("qwen2.5-vl-7b", [user_message("hi")], max_tokens=50))
        body2, t2 = _scrape(server.metrics_url)
    deriver = MetricsDeriver()
    deriver.update(parse_scrape(body1, t1))
    m = deriver.update(parse_scrape(body2, t2))
    assert m.generation_tokens_per_s == pytest.approx(11 / (t2 - t1))
    assert m.kv_cache_usage is not None and m.itl_p50_s is not None


@pytest.mark.llama
async def test_llama_server_metrics_give_generation_rate_from_real_counters(llama_server):
    body1, t1 = _scrape(llama_server.metrics_url)
    async with ChatClient(llama_server.api_base) as client:
        events = await collect(
            client,
            ChatRequest(
                "smollm2", [user_message("Say three words.")], max_tokens=16, temperature=0.0
            ),
        )
    body2, t2 = _scrape(llama_server.metrics_url)
    usage = next(e for e in events if isinstance(e, Usage))
    predicted = _total(body2, "llamacpp:tokens_predicted_total") - _total(
        body1, "llamacpp:tokens_predicted_total"
    )
    assert predicted == usage.completion_tokens
    deriver = MetricsDeriver()
    deriver.update(parse_scrape(body1, t1))
    m = deriver.update(parse_scrape(body2, t2))
    assert m.kind == ServerKind.LLAMACPP
    assert m.generation_tokens_per_s == pytest.approx(predicted / (t2 - t1))
    assert m.requests_running == 0 and m.requests_waiting == 0


async def test_a_dcgm_exporter_adds_the_remote_gpu_to_the_server_snapshot(metrics_server):
    from pathlib import Path

    metrics_server.respond(200, (Path(__file__).parent / "data" / "dcgm.prom").read_text())
    with VLLMTestServer() as server:
        poller = MetricsPoller(server.metrics_url, dcgm_url=metrics_server.url)
        try:
            update = await poller.poll_once()
        finally:
            await poller.aclose()
    assert update.state == PollState.LIVE
    assert update.snapshot.kind == ServerKind.VLLM and update.snapshot.requests_running == 0
    assert update.snapshot.gpus and update.snapshot.gpus[0].utilization_pct is not None


async def test_an_unreachable_dcgm_exporter_is_a_warning_not_an_outage():
    from tests.servers.llama import free_port

    with VLLMTestServer() as server:
        dead = f"http://127.0.0.1:{free_port()}/metrics"
        poller = MetricsPoller(server.metrics_url, dcgm_url=dead)
        try:
            update = await poller.poll_once()
        finally:
            await poller.aclose()
    assert update.state == PollState.LIVE and update.snapshot.gpus == ()
    assert any(dead in w for w in update.snapshot.warnings)
