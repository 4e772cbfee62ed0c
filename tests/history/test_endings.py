"""One vocabulary for how an answer ended: finished, stopped by you, cut at max tokens,
error, interrupted. Real turns against the vLLM test server end each way; the live note,
the comparison table, ``history list`` and ``history show``, a reopened conversation and
every export say it in the same words."""

from __future__ import annotations

import asyncio
import json

import pytest

from kanoa_desktop.core.ask.compare import stored_results
from kanoa_desktop.core.ask.pipeline import (
    AnswerDelta,
    ConversationRunner,
    conversation_markdown,
    reopened,
)
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.chat import user_message
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.history import endings
from kanoa_desktop.core.history.export import conversation_document
from kanoa_desktop.core.history.export import conversation_markdown as export_md
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.reports.writer import to_html
from tests.servers.vllm_server import VLLMTestServer
from tests.test_cli import _run

pytestmark = pytest.mark.vllm

EXPECTED = {
    "finished": "Finished",
    "max_tokens": "Cut at max tokens",
    "stopped": "Stopped by you",
    "error": "Error: Server error during the answer",
    "interrupted": "Interrupted",
}


async def _answer(runner: ConversationRunner, how: str, server: VLLMTestServer):
    if how == "error":
        server.fail_next("midstream_error", after_tokens=3)
    if how != "stopped":
        return await runner.ask(f"Answer ({how})?")
    deltas: list = []
    runner.subscribe(lambda ev: isinstance(ev, AnswerDelta) and deltas.append(ev))
    task = runner.start("Answer (stopped)?")
    while len(deltas) < 3:
        await asyncio.sleep(0.01)
    runner.stop()
    return await task


def test_every_ending_reads_the_same_in_every_view_list_and_export(tmp_path):
    history = HistoryStore()  # the isolated home's: `history list` reads it too
    ids: dict[str, int] = {}

    async def scenario() -> None:
        with VLLMTestServer(tokens_per_second=60, answer_tokens=40) as server:
            pool = ClientPool()
            for how in ("finished", "max_tokens", "stopped", "error"):
                max_tokens = 3 if how == "max_tokens" else 400
                profile = Profile(name=how, api_base=server.api_base, model=server.model,
                                  max_tokens=max_tokens)  # fmt: skip
                runner = ConversationRunner(profile, Services(pool, history=history))
                ended = await _answer(runner, how, server)
                ids[how] = runner.conversation_id
                # The live view's line under the answer.
                label = EXPECTED[how]
                assert (ended.note.startswith(label) if how != "finished" else not ended.note), (
                    how, ended.note)  # fmt: skip
            await pool.aclose()

    asyncio.run(scenario())
    rec = history.begin_turn(None, user_message=user_message("Still streaming?"), model="m")
    rec.append("half an answ")
    rec.finish("interrupted")  # what the next start makes of a turn a killed app left
    ids["interrupted"] = rec.conversation_id

    listed = {
        r["id"]: r["last_ending"] for r in json.loads(_run(["history", "list", "--json"]).stdout)
    }
    table = _run(["history", "list"]).stdout
    for how, cid in ids.items():
        label = EXPECTED[how]
        conv = history.load_conversation(cid)
        (turn,) = conv.turns
        assert endings.label(turn.state, turn.finish_reason, turn.error_title or "") == label
        # History list (window tooltip and command line), the comparison table.
        assert listed[cid] == label.split(":")[0] or listed[cid] == label
        assert f" {label.split(':')[0]}" in table
        assert stored_results([conv])[0][0].finish == label
        note = endings.note(turn.state, turn.finish_reason, turn.error_title or "")
        if how == "finished":
            assert note == "" and "*Finished" not in export_md(conv)
            continue
        assert note.startswith(label)
        # A reopened conversation says how its answer ended, as the live view did.
        conversation, _ = reopened(conv)
        assert f"*{note}*" in conversation_markdown(conversation)
        # history show and the exports.
        shown = _run(["history", "show", str(cid)]).stdout
        assert f"*{label}" in shown and f"*{label}" in export_md(conv)
        assert f"<em>{label}" in to_html(conversation_document(conv))
    history.close()
