"""The single-server panel reads right during an answer (llama.cpp's /slots and timings)
and shows what newer vLLM metric names say (prompt tokens by source, waiting requests by
reason, prefill tokens computed), against the real llama-server and the vLLM test server."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.core.endpoint.client import ChatClient
from kanoa_desktop.core.endpoint.events import Finished, Usage
from kanoa_desktop.core.monitor.metrics import histogram_quantile
from kanoa_desktop.core.monitor.poller import MetricsPoller
from kanoa_desktop.ui.gpu_panel import GpuPanel
from tests.fleet.conftest import buckets, counters

PREDICTED = "llamacpp:tokens_predicted_total"


@pytest.mark.llama
async def test_llama_generation_rate_is_live_during_an_answer_and_has_no_spike_after(
    llama_server, qtbot
):
    poller = MetricsPoller(llama_server.metrics_url, interval_s=0.25)
    panel = GpuPanel()
    qtbot.addWidget(panel)
    request = ChatRequest(
        model=llama_server.model,
        messages=[user_message("Write a long story about a lighthouse keeper.")],
        max_tokens=160,  # several polls during the answer even on a fast, quiet machine
        temperature=0.0,
        extra={"ignore_eos": True},
    )
    polls: list = []  # (update, the counter had moved by then)
    async with ChatClient(llama_server.api_base) as client:
        first = await poller.poll_once()
        before = counters(llama_server.metrics_url, PREDICTED)[PREDICTED]
        poller.mark_request("start")
        events: list = []

        async def consume():
            async for event in client.stream_chat(request):
                events.append(event)

        task = asyncio.ensure_future(consume())
        while not task.done():
            await asyncio.sleep(0.25)
            update = await poller.poll_once()
            # Until the answer ends the counter does not move: counters alone say 0 tok/s.
            moved = counters(llama_server.metrics_url, PREDICTED)[PREDICTED] != before
            polls.append((update, moved))
        await task
        usage = next(e for e in events if isinstance(e, Usage))
        poller.mark_request("end", timings=usage.server_timings)
        for _ in range(3):
            await asyncio.sleep(0.25)
            polls.append((await poller.poll_once(), True))
    await poller.aclose()

    assert any(isinstance(e, Finished) for e in events)
    assert usage.completion_tokens == 160
    # Tokens each poll booked: its rate times the time since the previous poll.
    booked = []
    previous = first.snapshot.timestamp
    for update, moved in polls:
        snap = update.snapshot
        booked.append((snap.generation_tokens_per_s * (snap.timestamp - previous), moved, update))
        previous = snap.timestamp
    assert sum(b for b, _, _ in booked) == pytest.approx(usage.completion_tokens, abs=0.5)
    live = [(b, u) for b, moved, u in booked if not moved and u.live_from_slots]
    assert live, "no poll during the answer read /slots"
    # Read during the answer, not booked at its end: no spike when the counters catch up.
    assert sum(b for b, _ in live) >= 0.3 * usage.completion_tokens, booked
    assert max(b for b, _, _ in booked) <= 0.5 * usage.completion_tokens, booked
    assert any(u.snapshot.requests_running == 1 for _, u in live)
    assert polls[-1][0].snapshot.generation_tokens_per_s == 0
    speed = usage.server_timings["predicted_per_second"]

    final = polls[-1][0]
    assert final.last_answer is not None
    assert final.last_answer.generation_per_s == pytest.approx(speed)
    assert final.last_answer.generated_tokens == usage.completion_tokens
    panel.show_update(live[-1][1])
    assert "· live" in _value(panel, "generation").text()
    panel.show_update(final)
    assert _value(panel, "answer").isVisibleTo(panel)
    assert f"generation {speed:,.1f} tok/s" in _value(panel, "answer").text()


@pytest.mark.llama
async def test_llama_vision_check_reads_props_instead_of_sending_an_image(llama_server):
    async with httpx.AsyncClient() as http:
        props = (await http.get(llama_server.base_url + "/props", timeout=5)).json()
    assert props["modalities"]["vision"] is False
    async with ChatClient(llama_server.api_base) as client:
        await client.models()
        prompt_before = counters(llama_server.metrics_url, "llamacpp:prompt_tokens_total")
        assert await client.probe_vision(llama_server.model) is False
        assert counters(llama_server.metrics_url, "llamacpp:prompt_tokens_total") == prompt_before


@pytest.mark.vllm
async def test_newer_vllm_names_prompt_sources_waiting_reasons_and_prefill_work(vllm_server, qtbot):
    poller = MetricsPoller(vllm_server.metrics_url, interval_s=1.0)
    source = "vllm:prompt_tokens_by_source_total"
    await poller.poll_once()
    before = _by_source(vllm_server.metrics_url)
    prefill_before = buckets(vllm_server.metrics_url, "vllm:request_prefill_kv_computed_tokens")
    # The same long question twice: the second one's prompt comes mostly from the cache.
    question = "Summarise the experiment: " + " ".join(f"sample{i} grew" for i in range(120))
    async with ChatClient(vllm_server.api_base) as client:
        for _ in range(2):
            request = ChatRequest(
                model=vllm_server.model, messages=[user_message(question)], max_tokens=4
            )
            async for _event in client.stream_chat(request):
                pass
    assert vllm_server.wait_for(lambda s: sum(s.requests_finished.values()) >= 2)
    await asyncio.sleep(0.05)
    update = await poller.poll_once()
    await poller.aclose()
    after = _by_source(vllm_server.metrics_url)
    prefill_after = buckets(vllm_server.metrics_url, "vllm:request_prefill_kv_computed_tokens")

    s = update.snapshot
    delta = {k: after[k] - before.get(k, 0.0) for k in after}
    assert delta["local_cache_hit"] > 0, f"{source} shows no cache hit: {delta}"
    assert dict(s.prompt_tokens_by_source) == pytest.approx(delta)
    assert s.prompt_cache_share == pytest.approx(delta["local_cache_hit"] / sum(delta.values()))
    assert s.waiting_by_reason == {"capacity": 0.0, "deferred": 0.0}
    computed = [(b, c - dict(prefill_before).get(b, 0.0)) for b, c in prefill_after]
    assert s.prefill_computed_p50_tokens == pytest.approx(histogram_quantile(0.5, computed))
    assert s.to_dict()["prompt_tokens_by_source"] == dict(s.prompt_tokens_by_source)

    panel = GpuPanel()
    qtbot.addWidget(panel)
    panel.show_update(update)
    text = _value(panel, "sources").text()
    assert text.startswith(f"{s.prompt_cache_share * 100:.1f} % from the prefix cache")
    assert f"{delta['local_compute']:,.0f} computed" in text
    assert _value(panel, "prefill").isVisibleTo(panel)


def _by_source(url: str) -> dict[str, float]:
    from kanoa_desktop.core.monitor.metrics import parse_scrape

    scrape = parse_scrape(httpx.get(url, timeout=5).text, 0.0, keep_all=True)
    out: dict[str, float] = {}
    for labels, value in scrape.values("vllm:prompt_tokens_by_source_total"):
        out[labels["source"]] = out.get(labels["source"], 0.0) + value
    return out


def _value(panel: GpuPanel, key: str):
    from PySide6.QtWidgets import QLabel

    return panel.findChild(QLabel, f"gpuPanelValue_{key}")
