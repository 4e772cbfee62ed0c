"""Grounding against the real llama.cpp server (SmolLM2-135M): the knowledge-base block fits
the served context, the answer's [n] citations map back to sources, and the sources list
shows them."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.endpoint.chat import ChatRequest
from kanoa_desktop.core.endpoint.client import ChatClient, collect
from kanoa_desktop.core.endpoint.events import TextDelta, Usage
from kanoa_desktop.core.kb.budget import token_budget
from kanoa_desktop.core.kb.retrieval import MODE_RETRIEVED, ground
from kanoa_desktop.core.tokens import estimate_text_tokens
from kanoa_desktop.ui.kb_panel import SourcesView

pytestmark = pytest.mark.llama

SYSTEM = "You answer questions about the user's notes. Cite passages as [n]."
MAX_TOKENS = 48


@pytest.fixture
def big_kb(tmp_path, make_kb):
    root = tmp_path / "kb"
    root.mkdir()
    (root / "glacier.md").write_text(
        "# Glacier retreat\n\nThe Fjallsjokull glacier retreated 40 metres in 2023.\n"
    )
    for i in range(60):  # far more text than a 4k context: whole mode is impossible
        (root / f"filler{i}.md").write_text(
            "\n\n".join(f"Unrelated paragraph {j} about station logistics." for j in range(40))
        )
    kb = make_kb(root)
    kb.index()
    return kb


async def test_grounded_prompt_fits_the_real_context_and_citations_map_to_sources(
    llama_server, big_kb, qtbot
):
    question = "How far did the Fjallsjokull glacier retreat?"
    async with ChatClient(llama_server.api_base) as client:
        context_length = (await client.models())[0].context_length
        budget = token_budget(
            context_length, estimate_text_tokens(SYSTEM + question), max_tokens=MAX_TOKENS
        )
        grounding = ground(big_kb, question, budget)
        assert grounding.mode == MODE_RETRIEVED
        assert grounding.sources[0].file == "glacier.md"
        numbers = "".join(str(p.number) for p in grounding.passages if p.number < 10)
        # A 135M model cannot be relied on to cite of its own accord, so a llama.cpp
        # grammar fixes the answer's *form* ("... [n] ..."); which n it cites is the model's.
        grammar = f'root ::= "The notes say [" [{numbers}] "]: " [a-zA-Z0-9 ,.]{{1,80}}'
        request = ChatRequest(
            "smollm2",
            [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": grounding.prompt_block + "\n\n" + question},
            ],
            max_tokens=MAX_TOKENS,
            temperature=0.0,
            extra={"grammar": grammar},
        )
        events = await collect(client, request)
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.prompt_tokens + MAX_TOKENS <= context_length  # the KB never overflows
    cited = grounding.cited(answer)
    assert cited, answer
    view = SourcesView()
    qtbot.addWidget(view)
    view.set_grounding(grounding, answer)
    assert [view.list.item(i).text() for i in range(view.list.count())] == [
        f"[{p.number}]  {p.source.label()}" for p in cited
    ]
