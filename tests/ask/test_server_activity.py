"""What the server is doing while a question waits or streams (core/ask/watch.py), and a
server that stops listening ending the turn at once, against the vLLM test server."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from kanoa_desktop.core.ask.pipeline import (
    AnswerDelta,
    ConversationRunner,
    Progress,
    StateChanged,
    TurnEnded,
)
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.pool import ClientPool
from tests.servers.vllm_server import VLLMTestServer


@pytest.fixture
async def pool():
    p = ClientPool()
    yield p
    await p.aclose()


def _runner(server, pool, events, **profile) -> ConversationRunner:
    values = dict(api_base=server.api_base, model=server.model, max_tokens=200, temperature=0.0)
    values.update(profile)
    return ConversationRunner(Profile(**values), Services(pool), listener=events.append)


async def _hog(server) -> asyncio.Task:
    """Another user's long answer, holding the server's only slot."""

    async def ask() -> None:
        async with httpx.AsyncClient(timeout=120) as http:
            body = {"model": server.model, "stream": True, "max_tokens": 400,
                    "messages": [{"role": "user", "content": "Tell a long story."}]}  # fmt: skip
            async with http.stream("POST", server.api_base + "/chat/completions", json=body) as r:
                async for _ in r.aiter_bytes():
                    pass

    task = asyncio.ensure_future(ask())
    for _ in range(500):
        if server.stats.running >= 1:
            return task
        await asyncio.sleep(0.02)
    raise AssertionError("the other request never ran")


async def test_a_queued_question_says_how_many_wait_ahead_then_streams(pool):
    with VLLMTestServer(max_num_seqs=1, tokens_per_second=20, answer_tokens=400) as server:
        hog = await _hog(server)
        events: list = []
        runner = _runner(server, pool, events, max_tokens=8)
        task = asyncio.ensure_future(runner.ask("What is plotted?"))
        while not [e for e in events if isinstance(e, Progress) and e.activity.phase == "queued"]:
            assert not task.done(), [e for e in events if isinstance(e, Progress)]
            await asyncio.sleep(0.05)
        hog.cancel()  # the other user stops: the question leaves the queue and is answered
        await asyncio.gather(hog, return_exceptions=True)
        ended = await asyncio.wait_for(task, 120)
    assert ended.state == "done" and ended.answer
    queued = [e.activity for e in events if isinstance(e, Progress)
              and e.activity.phase == "queued"]  # fmt: skip
    assert queued, [e.activity for e in events if isinstance(e, Progress)]
    assert queued[0].waiting >= 1 and queued[0].running == 1
    assert "Queued on the server: 1 request waiting, 1 answering" in queued[0].text()
    first_delta = next(i for i, e in enumerate(events) if isinstance(e, AnswerDelta))
    reports = [i for i, e in enumerate(events) if isinstance(e, Progress)]
    assert reports[0] < first_delta


async def test_a_long_wait_without_news_shows_the_time_waited(pool):
    # The server reads a long prompt slowly and says nothing about it (vLLM streams no
    # prompt progress): the elapsed time is what can be shown.
    with VLLMTestServer(prefill_tokens_per_second=1500) as server:
        events: list = []
        runner = _runner(server, pool, events, max_tokens=4)
        question = "Summarise: " + "growth curve of strain B in LB at 37 degrees. " * 400
        ended = await runner.ask(question)
    assert ended.state == "done"
    waited = [e.activity for e in events if isinstance(e, Progress)]
    assert len(waited) >= 2 and {a.phase for a in waited} == {"waiting"}
    seconds = [a.elapsed_s for a in waited]
    assert seconds == sorted(seconds) and seconds[-1] >= seconds[0] + 0.9  # about once a second
    assert waited[-1].text().startswith("Waiting for the first token · ")


async def test_a_server_that_stops_listening_mid_answer_ends_the_turn_at_once(pool):
    # The server stops (its port closes) but the answer's connection lingers without a
    # byte, as a server shutting down does: the turn must not stay "Streaming" until the
    # progress deadline (set far away here), it ends as soon as nothing listens.
    with VLLMTestServer(tokens_per_second=0.2, answer_tokens=50) as server:
        events: list = []
        runner = _runner(server, pool, events, progress_timeout_s=600.0)
        task = asyncio.ensure_future(runner.ask("What is plotted?"))
        while not [e for e in events if isinstance(e, AnswerDelta)]:
            assert not task.done()
            await asyncio.sleep(0.05)
        server._httpd.socket.close()  # nothing listens any more; the stream stays open
        ended = await asyncio.wait_for(task, 120)
    assert ended.state == "error" and isinstance(ended.error, E.ConnectionRefused)
    assert "stopped: nothing listens there any more" in ended.error.message
    assert ended.answer  # the text received so far is kept
    states = [e.state for e in events if isinstance(e, StateChanged)]
    assert states[-2:] == ["streaming", "error"]
    assert isinstance(events[-1], TurnEnded)


async def test_tokens_that_stop_then_resume_are_said_to_resume(pool):
    # One token every 3.3 s: each gap is reported as silence, each new token as streaming.
    with VLLMTestServer(tokens_per_second=0.3, answer_tokens=3) as server:
        events: list = []
        ended = await _runner(server, pool, events).ask("What is plotted?")
    assert ended.state == "done"
    phases = [e.activity.phase for e in events if isinstance(e, Progress)]
    silent_at = phases.index("silent")
    assert "streaming" in phases[silent_at:], phases
    silent = next(e.activity for e in events if isinstance(e, Progress)
                  and e.activity.phase == "silent")  # fmt: skip
    assert silent.text().startswith("No new token for ")
