"""The endpoint benchmark's vision tasks against the real llama.cpp server: with a vision
projector they run (the server decodes each task's figure), without one they are skipped."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.bench.speed import DEFAULT_TASKS, EndpointBenchmark, to_markdown
from kanoa_desktop.core.endpoint.client import ChatClient

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]

VISION_TASKS = [t for t in DEFAULT_TASKS if t.kind == "vision"]


async def _bench(server, **kw):
    async with ChatClient(server.api_base) as client:
        bench = EndpointBenchmark(
            client, server.model, runs=1, tasks=VISION_TASKS, max_tokens=12, **kw
        )
        return await bench.run()


async def test_vision_tasks_run_against_the_multimodal_llama_server(llama_vision_server):
    result = await _bench(llama_vision_server)
    assert result.error in ("", None)
    assert [t.task.key for t in result.tasks] == [t.key for t in VISION_TASKS]
    for tr in result.tasks:
        assert not tr.skipped
        assert len(tr.runs) == 1 and not tr.runs[0].error, tr.runs
        assert tr.runs[0].output_tokens >= 1 and tr.runs[0].ttft_s is not None
    assert "Skipped" not in to_markdown(result)


async def test_vision_tasks_are_skipped_on_the_plain_llama_server(llama_server):
    result = await _bench(llama_server)
    assert all(t.skipped == "Skipped: text-only model" and not t.runs for t in result.tasks)
