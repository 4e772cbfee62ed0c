"""The prompt estimate shown before the server's count uses the measured figure cost: a
connection test measures it, the profile store keeps it, the next figure question's
estimate is near the server's own count (it was 2.4x too high with the 576-token guess)."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.ask.outbox import Outbox
from kanoa_desktop.core.ask.pipeline import ConversationRunner
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.inputs.figures import prepare_figure
from kanoa_desktop.ui.settings.connection import ConnectionRequest, check_connection
from tests.history.conftest import png_bytes


@pytest.fixture
async def pool():
    p = ClientPool()
    yield p
    await p.aclose()


async def _estimate(server, pool, store) -> tuple[int, int]:
    profile = Profile(name="lab", api_base=server.api_base, model=server.model, max_tokens=8)
    fig = prepare_figure(png_bytes("red", (1024, 768)), name="growth.png")
    runner = ConversationRunner(profile, Services(pool, vision=store), outbox=Outbox([fig]))
    ended = await runner.ask("What is plotted?")
    assert ended.state == "done" and not ended.stats.estimated
    return ended.stats.prompt_estimate, ended.stats.prompt_tokens


async def test_a_measured_figure_cost_makes_the_estimate_near_the_servers_count(pool):
    from tests.servers.vllm_server import VLLMTestServer

    with VLLMTestServer(image_tokens=120, answer_tokens=4) as server:
        store = ProfileStore()
        store.load()
        guessed, counted = await _estimate(server, pool, store)
        # As the first-run card and Settings do after a connection test.
        report = await check_connection(ConnectionRequest(
            profile_id="p", api_base=server.api_base, model=server.model, vision="auto",
            api_key=None, verify=True, timeout_s=30.0,
        ))  # fmt: skip
        assert report.image_tokens == 120
        store.remember_image_tokens(server.api_base, server.model, report.image_tokens)
        assert store.save() is None
        again = ProfileStore()
        again.load()  # kept on disk, for the next session too
        assert again.cached_image_tokens(server.api_base, server.model) == 120
        fresh = ClientPool()  # a new session: nothing measured in memory
        try:
            measured, counted_again = await _estimate(server, fresh, again)
        finally:
            await fresh.aclose()
    assert counted_again == counted
    assert abs(measured - counted) < abs(guessed - counted)
    assert 0.75 <= measured / counted <= 1.33, (measured, counted)
