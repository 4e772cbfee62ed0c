"""The comparison window stays smooth (issue 25): no long pass of the GUI thread.

Two causes of the 0.13-0.19 s bursts of the four-pane bench, each tested here:
- a backlog of streamed events (the machine busy, the socket full) was handled in one
  step of the event loop: the pipeline now gives the loop a turn every few milliseconds;
- each answer's end re-rendered the whole conversation (170 ms for 8,000 tokens): the
  view now renders only the streamed tail, and a new question only itself.
"""

from __future__ import annotations

import asyncio
import time

from kanoa_desktop.core.ask import pipeline as P
from kanoa_desktop.core.ask.compare import Comparison, profiles_for_models
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.pool import ClientPool
from tests.servers.vllm_server import ANSWER_PIECES, VLLMTestServer


async def test_a_backlog_of_streamed_events_is_handled_in_short_turns():
    """Two panes stream far faster than their listener handles events (1 ms each, as a
    busy window would): the socket fills, and the pipeline still returns to the event loop
    at least every YIELD_AFTER_S, so a ticker task (standing in for the window's paints)
    never waits behind more than a few events."""
    seen = {"deltas": 0}

    def slow_listener(ev) -> None:
        if isinstance(ev, P.AnswerDelta):
            time.sleep(0.001)
            seen["deltas"] += 1

    with VLLMTestServer(tokens_per_second=100_000, answer_tokens=600, extra_models=("b",)) as s:
        pool = ClientPool()
        try:
            base = Profile(name="lab", api_base=s.api_base, max_tokens=700, temperature=0.0)
            cmp = Comparison(profiles_for_models(base, [s.model, "b"]), Services(pool),
                             listener=slow_listener)  # fmt: skip
            ticks: list[int] = []
            ask = asyncio.ensure_future(cmp.ask("Interpret."))
            while not ask.done():
                await asyncio.sleep(0)
                ticks.append(seen["deltas"])
            ended = await ask
        finally:
            await pool.aclose()
    assert [e.state for e in ended] == ["done", "done"]
    assert seen["deltas"] >= 1000  # both answers went through the slow listener
    between = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    # Each event costs at least 1 ms, so a pane's turn ends after at most ~9 of them;
    # two panes may each take a turn between two ticks. Without the turns: hundreds.
    assert P.YIELD_AFTER_S <= 0.008
    per_turn = int(0.008 / 0.001) + 2
    assert max(between) <= 2 * per_turn + 4, max(between)


def _signature(doc) -> list[tuple]:
    out, block = [], doc.begin()
    while block.isValid():
        if block.text().strip():
            tl = block.textList()
            out.append((block.text().strip(), tl.itemText(block) if tl else None,
                        block.blockFormat().headingLevel()))  # fmt: skip
        block = block.next()
    return out


def test_an_answer_ends_and_the_next_begins_without_rendering_the_conversation_again(qtbot):
    from kanoa_desktop.ui.answer_view import AnswerView

    view = AnswerView()
    qtbot.addWidget(view)
    view.resize(420, 500)
    text = "".join(ANSWER_PIECES[i % len(ANSWER_PIECES)] for i in range(3000))
    view.begin_answer("**You**\n\n> Interpret.\n\n")
    renders = view.renders
    for i in range(0, len(text), 37):
        view.append(text[i : i + 37])
        if i % 1100 == 0:
            view.flush()
    view.flush()
    # A chunk that starts with a heading shows as a heading while it streams (the
    # fragment's first block used to take the plain format of the block it landed in).
    streaming = _signature(view.document())
    assert ("What the figure shows", None, 2) in streaming
    view.end_answer("Stopped.", reasoning="First the axes.")
    view.begin_answer("**You**\n\n> And then?\n\n")
    view.append("## Second\n\nShort answer.")
    view.end_answer()
    assert view.renders == renders  # no full render: the end and the next question append
    # What is shown is what a full render of the same conversation shows.
    full = AnswerView()
    qtbot.addWidget(full)
    full._reasoning = list(view._reasoning)
    full.set_conversation_markdown(view._history_md)
    assert _signature(view.document()) == _signature(full.document())
    headings = [t for t, _, level in _signature(view.document()) if level == 2]
    assert "What the figure shows" in headings and "Second" in headings
