"""Asking through the real vLLM router: both modes' model lists, streams that follow the
model, Test connection's worker list, and the router's failures as typed errors with
hints (a model with no server, every server down)."""

from __future__ import annotations

import asyncio
import time

import pytest

from kanoa_desktop.core.config.profiles import ProfileStore
from kanoa_desktop.core.config.secrets import KeyStore
from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.core.endpoint.client import ChatClient, collect
from kanoa_desktop.core.endpoint.events import Finished, Usage
from kanoa_desktop.ui.settings import SettingsDialog
from kanoa_desktop.ui.settings.connection import ConnectionRequest, check_connection
from tests.fleet.conftest import MODEL, require
from tests.servers import router as router_mod
from tests.servers.router import VllmRouter
from tests.servers.vllm_server import VLLMTestServer

pytestmark = [pytest.mark.vllm, pytest.mark.llama]

TEXT_MODEL = "gemma-3-12b-text"


@pytest.fixture(scope="module")
def igw(llama_server, tmp_path_factory):
    """A router in --enable-igw mode (routes by model) in front of a vision vLLM server, a
    text-only vLLM server and llama-server."""
    require(router_mod.missing_reason())
    vision = VLLMTestServer(model=MODEL, tokens_per_second=80.0).start()
    text = VLLMTestServer(model=TEXT_MODEL, multimodal=False, tokens_per_second=80.0).start()
    router = VllmRouter(igw=True)
    try:
        router.start(tmp_path_factory.mktemp("igw"))
        for server in (vision, text, llama_server):
            router.add_worker(server.base_url)
        router.wait_healthy(3)
        yield router, vision, text, llama_server
    finally:
        router.stop()
        vision.stop()
        text.stop()


@pytest.fixture(scope="module")
def lone(tmp_path_factory):
    """A default-mode router in front of one vLLM test server (killed by a test)."""
    require(router_mod.missing_reason())
    server = VLLMTestServer(model=MODEL, tokens_per_second=80.0).start()
    router = VllmRouter([server.base_url])
    try:
        router.start(tmp_path_factory.mktemp("lone"))
        yield router, server
    finally:
        router.stop()
        server.stop()


def stream(api_base: str, model: str, max_tokens: int = 8) -> list:
    async def main() -> list:
        async with ChatClient(api_base) as client:
            request = ChatRequest(
                model=model, messages=[user_message("Describe the plot.")], max_tokens=max_tokens
            )
            return await collect(client, request)

    return asyncio.run(main())


def stream_error(api_base: str, model: str) -> E.KanoaError:
    with pytest.raises(E.KanoaError) as info:
        stream(api_base, model)
    return info.value


def test_model_list_through_an_igw_router_names_every_servers_model(igw):
    router, *_ = igw

    async def main():
        async with ChatClient(router.api_base) as client:
            return await client.models()

    models = asyncio.run(main())
    assert sorted(m.id for m in models) == sorted([MODEL, TEXT_MODEL, "smollm2"])


def test_model_list_through_a_default_router_is_its_servers_list(lone):
    router, server = lone

    async def main():
        async with ChatClient(router.api_base) as client:
            return await client.models()

    models = asyncio.run(main())
    assert [(m.id, m.context_length) for m in models] == [(MODEL, server.max_model_len)]


def test_streams_follow_the_model_through_an_igw_router(igw):
    router, vision, text, llama = igw
    seen_vision, seen_text = len(vision.received), len(text.received)
    for model in (MODEL, TEXT_MODEL, llama.model):
        events = stream(router.api_base, model)
        done = [e for e in events if isinstance(e, Finished)]
        usage = [e for e in events if isinstance(e, Usage)]
        assert done and done[0].text, model
        assert usage and usage[0].completion_tokens > 0, model
    assert len(vision.received) == seen_vision + 1
    assert len(text.received) == seen_text + 1


