"""Test connection against the real llama.cpp server (SmolLM2: text only)."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.config.secrets import Secret
from kanoa_desktop.ui.settings.connection import ConnectionRequest, check_connection

pytestmark = pytest.mark.llama


def request_for(server, **kw) -> ConnectionRequest:
    values = dict(
        profile_id="p",
        api_base=server.api_base,
        model="",
        vision="auto",
        api_key=None,
        verify=True,
        timeout_s=30.0,
    )
    values.update(kw)
    return ConnectionRequest(**values)


async def test_llama_server_reports_health_context_kind_and_no_vision(llama_server):
    report = await check_connection(request_for(llama_server))
    assert report.error is None
    assert report.health.state == "ok"
    assert report.health.latency_s is not None
    assert [m.id for m in report.models] == [llama_server.model]
    assert report.models[0].context_length == 4096
    assert report.server.kind == "llama.cpp"
    assert report.vision is False
    assert report.vision_model == llama_server.model


async def test_wrong_key_comes_back_as_a_message_not_an_exception(llama_server_with_key):
    report = await check_connection(
        request_for(llama_server_with_key, api_key=Secret("sk-wrong"), vision="no")
    )
    assert report.error
    assert "sk-wrong" not in report.error


async def test_a_closed_port_is_reported_as_down():
    report = await check_connection(
        ConnectionRequest("p", "http://127.0.0.1:9/v1", "", "auto", None, True, 5.0)
    )
    assert report.health.state == "down"
    assert report.error
