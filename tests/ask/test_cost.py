"""Cost is what the server did: a request it refused costs nothing (the answer's cost, the
session total, the history and the command line's usage line), an estimate is marked ``~``,
and an answer stopped halfway keeps the server's own count when it sent one. Against the
vLLM test server and the real llama.cpp server."""

from __future__ import annotations

import asyncio
import re

import pytest

from kanoa_desktop.core.ask.compare import Comparison, table_cells
from kanoa_desktop.core.ask.pipeline import AnswerDelta, ConversationRunner
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.history.store import HistoryStore
from tests.servers.vllm_server import VLLMTestServer, prompt_tokens
from tests.test_cli import _run

PRICES = dict(price_input_per_million=1000.0, price_output_per_million=2000.0)


@pytest.fixture
def history(tmp_path):
    store = HistoryStore(tmp_path / "history.sqlite3")
    yield store
    store.close()


async def _refused(profile: Profile, history, question: str = "Anything?"):
    pool = ClientPool()
    services = Services(pool, history=history)
    try:
        ended = await ConversationRunner(profile, services).ask(question)
    finally:
        await pool.aclose()
    return ended, services


@pytest.mark.vllm
@pytest.mark.parametrize("mode", ["internal_error", "legacy_error"])  # a 500 and a 400
async def test_a_request_the_server_refused_costs_nothing(history, mode):
    with VLLMTestServer() as server:
        server.fail_next(mode)
        profile = Profile(api_base=server.api_base, model=server.model, max_tokens=16, **PRICES)
        ended, services = await _refused(profile, history)
    assert ended.state == "error" and ended.stats is not None
    assert ended.stats.prompt_tokens > 0  # the prompt is estimated for the context gauge
    assert ended.cost == 0 and ended.stats.cost == 0
    assert services.costs.cost == 0 and services.costs.answers == 0
    assert format_cost(ended.stats.cost, ended.stats.estimated) == "$0.00"
    (turn,) = history.load_conversation(ended.runner.conversation_id).turns
    assert turn.cost == 0 and turn.prompt_tokens is None and not turn.estimated
    totals = history.usage_totals()
    assert totals.total(totals.session) == (0, 0, 0.0)


@pytest.mark.llama
async def test_a_prompt_llama_cpp_refuses_as_too_long_costs_nothing(llama_server, history):
    profile = Profile(api_base=llama_server.api_base, max_tokens=16, **PRICES)
    ended, services = await _refused(profile, history, "lorem ipsum " * 4000)
    assert ended.state == "error" and "context" in ended.error.message.lower()
    assert ended.cost == 0 and services.costs.cost == 0
    (turn,) = history.load_conversation(ended.runner.conversation_id).turns
    assert turn.cost == 0 and turn.prompt_tokens is None


@pytest.mark.vllm
def test_the_command_line_usage_line_of_a_refused_request_costs_nothing(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("x,y\n1,2\n2,4\n")
    with VLLMTestServer() as server:
        store = ProfileStore()
        store.load()
        store.add(Profile(name="lab", api_base=server.api_base, model=server.model, **PRICES))
        assert store.save() is None
        server.set_mode("internal_error")
        out = _run(["interpret", str(table), "--profile", "lab", "--no-history"])
        server.set_mode(None)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stdout.strip().splitlines()[-1] == (
        f"[usage] prompt 0 tokens, output 0 tokens, cost $0.00, model {server.model}"
    )


async def _stop_both_halfway(profiles: list[Profile], history) -> Comparison:
    pool = ClientPool()
    events: list = []
    cmp = Comparison(profiles, Services(pool, history=history), listener=events.append)
    task = cmp.start("Describe the sea at length.")

    def texts(pane: int) -> int:
        return sum(isinstance(e, AnswerDelta) and cmp.pane_of(e.runner) == pane for e in events)

    while not (texts(0) >= 5 and texts(1) >= 5):
        assert not task.done()
        await asyncio.sleep(0.01)
    cmp.stop_all()
    await task
    await pool.aclose()
    return cmp


@pytest.mark.vllm
async def test_a_stopped_pane_costs_the_servers_count_and_an_estimate_is_marked(history):
    with (
        VLLMTestServer(tokens_per_second=40, answer_tokens=4000) as counted,
        VLLMTestServer(tokens_per_second=40, answer_tokens=4000,
                       ignore_stream_options=True) as silent,  # fmt: skip
    ):
        profiles = [Profile(name=n, api_base=s.api_base, model=s.model, max_tokens=4000, **PRICES)
                    for n, s in (("counted", counted), ("silent", silent))]  # fmt: skip
        cmp = await _stop_both_halfway(profiles, history)
        (body,) = [r.body for r in counted.received if r.path.endswith("/chat/completions")]
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    rows = cmp.results()
    assert [r.finish for r in rows] == ["Stopped by you"] * 2
    exact, guessed = rows
    # vLLM sent its usage on every chunk: the stopped answer costs the server's count.
    assert not exact.estimated and exact.prompt_tokens == prompt_tokens(body["messages"])
    stats = cmp.panes[0].ended.stats
    assert stats.output_tokens == stats.usage.completion_tokens >= 5
    assert exact.cost == pytest.approx((exact.prompt_tokens * 1e3 + exact.output_tokens * 2e3) / 1e6)
    cells = table_cells(rows)
    assert re.fullmatch(r"\$[\d.]+", cells[0][4]) and not cells[0][3].startswith("~")
    # The other sent none: an estimate, and marked as one wherever it is shown.
    assert guessed.estimated and cells[1][4].startswith("~$") and cells[1][3].startswith("~")
    stored = history.load_comparison(cmp.comparison_id)
    assert [c.turns[0].estimated for c in stored.panes] == [False, True]


@pytest.mark.llama
async def test_a_stopped_llama_cpp_answer_keeps_the_servers_count(llama_server, history):
    pool = ClientPool()
    events: list = []
    profile = Profile(api_base=llama_server.api_base, max_tokens=400, temperature=0.0, **PRICES)
    runner = ConversationRunner(profile, Services(pool, history=history), listener=events.append)
    task = runner.start("Write a long story about a lighthouse.")
    while sum(isinstance(e, AnswerDelta) for e in events) < 5:
        await asyncio.sleep(0.01)
    runner.stop()
    ended = await task
    await pool.aclose()
    assert runner.last_request["timings_per_token"] is True
    assert ended.state == "stopped" and not ended.stats.estimated
    assert ended.stats.output_tokens >= 5
    assert format_cost(ended.cost, ended.stats.estimated).startswith("$")