def test_test_connection_says_it_is_a_router_with_its_servers_health_and_load(igw, qtbot):
    router, vision, text, llama = igw
    request = ConnectionRequest(
        profile_id="p",
        api_base=router.api_base,
        model=MODEL,
        vision="no",
        api_key=None,
        verify=True,
        timeout_s=20.0,
    )
    report = asyncio.run(check_connection(request))
    assert report.error is None, report.error
    assert report.health.state == "ok"
    assert report.router is not None and report.router.mode == "igw"
    assert (report.router.healthy, report.router.total) == (3, 3)
    assert {w.url for w in report.router.workers} == {
        vision.base_url,
        text.base_url,
        llama.base_url,
    }
    assert report.router.summary() == "vLLM router (routes by model): 3 of 3 servers healthy"

    store = ProfileStore()
    store.load()
    dialog = SettingsDialog(store, KeyStore())
    qtbot.addWidget(dialog)
    dialog.resize(780, 700)
    dialog.open()
    page = dialog.endpoint
    page.show_connection_result(report)
    qtbot.wait(50)
    assert "3 of 3 servers healthy" in page.result_label.text()
    assert page.worker_list.isVisibleTo(dialog)
    rows = [
        [page.worker_list.topLevelItem(i).text(c) for c in range(4)]
        for i in range(page.worker_list.topLevelItemCount())
    ]
    assert sorted(r[1] for r in rows) == sorted([MODEL, TEXT_MODEL, "smollm2"])
    assert all(r[2] == "healthy" and r[3].isdigit() for r in rows)
    dialog.grab().save("/tmp/kanoa-router-settings.png")


def test_unknown_model_through_an_igw_router_says_the_router_has_no_server_for_it(igw):
    router, *_ = igw
    # The router sends a model it does not know to any server: llama-server answers
    # whatever the name (seen here), a vLLM server refuses it. Ask until a vLLM one has.
    err = None
    for _ in range(6):
        try:
            stream(router.api_base, "llava-13b")
        except E.KanoaError as exc:
            err = exc
            break
    assert isinstance(err, E.RouterModelUnavailable), repr(err)
    assert err.message == "The router has no server for model 'llava-13b'."
    assert MODEL in err.hint and TEXT_MODEL in err.hint and "smollm2" in err.hint


def test_a_model_whose_only_server_is_down_gets_a_router_error_naming_it(igw):
    router, vision, text, llama = igw
    text.stop()
    # Before the health check notices, the router fails to reach the server it picked.
    first = stream_error(router.api_base, TEXT_MODEL)
    assert isinstance(first, E.RouterRequestFailed | E.RouterModelUnavailable), repr(first)
    assert first.hint
    router.wait_healthy(2)
    err = stream_error(router.api_base, TEXT_MODEL)
    assert isinstance(err, E.RouterModelUnavailable), repr(err)
    assert err.message.startswith(f"The router has no working server for model '{TEXT_MODEL}'")
    assert text.base_url in err.message
    assert MODEL in err.hint and "smollm2" in err.hint
    assert err.retryable
    # The other models still answer through the same router.
    assert any(isinstance(e, Finished) for e in stream(router.api_base, MODEL))


def test_every_server_down_behind_a_router_says_so(lone):
    router, server = lone
    server.stop()
    first = stream_error(router.api_base, MODEL)
    assert isinstance(first, E.RouterRequestFailed | E.RouterNoWorkers), repr(first)
    router.wait_healthy(0)
    deadline = time.monotonic() + 15
    while True:  # the circuit opens after the health check: then 503 "No available workers"
        err = stream_error(router.api_base, MODEL)
        if isinstance(err, E.RouterNoWorkers) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert isinstance(err, E.RouterNoWorkers), repr(err)
    assert err.message == f"All servers behind the router are down (1 of 1: {server.base_url})."
    assert "Start the model servers" in err.hint
    assert err.retryable

    async def health():
        async with ChatClient(router.api_base) as client:
            return await client.health()

    h = asyncio.run(health())
    assert h.state == "down"
    assert h.detail == "vLLM router (any server for any model): 0 of 1 server healthy"
