"""llama.cpp says how far it has read a long prompt: the window's and the command line's
"Reading the prompt: N of M tokens", and M is the server's own prompt count."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.ask.pipeline import ConversationRunner, Progress
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.pool import ClientPool
from tests.servers.vllm_server import VLLMTestServer

pytestmark = pytest.mark.llama

LONG = "The growth curve of strain B in LB at 37 degrees rises after a lag. " * 130


@pytest.fixture
async def pool():
    p = ClientPool()
    yield p
    await p.aclose()


async def test_a_long_prompt_reports_its_reading_progress(llama_server, pool):
    events: list = []
    profile = Profile(api_base=llama_server.api_base, model="", max_tokens=4, temperature=0.0)
    runner = ConversationRunner(profile, Services(pool), listener=events.append)
    ended = await runner.ask("Summarise: " + LONG)
    assert ended.state == "done", ended.error
    assert runner.last_request.get("return_progress") is True  # Show request: as sent
    prompt = [
        e.activity for e in events if isinstance(e, Progress) and e.activity.phase == "prompt"
    ]
    assert prompt, [e.activity for e in events if isinstance(e, Progress)]
    done = [a.processed for a in prompt]
    assert done == sorted(done) and prompt[-1].total == ended.stats.prompt_tokens
    assert prompt[-1].text().startswith("Reading the prompt: ")
    assert f"of {ended.stats.prompt_tokens:,} tokens" in prompt[-1].text()


async def test_other_servers_are_not_asked_for_progress(pool):
    with VLLMTestServer(answer_tokens=3) as server:
        profile = Profile(api_base=server.api_base, model=server.model, max_tokens=4)
        await ConversationRunner(profile, Services(pool)).ask("Hello?")
        (chat,) = [r.body for r in server.received if r.path.endswith("/chat/completions")]
    assert "return_progress" not in chat
