"""What the real multimodal llama.cpp server refuses, each as a typed error with a hint.

The server's own words are in tests/servers/README.md.
"""

from __future__ import annotations

import io
import uuid

import httpx
import pytest
from PIL import Image

from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import ChatRequest, data_url, user_message
from kanoa_desktop.core.endpoint.client import ONE_PIXEL_PNG, ChatClient, collect
from kanoa_desktop.core.endpoint.events import Finished

pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]

SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<rect width="10" height="10" fill="red"/></svg>'
)


def encoded(fmt: str, size=(40, 30), color=(30, 90, 150)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


def unique_png() -> str:
    """A PNG no other request sent (its colour comes from a fresh UUID)."""
    r, g, b = uuid.uuid4().bytes[:3]
    return data_url(encoded("PNG", color=(r, g, b)), "image/png")


def ask(urls, max_tokens=2) -> ChatRequest:
    return ChatRequest(
        "smollm2", [user_message("Describe.", urls)], max_tokens=max_tokens, temperature=0.0
    )


async def refusal(server, urls) -> E.KanoaError:
    async with ChatClient(server.api_base) as client:
        with pytest.raises(E.KanoaError) as info:
            await collect(client, ask(urls))
    return info.value


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("data:image/png;base64,@@@ not base64 !!!", id="corrupt-base64"),
        pytest.param(data_url(encoded("PNG")[:40], "image/png"), id="truncated-png"),
        pytest.param(data_url(encoded("WEBP"), "image/webp"), id="webp"),
        pytest.param(data_url(encoded("TIFF"), "image/tiff"), id="tiff"),
        pytest.param(data_url(SVG, "image/svg+xml"), id="svg"),
        pytest.param("data:image/png,not-base64", id="data-url-without-base64"),
    ],
)
async def test_an_image_the_server_cannot_decode_is_image_unreadable(llama_vision_server, url):
    err = await refusal(llama_vision_server, [url])
    assert isinstance(err, E.ImageUnreadable), repr(err)
    assert err.status == 400
    assert "PNG, JPEG, GIF and BMP" in err.hint
    assert err.detail  # the server's own words, for the details view


async def test_an_image_to_the_text_only_server_is_a_500_that_becomes_cannot_see(llama_server):
    err = await refusal(llama_server, [ONE_PIXEL_PNG])
    assert isinstance(err, E.VisionUnsupported) and err.status == 500
    assert "mmproj" in err.detail and err.hint


async def test_more_images_than_the_context_holds_is_a_context_overflow(llama_vision_server):
    # Each image costs 16 tokens here and a slot holds 4,096: 300 images are 4,800.
    tiny = [
        data_url(encoded("PNG", (8, 8), (i % 256, i // 256, 7)), "image/png") for i in range(300)
    ]
    err = await refusal(llama_vision_server, tiny)
    assert isinstance(err, E.ContextOverflow)
    assert err.context_length == 4096 and err.prompt_tokens > 4800
    assert "fewer or smaller figures" in err.hint


async def test_a_request_over_the_servers_size_limit_is_request_too_large(llama_vision_server):
    # 110 MB of valid base64: over the server's HTTP payload limit (48 MB passes).
    huge = "data:image/png;base64," + "A" * (110 * 1024 * 1024)
    err = await refusal(llama_vision_server, [huge])
    # The server answers 413 and closes the connection before the body is all sent: the
    # client sees the 413 or, more often, only the connection drop. Either way it is this.
    assert isinstance(err, E.RequestTooLarge) and err.status in (413, None)
    assert "Image long side" in err.hint


def test_the_servers_size_refusal_is_a_413_with_an_empty_body(llama_vision_server):
    huge = "data:image/png;base64," + "A" * (110 * 1024 * 1024)
    r = httpx.post(llama_vision_server.api_base + "/chat/completions",
                   json=ask([huge]).payload(stream=False), timeout=120)  # fmt: skip
    assert r.status_code == 413 and r.content == b""
    assert isinstance(E.error_from_status(413, r.content), E.RequestTooLarge)


async def test_the_prompt_cache_fault_is_typed_and_retry_goes_through(llama_vision_server):
    a, b = unique_png(), unique_png()
    async with ChatClient(llama_vision_server.api_base) as client:
        await collect(client, ask([a, b]))
        # The cached prompt has figure B right after A; a question with A alone trips
        # llama.cpp's cache ("Chunk not found").
        with pytest.raises(E.PromptCacheFault) as info:
            await collect(client, ask([a]))
        assert info.value.status == 500 and info.value.retryable
        assert "Retry" in info.value.hint
        # It keeps tripping it: the same request from a client that has not seen the fault.
        async with ChatClient(llama_vision_server.api_base) as fresh:
            with pytest.raises(E.PromptCacheFault):
                await collect(fresh, ask([a]))
        events = await collect(client, ask([a]))  # Retry: sent without the cache
    assert isinstance(events[-1], Finished)
