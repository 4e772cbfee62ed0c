"""The client against the vLLM 0.33 test server: shapes, errors and failure modes."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.core.endpoint.client import ONE_PIXEL_PNG, ChatClient, Timeouts, collect
from kanoa_desktop.core.endpoint.events import (
    Finished,
    FirstToken,
    ReasoningDelta,
    RequestSent,
    TextDelta,
    Usage,
)
from tests.servers.vllm_server import VLLMTestServer

pytestmark = pytest.mark.vllm


def _req(model="qwen2.5-vl-7b", text="Interpret.", images=(), max_tokens=40, **kw) -> ChatRequest:
    return ChatRequest(model, [user_message(text, list(images))], max_tokens=max_tokens, **kw)


async def test_models_report_max_model_len_and_lora_has_unknown_context():
    with VLLMTestServer(lora_modules=("my-lora",)) as server:
        async with ChatClient(server.api_base) as client:
            models = {m.id: m for m in await client.models()}
            info = await client.server_info()
            health = await client.health()
    assert models["qwen2.5-vl-7b"].context_length == 32768
    assert models["qwen2.5-vl-7b"].root == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert models["my-lora"].context_length is None and models["my-lora"].parent
    assert info.kind == "vllm" and info.version == "0.33.0"
    assert health.state == "ok"


async def test_request_body_asks_for_usage_and_streams_with_images(vllm_server):
    async with ChatClient(vllm_server.api_base) as client:
        events = await collect(client, _req(images=[ONE_PIXEL_PNG]))
    body = vllm_server.received[-1].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"][0]["content"][0]["type"] == "image_url"
    assert isinstance(events[0], RequestSent) and events[0].n_images == 1
    usage = next(e for e in events if isinstance(e, Usage))
    assert not usage.estimated and usage.prompt_tokens > 256  # the image's tokens counted
    assert usage.completion_tokens == 40 and events[-1].finish_reason == "length"


async def test_reasoning_streams_as_reasoning_deltas_before_text():
    for field in ("reasoning", "reasoning_content"):
        with VLLMTestServer(reasoning=True, reasoning_field=field, reasoning_tokens=5) as server:
            async with ChatClient(server.api_base) as client:
                events = await collect(client, _req(max_tokens=20))
        kinds = [type(e) for e in events if isinstance(e, ReasoningDelta | TextDelta)]
        assert kinds[:5] == [ReasoningDelta] * 5 and TextDelta in kinds
        assert kinds.index(TextDelta) == 5
        assert isinstance(events[1], FirstToken)
        assert events[-1].reasoning


@pytest.mark.parametrize(
    ("server_kw", "request_kw", "error", "words"),
    [
        ({}, {"model": "nope"}, E.ModelNotFound, ["nope", "qwen2.5-vl-7b"]),
        ({"max_model_len": 512}, {"text": "word " * 900}, E.ContextOverflow, ["512"]),
        ({"max_model_len": 512}, {"max_tokens": 4000}, E.ContextOverflow, ["4,000", "512"]),
        (
            {"multimodal": False},
            {"images": [ONE_PIXEL_PNG]},
            E.VisionUnsupported,
            ["cannot read images"],
        ),
        ({"max_images": 1}, {"images": [ONE_PIXEL_PNG] * 2}, E.TooManyImages, ["at most 1 image"]),
        ({"api_key": "sk-right"}, {}, E.AuthFailed, ["API key"]),
        ({"legacy_error_shape": True}, {"model": "nope"}, E.ModelNotFound, ["nope"]),
    ],
)
async def test_server_refusals_become_typed_errors(server_kw, request_kw, error, words):
    with VLLMTestServer(**server_kw) as server:
        async with ChatClient(
            server.api_base, api_key="sk-wrong" if "api_key" in server_kw else None
        ) as client:
            with pytest.raises(error) as info:
                await collect(client, _req(**request_kw))
    text = str(info.value)
    for w in words:
        assert w.lower() in text.lower()
    assert info.value.hint
    if error is E.ModelNotFound and not server_kw:
        assert info.value.valid_models == ["qwen2.5-vl-7b"]
    if error is E.ContextOverflow and "text" in request_kw:
        assert info.value.context_length == 512 and info.value.prompt_tokens > 512


async def test_probe_vision_tells_vision_from_text_models():
    with VLLMTestServer() as vision, VLLMTestServer(multimodal=False) as text:
        async with ChatClient(vision.api_base) as c1, ChatClient(text.api_base) as c2:
            assert await c1.probe_vision("qwen2.5-vl-7b") is True
            assert await c2.probe_vision("qwen2.5-vl-7b") is False


async def test_error_in_the_middle_of_a_stream_keeps_the_text_received(vllm_server):
    vllm_server.fail_next("midstream_error", after_tokens=4)
    async with ChatClient(vllm_server.api_base) as client:
        with pytest.raises(E.StreamError) as info:
            await collect(client, _req())
    assert info.value.partial_text and len(info.value.partial_text.split()) >= 3


async def test_stream_cut_without_done_is_truncated_and_keeps_text(vllm_server):
    vllm_server.fail_next("cut_stream", after_tokens=5)
    async with ChatClient(vllm_server.api_base) as client:
        with pytest.raises(E.StreamTruncated) as info:
            await collect(client, _req())
    assert info.value.partial_text.strip()


async def test_complete_stream_without_done_marker_still_finishes(vllm_server):
    vllm_server.fail_next("no_done")
    async with ChatClient(vllm_server.api_base) as client:
        events = await collect(client, _req(max_tokens=10))
    assert isinstance(events[-1], Finished) and events[-1].finish_reason == "length"


async def test_chunk_that_is_not_json_is_a_protocol_error_with_partial_text(vllm_server):
    vllm_server.fail_next("non_json_chunk", after_tokens=3)
    async with ChatClient(vllm_server.api_base) as client:
        with pytest.raises(E.ProtocolError) as info:
            await collect(client, _req())
    assert info.value.partial_text.strip()


async def test_queue_full_and_engine_dead_are_retryable_server_errors(vllm_server):
    vllm_server.fail_next("queue_full")
    async with ChatClient(vllm_server.api_base) as client:
        with pytest.raises(E.ServerBusy) as info:
            await collect(client, _req())
        assert info.value.retryable
        vllm_server.set_engine_dead(True)
        health = await client.health()
    assert health.state == "down" and "engine" in health.detail


async def test_slow_first_token_beyond_the_read_timeout_is_a_read_timeout(vllm_server):
    vllm_server.fail_next("slow_first_token", delay_s=2.0)
    async with ChatClient(vllm_server.api_base, timeouts=Timeouts(read=0.3)) as client:
        with pytest.raises(E.ReadTimeout) as info:
            await collect(client, _req())
    assert "stopped answering" in info.value.message


async def test_slow_first_token_within_the_timeout_measures_ttft(vllm_server):
    vllm_server.fail_next("slow_first_token", delay_s=0.5)
    async with ChatClient(vllm_server.api_base) as client:
        events = await collect(client, _req(max_tokens=5))
    first = next(e for e in events if isinstance(e, FirstToken))
    assert first.ttft_s >= 0.5


async def test_a_hundred_cancelled_streams_leak_no_connection():
    with VLLMTestServer(tokens_per_second=200) as server:
        async with ChatClient(server.api_base) as client:
            for _ in range(100):
                seen = asyncio.Event()

                async def consume(seen: asyncio.Event = seen):
                    async for ev in client.stream_chat(
                        _req(max_tokens=2000, extra={"ignore_eos": True})
                    ):
                        if isinstance(ev, TextDelta):
                            seen.set()

                task = asyncio.ensure_future(consume())
                await seen.wait()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            assert server.wait_for(lambda s: s.running == 0, timeout=5)
            pool = client._http._transport._pool
            assert len(pool.connections) <= 4
            assert all(c.is_idle() or c.is_closed() for c in pool.connections)
        assert server.wait_for(lambda s: s.aborted == 100, 5)
        assert server.wait_for(lambda s: s.open_connections == 0, timeout=5)


async def test_keepalive_comments_are_ignored():
    with VLLMTestServer(keepalive_comments=True) as server:
        async with ChatClient(server.api_base) as client:
            events = await collect(client, _req(max_tokens=8))
    assert isinstance(events[-1], Finished)


async def test_a_server_that_sends_no_usage_gets_estimated_figures():
    # llama-cpp-python's own server ignores stream_options and never sends usage.
    with VLLMTestServer(ignore_stream_options=True, answer_tokens=25) as server:
        async with ChatClient(server.api_base) as client:
            events = await collect(
                client, _req(text="Describe the figure in detail.", max_tokens=100)
            )
    assert all(not isinstance(e, Usage) or e.estimated for e in events)
    usage = next(e for e in events if isinstance(e, Usage))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert usage.estimated
    assert usage.completion_tokens == len(deltas) == 25  # one streamed chunk, one token
    assert usage.prompt_tokens > 0
