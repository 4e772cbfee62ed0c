"""A table asked about before its summary was ready still reaches the model summarised.

The window shows a table as soon as it is read and makes its summary meanwhile (issue 18);
a question asked in between carries no summary, and the pipeline makes it then."""

from __future__ import annotations

import asyncio

import pytest

from kanoa_desktop.core.ask.outbox import Outbox
from kanoa_desktop.core.ask.pipeline import ConversationRunner, TurnEnded
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.inputs.plan import table_summary
from kanoa_desktop.core.inputs.tables import load_table
from tests.servers.vllm_server import VLLMTestServer

pytestmark = pytest.mark.vllm


async def test_a_question_asked_before_the_summary_gets_it_from_the_pipeline(tmp_path):
    csv = tmp_path / "growth.csv"
    csv.write_text("day,od600\n0,0.05\n1,0.11\n2,0.32\n3,0.71\n")
    table = load_table(csv)
    ended: list[TurnEnded] = []
    with VLLMTestServer(tokens_per_second=500) as server:
        pool = ClientPool()
        try:
            inputs = Outbox(table=table, table_summary="")
            runner = ConversationRunner(
                Profile(api_base=server.api_base, model=server.model, max_tokens=8),
                Services(pool),
                listener=lambda ev: ended.append(ev) if isinstance(ev, TurnEnded) else None,
                outbox=inputs,
            )
            await runner.start("What grows?")
            await asyncio.wait_for(runner.stop_and_wait(""), 30)
        finally:
            await pool.aclose()
        chats = [r for r in server.received if r.path.endswith("/chat/completions") and r.body]
    assert ended and ended[0].error is None
    sent = str(chats[-1].body["messages"])
    expected = table_summary(table)
    assert inputs.table_summary == expected  # kept for a retry
    assert "od600" in sent and expected.splitlines()[0] in sent
