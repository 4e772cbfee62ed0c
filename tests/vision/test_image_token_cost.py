"""What one figure costs in prompt tokens, measured on the server (core/endpoint/vision)."""

from __future__ import annotations

from kanoa_desktop.core.endpoint.client import ChatClient
from kanoa_desktop.core.endpoint.vision import (
    PROBE_FIGURE_SIZE,
    image_tokens,
    probe_figure_url,
    probe_messages,
    prompt_tokens_of,
)
from tests.servers.vllm_server import VLLMTestServer


async def test_the_vllm_test_servers_image_price_is_measured_once_and_remembered():
    with VLLMTestServer(answer_tokens=3, image_tokens=300) as server:
        async with ChatClient(server.api_base) as client:
            assert client.measured_image_tokens(server.model) is None
            assert await client.image_token_cost(server.model) == 300
            assert await client.image_token_cost(server.model) == 300
            assert client.measured_image_tokens(server.model) == 300
        sent = [r.body for r in server.received if r.path.endswith("/chat/completions")]
    assert len(sent) == 2  # measured once: one request without the figure, one with it
    assert [len(b["messages"][0]["content"]) for b in sent] == [1, 2]
    assert all(b["max_tokens"] == 1 for b in sent)


async def test_a_text_only_model_has_no_image_price():
    with VLLMTestServer(multimodal=False) as server:
        async with ChatClient(server.api_base) as client:
            assert await client.image_token_cost(server.model) is None


def test_the_probe_figure_is_a_png_of_the_default_size():
    import base64
    import io

    from PIL import Image

    url = probe_figure_url()
    assert url.startswith("data:image/png;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.size == PROBE_FIGURE_SIZE
    with_fig, without = probe_messages(True), probe_messages(False)
    assert with_fig[0]["content"][-1] == without[0]["content"][-1]


def test_usage_arithmetic_refuses_missing_or_absurd_counts():
    assert prompt_tokens_of({"usage": {"prompt_tokens": 30}}) == 30
    assert prompt_tokens_of({"usage": {"prompt_tokens": True}}) is None
    assert prompt_tokens_of({"usage": None}) is None
    assert prompt_tokens_of([]) is None
    assert image_tokens(46, 30) == 16
    assert image_tokens(30, 30) is None
    assert image_tokens(None, 30) is None


async def test_the_client_pool_remembers_each_endpoints_measured_price():
    from kanoa_desktop.core.config.profiles import Profile
    from kanoa_desktop.core.endpoint.pool import ClientPool

    with VLLMTestServer(image_tokens=300) as seeing, VLLMTestServer(multimodal=False) as blind:
        pool = ClientPool()
        try:
            p1 = Profile(name="a", api_base=seeing.api_base)
            p2 = Profile(name="b", api_base=blind.api_base)
            assert pool.image_tokens(seeing.api_base) is None  # the pipeline's guess stays
            assert await pool.measure_image_tokens(p1, seeing.model) == 300
            assert await pool.measure_image_tokens(p2, blind.model) is None
            assert pool.image_tokens(seeing.api_base) == 300
            assert pool.image_tokens(blind.api_base) is None
        finally:
            await pool.aclose()
