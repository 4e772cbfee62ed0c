"""Score runs against the vLLM test server: every item through the real question path, each a
recorded question; Stop and a server that dies keep what was scored and the run continues;
profiles are compared on the same items.

The server's intelligence is the one thing faked (no vision model runs here): its answers
come from tests/servers/score_oracle.py, which is handed the truths and answers right with
a known, seeded probability.
"""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.history.scores import ScoreRecords
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.score import question as Q
from kanoa_desktop.core.score import report
from kanoa_desktop.core.score.run import (
    HALT_AFTER,
    ItemFailed,
    ItemScored,
    RunNotice,
    ScoreEnded,
    ScoreError,
    ScoreRun,
    key_source,
    suite_source,
)
from tests.servers.score_oracle import ScoreOracle
from tests.servers.vllm_server import VLLMTestServer


@pytest.fixture
async def pool():
    p = ClientPool()
    yield p
    await p.aclose()


@pytest.fixture
def history(tmp_path):
    store = HistoryStore(tmp_path / "history.sqlite3")
    yield store
    store.close()


def _profile(server: VLLMTestServer, name: str = "lab", **kw) -> Profile:
    return Profile(name=name, api_base=server.api_base, temperature=0.0, **kw)


async def test_a_suite_is_scored_through_the_question_path_and_each_item_is_recorded(pool, history):
    source = suite_source(12, 1)
    oracle = ScoreOracle(source.items, 0.7, seed=3)
    events = []
    with VLLMTestServer(tokens_per_second=3000, answer_for=oracle) as server:
        run = ScoreRun(source, [_profile(server)], Services(pool, history=history),
                       concurrency=4, listener=events.append)  # fmt: skip
        ended = await run.run()
        chats = [r.body for r in server.received if r.path.endswith("/chat/completions")]

    assert oracle.unmatched == [] and sorted(oracle.asked) == sorted(i.id for i in source.items)
    assert ended.state == "done" and isinstance(events[-1], ScoreEnded)
    assert [type(e) for e in events[:-1]] == [ItemScored] * 12
    (s,) = ended.summaries
    assert (s.n, s.total, s.correct, s.failed, s.unparsed) == (12, 12, oracle.right(), 0, 0)
    assert s.ci_low < s.accuracy < s.ci_high and s.mean_rel_error is not None
    assert s.tokens_per_s and s.cost > 0 and s.cost_per_correct == s.cost / s.correct
    assert sum(v.n for v in s.by_template.values()) == 12

    # What went to the server: one image, the question and the ANSWER instruction, the
    # scoring system prompt; every request alone in its conversation.
    assert len(chats) == 12
    for body in chats:
        system, user = body["messages"]
        assert system == {"role": "system", "content": Q.SYSTEM_PROMPT}
        kinds = [p["type"] for p in user["content"]]
        assert kinds.count("image_url") == 1
        assert "ANSWER: <value>" in user["content"][-1]["text"]
        assert body["temperature"] == 0.0

    # Each item is a question of its own in the history, left out of the list.
    assert history.list_conversations() == []
    records = ScoreRecords(history)
    (listed,) = records.list_runs()
    assert (listed.state, listed.scored, listed.id) == ("done", 12, run.run_id)
    stored = records.load(run.run_id)
    assert stored.spec["source"] == {**source.spec}
    for item in source.items:
        score = run.scores[(0, item.id)]
        assert stored.results[(0, item.id)]["correct"] == score.correct
        conv = history.load_conversation(score.conversation_id)
        (turn,) = conv.turns
        assert turn.answer == score.answer and turn.state == "done"
        assert turn.question == Q.question_text(item)
        assert [f.name for f in conv.figures] == [item.figure_name]
        assert turn.output_tokens == score.output_tokens


async def test_stop_keeps_what_was_scored_and_the_same_run_continues_without_asking_twice(
    pool, history
):
    source = suite_source(10, 2)
    oracle = ScoreOracle(source.items, 0.8, seed=1)
    notices = []
    with VLLMTestServer(tokens_per_second=40, answer_for=oracle) as server:
        profile = _profile(server)
        run = ScoreRun(source, [profile], Services(pool, history=history), concurrency=2)
        task = run.start()
        while len(run.scores) < 3:
            assert not task.done()
            await asyncio.sleep(0.02)
        run.stop()
        ended = await task
        kept = dict(run.scores)
        assert ended.state == "stopped" and 3 <= len(kept) < 10
        # What was in flight was stopped (aborted on the server), not scored.
        assert server.wait_for(lambda s: s.running == 0, timeout=10)
        assert len(oracle.asked) >= len(kept)
        stored = ScoreRecords(history).load(run.run_id)
        assert {k for k, v in stored.results.items() if v["state"] == "scored"} == set(kept)
        asked_before = len(oracle.asked)

        server.tokens_per_second = 3000
        again = ScoreRun(source, [profile], Services(pool, history=history), concurrency=2,
                         listener=notices.append)  # fmt: skip
        ended2 = await again.run()

    assert again.run_id == run.run_id and again.continued == len(kept)
    assert ended2.state == "done" and len(again.scores) == 10
    assert all(again.scores[k] == v for k, v in kept.items())  # kept, not asked again
    asked_again = oracle.asked[asked_before:]
    assert not {k[1] for k in kept} & set(asked_again)
    assert any("Continuing" in n.message for n in notices if isinstance(n, RunNotice))
    assert ended2.summaries[0].correct == oracle.right()
    assert ScoreRecords(history).load(run.run_id).state == "done"


