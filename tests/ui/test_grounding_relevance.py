"""Grounding only when it helps, in the window with a real knowledge-base folder: an
unrelated passage is never sent, "no passage was relevant" is said under the answer, the
knowledge base can be left out of one question, and the prompt says what was given."""

from __future__ import annotations

from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until

GROWTH = (
    "# Growth curves\n\n"
    "Each growth curve is OD600 read every 30 minutes in LB at 37 C. The lag phase lasts "
    "about two hours; the exponential phase gives the doubling time, about 25 minutes for "
    "K12 in LB. Stationary phase starts near OD600 1.8.\n"
)
PLASMID = (
    "# Strain DH5-alpha plasmid prep\n\n"
    "Strain DH5-alpha carries the pUC19 plasmid. Miniprep with the column kit, elute in "
    "50 microlitres of water, store at -20 C. The strain is kept on ampicillin plates.\n"
)


def _prompt(server) -> str:
    return server.received[-1].body["messages"][-1]["content"]


def test_only_relevant_passages_go_and_the_sources_say_when_none_did(make_window, run, tmp_path):
    kb = tmp_path / "lab notes"
    kb.mkdir()
    (kb / "growth_curves.md").write_text(GROWTH)
    (kb / "plasmid_prep.md").write_text(PLASMID)
    with VLLMTestServer(answer_tokens=12) as server:
        w = make_window(server.api_base, server.model)
        assert not w.inputs.use_kb.isVisibleTo(w)  # no folder yet: no switch
        w.kb_panel.set_folders([kb])

        async def ask(question: str) -> None:
            w.inputs.question.setPlainText(question)
            w.interpret()
            await wait_until(lambda: w.streaming, 30, "asked")
            await wait_until(lambda: not w.streaming, 120, "answered")

        async def scenario():
            await wait_until(lambda: w.kb_panel.knowledge_base is not None
                             and not w.kb_panel.is_indexing(), 60, "indexed")  # fmt: skip
            assert w.inputs.use_kb.isVisibleTo(w) and w.inputs.use_kb.isChecked()

            await ask("What does this growth curve show about the lag phase?")
            growth_prompt = _prompt(server)
            growth_sources = [w.sources.list.item(i).text()
                              for i in range(w.sources.list.count())]  # fmt: skip

            await ask("Which songs did the band play at the concert?")
            unrelated_prompt = _prompt(server)
            unrelated_notice = w.sources._notice.text()

            w.inputs.use_kb.setChecked(False)
            await ask("And how long is the lag phase of the growth curve?")
            left_out_prompt = _prompt(server)
            left_out_notice = w.sources._notice.text()
            return (growth_prompt, growth_sources, unrelated_prompt, unrelated_notice,
                    left_out_prompt, left_out_notice)  # fmt: skip

        (growth_prompt, growth_sources, unrelated_prompt, unrelated_notice, left_out_prompt,
         left_out_notice) = run(scenario(), timeout=300)  # fmt: skip

    # The related passage goes, numbered, and the prompt says what it was given...
    assert "growth_curves.md" in growth_prompt and "lag phase lasts" in growth_prompt
    assert "Given for this question: passage [1]." in growth_prompt
    # ...the unrelated strain's passage never does, for this question or any other.
    assert "DH5" not in growth_prompt and "plasmid" not in growth_prompt.lower()
    assert any("growth_curves.md" in s for s in growth_sources)
    assert not any("plasmid" in s for s in growth_sources)
    # A question the notes know nothing about: no passage, and both the model and the user
    # are told so.
    assert "DH5" not in unrelated_prompt and "lag phase lasts" not in unrelated_prompt
    assert "No passage from the user's knowledge base was relevant" in unrelated_prompt
    assert unrelated_notice == "No passage of the knowledge base was relevant to this question."
    # Left out for one question: nothing from the notes, and the Sources say why.
    assert "lag phase lasts" not in left_out_prompt and "knowledge base" not in left_out_prompt
    assert left_out_notice == "The knowledge base was left out of this question."
