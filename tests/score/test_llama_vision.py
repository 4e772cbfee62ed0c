"""The chart suite end to end against the real multimodal llama.cpp server (SmolLM2-135M with
the tiny random vision projector, tests/servers/README.md): every chart is decoded, encoded
and counted by the server, every answer is judged and recorded. The projector is random, so
the score is near zero: this is the plumbing test, not a measure of reading."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.reports.writer import to_markdown
from kanoa_desktop.core.score import report
from kanoa_desktop.core.score.run import ScoreRun, suite_source
from tests.servers.make_mmproj import TOKENS_PER_IMAGE

pytestmark = [pytest.mark.llama, pytest.mark.timeout(280)]


async def test_the_suite_runs_end_to_end_against_the_multimodal_llama_server(
    llama_vision_server, tmp_path
):
    source = suite_source(3, 0)
    profile = Profile(name="llama.cpp", api_base=llama_vision_server.api_base,
                      max_tokens=24, temperature=0.0)  # fmt: skip
    history = HistoryStore(tmp_path / "h.sqlite3")
    pool = ClientPool()
    try:
        run = ScoreRun(source, [profile], Services(pool, history=history), concurrency=2)
        ended = await run.run()
    finally:
        await pool.aclose()
    assert ended.state == "done", [f.error for f in run.failures.values()]
    (s,) = ended.summaries
    assert (s.n, s.failed, s.model) == (3, 0, llama_vision_server.model)
    assert s.ci_low <= (s.accuracy or 0) <= s.ci_high
    for item in source.items:
        score = run.scores[(0, item.id)]
        assert score.answer.strip() and score.output_tokens
        assert score.how in ("answer line", "last number", "last label", "unparsed")
        conv = history.load_conversation(score.conversation_id)
        (turn,) = conv.turns
        # The server counted the figure: its prompt holds the image's tokens.
        assert not turn.estimated and turn.prompt_tokens > TOKENS_PER_IMAGE
        assert [f.name for f in conv.figures] == [item.figure_name]
    md = to_markdown(report.report_document(run))
    assert md.count("### ") == 3 and llama_vision_server.model in md
    history.close()