async def test_a_server_that_dies_halfway_keeps_what_was_scored_and_the_run_continues(
    pool, history
):
    source = suite_source(12, 4)
    oracle = ScoreOracle(source.items, 0.6, seed=2)
    events = []
    server = VLLMTestServer(tokens_per_second=60, answer_for=oracle).start()
    port = server.port
    try:
        profile = _profile(server)
        run = ScoreRun(source, [profile], Services(pool, history=history), concurrency=2,
                       listener=events.append)  # fmt: skip
        task = run.start()
        while len(run.scores) < 4:
            await asyncio.sleep(0.02)
        server.stop()  # the server process dies: connections drop, the port refuses
        ended = await asyncio.wait_for(task, 60)
    finally:
        server.stop()
    scored = dict(run.scores)
    assert ended.state == "incomplete" and 4 <= len(scored) < 12
    (s,) = ended.summaries
    assert s.n == len(scored) and s.failed >= HALT_AFTER and "run again to continue" in s.halted
    assert len([e for e in events if isinstance(e, ItemFailed)]) == s.failed
    # Items were not all asked: the profile stopped after HALT_AFTER failures in a row.
    assert s.n + s.failed < 12
    stored = ScoreRecords(history).load(run.run_id)
    assert {k for k, v in stored.results.items() if v["state"] == "scored"} == set(scored)
    assert stored.state == "incomplete"

    with VLLMTestServer(tokens_per_second=3000, answer_for=oracle, port=port) as back:
        again = ScoreRun(source, [_profile(back)], Services(pool, history=history), concurrency=2)
        ended2 = await again.run()
    assert again.run_id == run.run_id and again.continued == len(scored)
    assert ended2.state == "done" and ended2.summaries[0].failed == 0
    assert ended2.summaries[0].correct == oracle.right()
    assert ScoreRecords(history).load(run.run_id).state == "done"


async def test_two_profiles_are_compared_on_the_same_items_with_mcnemar(pool):
    source = suite_source(30, 6)
    figures = {i.id: Q.prepare(i, 1024) for i in source.items}
    good = ScoreOracle(source.items, 0.95, seed=1, figures=figures)
    poor = ScoreOracle(source.items, 0.25, seed=2, figures=figures)
    prepared = []
    real_prepare = Q.prepare

    def counting(item, long_side):
        prepared.append(item.id)
        return real_prepare(item, long_side)

    Q.prepare = counting
    try:
        with (
            VLLMTestServer(tokens_per_second=3000, answer_for=good) as a,
            VLLMTestServer(tokens_per_second=3000, answer_for=poor) as b,
        ):
            run = ScoreRun(source, [_profile(a, "big"), _profile(b, "small")], Services(pool),
                           concurrency=6)  # fmt: skip
            ended = await run.run()
    finally:
        Q.prepare = real_prepare
    assert sorted(prepared) == sorted(i.id for i in source.items)  # once per item, not per profile
    big, small = ended.summaries
    assert good.disagreements(run, 0) + poor.disagreements(run, 1) == []
    assert (big.correct, small.correct) == (good.right(), poor.right())
    (p,) = ended.paired
    assert p.n == 30 and p.better == "big" and p.p < 0.001
    both = sum(1 for i in source.items if good.is_right(i) and poor.is_right(i))
    assert p.both == both
    data = report.to_json(run)
    assert [r["profile"] for r in data["results"]] == ["big", "small"]
    assert data["paired"][0]["a"] == "big" and data["paired"][0]["b"] == "small"
    assert data["paired"][0]["mcnemar_p"] == p.p


async def test_a_key_is_scored_and_a_figure_that_cannot_be_read_fails_alone(pool, tmp_path):
    folder = tmp_path / "lab"
    folder.mkdir()
    for n, colour in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200)]):
        buf = io.BytesIO()
        Image.new("RGB", (80, 60), colour).save(buf, "PNG")
        (folder / f"fig{n}.png").write_bytes(buf.getvalue())
    (folder / "broken.png").write_bytes(b"not a png at all")
    (folder / "key.csv").write_text(
        "file,question,answer,tolerance\n"
        "fig0.png,Peak height?,40,0.01\n"
        "fig1.png,Which colour?,Green,\n"
        "broken.png,What?,3,\n"
        "fig2.png,Is it blue?,yes,\n",
        encoding="utf-8",
    )
    source = await asyncio.to_thread(key_source, folder / "key.csv")
    readable = [i for i in source.items if i.source != "broken.png"]
    oracle = ScoreOracle(readable, 1.0, seed=0)
    with VLLMTestServer(tokens_per_second=3000, answer_for=oracle) as server:
        run = ScoreRun(source, [_profile(server)], Services(pool), concurrency=2)
        ended = await run.run()
    (s,) = ended.summaries
    assert (s.n, s.correct, s.failed, s.halted) == (3, 3, 1, "")
    (failure,) = run.failures.values()
    assert failure.item == "row 4" and "broken.png" in failure.error
    assert ended.state == "incomplete"


def test_a_run_needs_one_to_four_profiles():
    source = suite_source(2, 0)
    for profiles in ([], [Profile(name=str(i)) for i in range(5)]):
        with pytest.raises(ScoreError, match="profile"):
            ScoreRun(source, profiles, Services(ClientPool()))
