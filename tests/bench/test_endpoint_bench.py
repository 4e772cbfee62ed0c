"""The endpoint benchmark against the vLLM test server: what it runs, skips and computes."""

from __future__ import annotations

import asyncio
import statistics

import httpx
import pytest

from kanoa_desktop.core.bench.speed import (
    DEFAULT_TASKS,
    EndpointBenchmark,
    MetricsReading,
    RunRecord,
    SuiteResult,
    TaskResult,
    scraping_reader,
    summarise,
    to_markdown,
)
from kanoa_desktop.core.endpoint.client import ChatClient
from tests.servers.vllm_server import VLLMTestServer, prompt_tokens

pytestmark = pytest.mark.timeout(60)


async def _bench(server: VLLMTestServer, runs: int = 2, **kw) -> tuple[SuiteResult, list]:
    seen = []
    async with ChatClient(server.api_base) as client:
        bench = EndpointBenchmark(client, server.model, runs=runs, on_progress=seen.append, **kw)
        result = await bench.run()
    return result, seen


async def test_every_task_runs_n_times_and_stats_match_the_recorded_runs():
    with VLLMTestServer(tokens_per_second=1000, answer_tokens=40) as server:
        result, progress = await _bench(server, runs=2)
        n_requests = len([r for r in server.received if r.path.endswith("/chat/completions")])
    assert [t.task.key for t in result.tasks] == [t.key for t in DEFAULT_TASKS]
    # 8 tasks × 2 runs, plus the one-pixel vision probe.
    assert n_requests == len(DEFAULT_TASKS) * 2 + 1
    assert [p.done for p in progress] == list(range(1, len(DEFAULT_TASKS) * 2 + 1))
    for tr in result.tasks:
        assert len(tr.runs) == 2 and all(r.ok for r in tr.runs), tr.runs
        rates = [r.tokens_per_s for r in tr.runs]
        s = tr.summary
        assert s.mean == pytest.approx(statistics.fmean(rates))
        assert s.std == pytest.approx(statistics.stdev(rates))
        assert s.cv == pytest.approx(statistics.stdev(rates) / statistics.fmean(rates))
        assert (s.min, s.max) == (min(rates), max(rates))
        assert tr.mean_ttft_s == pytest.approx(statistics.fmean(r.ttft_s for r in tr.runs))
        # 40 answer pieces plus vLLM's end-of-sequence token.
        assert all(r.output_tokens == 41 for r in tr.runs)
    per_run = [statistics.fmean(t.runs[i].tokens_per_s for t in result.tasks) for i in (0, 1)]
    assert result.overall.mean == pytest.approx(statistics.fmean(per_run))
    assert result.overall.std == pytest.approx(statistics.stdev(per_run))


async def test_vision_tasks_send_their_figure_and_text_tasks_send_none():
    with VLLMTestServer(tokens_per_second=2000, answer_tokens=10) as server:
        await _bench(server, runs=1, vision=True)
        bodies = [r.body for r in server.received if r.path.endswith("/chat/completions")]
    images = []
    for body in bodies:
        parts = body["messages"][-1]["content"]
        images.append(sum(1 for p in parts if isinstance(p, dict) and p.get("type") == "image_url")
                      if isinstance(parts, list) else 0)  # fmt: skip
    assert images == [1, 1, 1, 0, 0, 0, 0, 0]
    # Multi-turn carries its earlier turns; structured output asks for JSON.
    assert len(bodies[-1]["messages"]) == 3
    assert bodies[6]["response_format"] == {"type": "json_object"}
    # The figures are the prepared resources, not the one-pixel probe: they cost image tokens.
    assert prompt_tokens(bodies[0]["messages"]) > 256


async def test_text_only_model_skips_vision_tasks_with_a_note():
    with VLLMTestServer(multimodal=False, tokens_per_second=2000, answer_tokens=20) as server:
        result, progress = await _bench(server, runs=2)
    vision = [t for t in result.tasks if t.task.kind == "vision"]
    assert vision and all(t.skipped == "Skipped: text-only model" and not t.runs for t in vision)
    assert all(t.summary is not None for t in result.tasks if t.task.kind == "text")
    assert progress[-1].done == progress[-1].total == len(DEFAULT_TASKS) * 2
    md = to_markdown(result)
    assert "| **Vision - Photo** | — | — | — | — | — | Skipped: text-only model |" in md


