"""Figures through the real llama.cpp server with a vision projector (``--mmproj``).

The projector is tests/servers/make_mmproj.py's tiny random one: answers are nonsense, but
the server really decodes, resizes, encodes and counts every image, and refuses what its
decoder cannot read. What it does is written up in tests/servers/README.md.
"""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from kanoa_desktop.core.endpoint.chat import ChatRequest, data_url, user_message
from kanoa_desktop.core.endpoint.client import ChatClient, collect
from kanoa_desktop.core.endpoint.events import Finished, RequestSent, TextDelta, Usage
from tests.servers import make_mmproj

pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]

PER_IMAGE = make_mmproj.TOKENS_PER_IMAGE  # (image size / patch size)², from the geometry


def png(size=(96, 64), color=(200, 40, 40), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


def ask(urls, text="Describe the figure.", max_tokens=4) -> ChatRequest:
    return ChatRequest(
        "smollm2", [user_message(text, urls)], max_tokens=max_tokens, temperature=0.0
    )


def prompt_tokens(server, urls, text="Describe the figure.") -> int:
    """The server's prompt tokens for one user turn: the images, then the text."""
    parts = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    parts.append({"type": "text", "text": text})
    return server.prompt_tokens([{"role": "user", "content": parts}])


# -- what the server says about itself ---------------------------------------------------


def test_props_reports_vision_with_the_projector_and_not_without(llama_vision_server, llama_server):
    seeing = httpx.get(llama_vision_server.base_url + "/props", timeout=10).json()
    plain = httpx.get(llama_server.base_url + "/props", timeout=10).json()
    assert seeing["modalities"]["vision"] is True
    assert plain["modalities"]["vision"] is False


async def test_the_vision_probe_says_can_see_for_the_projector_and_text_only_without(
    llama_vision_server, llama_server
):
    # Through /props (the model list says llama.cpp) and through a real one-pixel image.
    for listed in (True, False):
        async with ChatClient(llama_vision_server.api_base) as seeing:
            if listed:
                await seeing.models()
            assert await seeing.probe_vision("smollm2") is True
        async with ChatClient(llama_server.api_base) as plain:
            if listed:
                await plain.models()
            assert await plain.probe_vision("smollm2") is False


# -- what an image costs -------------------------------------------------------------------


async def test_one_image_costs_the_projectors_patch_count_whatever_its_size(
    llama_vision_server,
):
    async with ChatClient(llama_vision_server.api_base) as client:
        assert await client.image_token_cost("smollm2") == PER_IMAGE
    text_only = prompt_tokens(llama_vision_server, [])
    # A fixed-size projector resizes every image: 1 pixel and 12 megapixels cost the same.
    for data in (png((1, 1), (1, 2, 3)), png((4000, 3000), (4, 5, 6))):
        url = data_url(data, "image/png")
        assert prompt_tokens(llama_vision_server, [url]) == text_only + PER_IMAGE


def test_png_jpeg_gif_and_bmp_together_cost_one_price_each(llama_vision_server):
    text_only = prompt_tokens(llama_vision_server, [])
    kinds = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "BMP": "image/bmp"}
    urls = [data_url(png(color=(7, 8, i), fmt=f), m) for i, (f, m) in enumerate(kinds.items())]
    assert prompt_tokens(llama_vision_server, urls) == text_only + len(urls) * PER_IMAGE


async def test_a_figure_streams_an_answer_with_the_servers_own_usage(llama_vision_server):
    url = data_url(png(color=(10, 200, 30)), "image/png")
    async with ChatClient(llama_vision_server.api_base) as client:
        events = await collect(client, ask([url]))
    sent = next(e for e in events if isinstance(e, RequestSent))
    usage = next(e for e in events if isinstance(e, Usage))
    final = events[-1]
    assert sent.n_images == 1
    assert isinstance(final, Finished) and final.finish_reason in ("stop", "length")
    assert any(isinstance(e, TextDelta) for e in events) or final.finish_reason == "stop"
    assert usage.estimated is False
    assert usage.prompt_tokens == prompt_tokens(llama_vision_server, []) + PER_IMAGE
