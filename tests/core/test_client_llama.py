"""The client against the real llama.cpp llama-server serving SmolLM2-135M."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import ChatRequest, Conversation, user_message
from kanoa_desktop.core.endpoint.client import ONE_PIXEL_PNG, ChatClient, collect
from kanoa_desktop.core.endpoint.events import Finished, FirstToken, RequestSent, TextDelta, Usage

pytestmark = pytest.mark.llama


def _req(text: str, max_tokens: int = 24, **kw) -> ChatRequest:
    return ChatRequest(
        "smollm2", [user_message(text)], max_tokens=max_tokens, temperature=0.0, **kw
    )


def _processing(server) -> float:
    body = httpx.get(server.metrics_url, timeout=5).text
    for line in body.splitlines():
        if line.startswith("llamacpp:requests_processing"):
            return float(line.split()[-1])
    raise AssertionError("llamacpp:requests_processing missing from /metrics")


async def test_models_lists_the_served_model_with_its_context_length(llama_server):
    async with ChatClient(llama_server.api_base) as client:
        models = await client.models()
    assert [m.id for m in models] == ["smollm2"]
    assert models[0].context_length == 4096  # -c 8192 over -np 2 slots
    assert models[0].owned_by == "llamacpp"


async def test_health_is_ok_with_a_latency_and_server_is_llama_cpp(llama_server):
    async with ChatClient(llama_server.api_base) as client:
        health = await client.health()
        info = await client.server_info()
    assert health.state == "ok" and health.latency_s is not None and health.latency_s >= 0
    assert info.kind == "llama.cpp"


async def test_stream_yields_typed_events_in_order_with_real_usage(llama_server):
    async with ChatClient(llama_server.api_base) as client:
        events = await collect(client, _req("Name three colours."))
    kinds = [type(e) for e in events]
    assert kinds[0] is RequestSent and kinds[1] is FirstToken
    assert kinds[-2:] == [Usage, Finished]
    assert set(kinds[2:-2]) == {TextDelta}
    times = [e.t for e in events]
    assert times == sorted(times)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    usage, fin = events[-2], events[-1]
    assert text and fin.text == text
    assert fin.finish_reason in ("stop", "length")
    assert not usage.estimated and usage.prompt_tokens > 5 and usage.completion_tokens >= 1
    assert events[1].ttft_s == pytest.approx(events[1].t - events[0].t)


async def test_follow_up_carries_the_earlier_turns(llama_server):
    conv = Conversation(system_prompt="You are terse.")
    first = conv.add_turn(user_message("Remember the word 'zebra'."))
    async with ChatClient(llama_server.api_base) as client:
        events = await collect(
            client,
            ChatRequest(
                "smollm2", conv.messages_for(first.user)[:-1] + [first.user], max_tokens=12
            ),
        )
        first.assistant = events[-1].text
        follow = user_message("What word did I ask you to remember?")
        msgs = conv.messages_for(follow)
        events2 = await collect(client, ChatRequest("smollm2", msgs, max_tokens=12))
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    # The server saw a longer prompt on the follow-up: the earlier turn went with it.
    assert events2[-2].prompt_tokens > events[-2].prompt_tokens


async def test_cancelling_the_consumer_aborts_the_request_on_the_server(llama_server):
    async with ChatClient(llama_server.api_base) as client:
        got: list[str] = []

        async def consume():
            async for ev in client.stream_chat(
                _req(
                    "Count from one to five hundred in words.",
                    max_tokens=2000,
                    extra={"ignore_eos": True},
                )
            ):
                if isinstance(ev, TextDelta):
                    got.append(ev.text)

        task = asyncio.ensure_future(consume())
        while len(got) < 5:
            await asyncio.sleep(0.01)
            assert not task.done()
        assert _processing(llama_server) >= 1
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # The server notices the closed connection and frees its slot long before the
        # 2,000 tokens it was asked for (~15 s here) would have been generated.
        deadline = time.monotonic() + 3
        while _processing(llama_server) != 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert _processing(llama_server) == 0
        # The pool holds no connection from the cancelled stream.
        pool = client._http._transport._pool
        assert all(c.is_idle() or c.is_closed() for c in pool.connections)


async def test_prompt_longer_than_the_context_is_a_typed_error_with_both_numbers(llama_server):
    async with ChatClient(llama_server.api_base) as client:
        with pytest.raises(E.ContextOverflow) as info:
            await collect(client, _req("word " * 6000))
    err = info.value
    assert err.context_length == 4096 and err.prompt_tokens > 4096
    assert f"{err.context_length:,}" in err.message and f"{err.prompt_tokens:,}" in err.message
    assert err.hint


async def test_image_to_a_text_model_is_the_cannot_see_images_error(llama_server):
    async with ChatClient(llama_server.api_base) as client:
        with pytest.raises(E.VisionUnsupported) as info:
            await collect(
                client,
                ChatRequest(
                    "smollm2", [user_message("What is this?", [ONE_PIXEL_PNG])], max_tokens=5
                ),
            )
        assert await client.probe_vision("smollm2") is False
    assert "cannot read images" in info.value.message


async def test_wrong_api_key_is_an_auth_error_that_never_shows_the_key(llama_server_with_key):
    wrong = "sk-wrong-key-do-not-print-1234"
    client = ChatClient(llama_server_with_key.api_base, api_key=wrong)
    async with client:
        with pytest.raises(E.AuthFailed) as info:
            await collect(client, _req("hi", 4))
        with pytest.raises(E.AuthFailed):
            await client.models()
    err = info.value
    for text in (str(err), repr(err), err.message, err.hint, err.detail, repr(client)):
        assert wrong not in text
    assert err.status == 401


async def test_right_api_key_streams(llama_server_with_key):
    async with ChatClient(
        llama_server_with_key.api_base, api_key=llama_server_with_key.api_key
    ) as client:
        events = await collect(client, _req("Say hi.", 4))
    assert isinstance(events[-1], Finished)