async def test_cancel_stops_the_request_in_flight_and_keeps_finished_runs():
    with VLLMTestServer(tokens_per_second=50, answer_tokens=400) as server:
        async with ChatClient(server.api_base) as client:
            bench = EndpointBenchmark(client, server.model, runs=3, vision=True)
            task = asyncio.ensure_future(bench.run())
            # Poll without blocking the loop the benchmark runs on.
            for _ in range(500):
                if server.stats.running >= 1:
                    break
                await asyncio.sleep(0.02)
            assert server.stats.running >= 1
            await asyncio.sleep(0.2)
            bench.cancel()
            result = await asyncio.wait_for(task, 10)
        assert server.wait_for(lambda s: s.aborted >= 1, timeout=5)
    assert result.cancelled
    assert all(not t.runs for t in result.tasks)  # the cut run is not recorded as a result
    assert "cancelled before the end" in to_markdown(result)


async def test_unreachable_server_stops_the_suite_with_a_message():
    with VLLMTestServer() as server:
        base = server.api_base
    async with ChatClient(base) as client:
        result = await EndpointBenchmark(client, "m", runs=3, vision=False).run()
    ran = [r for t in result.tasks for r in t.runs]
    assert len(ran) == 1 and ran[0].error
    assert result.error == ran[0].error
    assert "stopped:" in to_markdown(result)


async def test_metrics_reader_gives_kv_peak_and_preemption_increase():
    readings = iter([MetricsReading(0.1, 5.0), MetricsReading(0.6, 7.0)])
    last = MetricsReading(0.2, 9.0)

    calls = []

    def reader():
        calls.append(1)
        return next(readings, last)

    # Sampled every 10 ms through a suite of ~0.3 s: the peak is the middle reading, and the
    # last reading (after the last run) closes the preemption count.
    with VLLMTestServer(tokens_per_second=200, answer_tokens=5) as server:
        result, _ = await _bench(server, runs=1, vision=True, metrics=reader,
                                 metrics_interval_s=0.01)  # fmt: skip
    assert len(calls) >= 3
    assert result.kv_cache_peak == pytest.approx(0.6)
    assert result.preemptions == pytest.approx(4.0)
    assert "KV cache peak 60.0%; preemptions 4" in to_markdown(result)


async def test_scraping_reader_reads_the_vllm_metrics_endpoint():
    with VLLMTestServer() as server:
        async with httpx.AsyncClient() as http:
            reading = await scraping_reader(server.metrics_url, http)()
            missing = await scraping_reader(server.base_url + "/nope", http)()
    assert reading.kv_cache_usage == 0.0 and reading.preemptions_total == 0.0
    assert missing is None


def test_markdown_has_kanoas_columns_bold_rows_and_overall_cv():
    task = DEFAULT_TASKS[3]
    runs = [RunRecord(task.key, i, v, 0.5, 100, 2.0) for i, v in enumerate((10.0, 12.0, 14.0))]
    result = SuiteResult("gemma", "http://x/v1", 3, tasks=[TaskResult(task, runs)])
    md = to_markdown(result, hardware="RTX 5080")
    lines = md.splitlines()
    assert lines[0] == "**gemma Statistics** (3-run benchmark on RTX 5080):"
    assert lines[2] == "| Test | Mean (tok/s) | StdDev | Min | Max | Mean TTFT (s) | Notes |"
    assert lines[4] == "| **Basic Chat** | 12.0 | 2.0 | 10.0 | 14.0 | 0.50 | Stable ✓ |"
    assert lines[5] == "| **Overall Average** | 12.0 | 2.0 | 10.0 | 14.0 | 0.50 | 17% CV |"


def test_summary_of_one_value_has_zero_spread_and_empty_is_none():
    assert summarise([]) is None
    s = summarise([5.0])
    assert (s.mean, s.std, s.min, s.max, s.cv) == (5.0, 0.0, 5.0, 5.0, 0.0)
