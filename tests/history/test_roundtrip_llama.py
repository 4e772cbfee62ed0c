"""A real conversation with the llama.cpp server, recorded while it streams, read back."""

from __future__ import annotations

import re

import pytest

from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.chat import ChatRequest, Conversation, user_message
from kanoa_desktop.core.endpoint.client import ChatClient
from kanoa_desktop.core.endpoint.events import Finished, ReasoningDelta, TextDelta
from kanoa_desktop.core.endpoint.stats import StreamStats
from kanoa_desktop.core.history.export import conversation_markdown
from kanoa_desktop.core.history.store import HistoryStore

pytestmark = pytest.mark.llama


async def _ask(store, client, conversation, conversation_id, question, profile):
    msg = user_message(question)
    request = ChatRequest("smollm2", conversation.messages_for(msg), max_tokens=40, temperature=0)
    rec = store.begin_turn(
        conversation_id,
        user_message=msg,
        model="smollm2",
        profile=profile,
        server_kind="llama.cpp",
        system_prompt=conversation.system_prompt,
    )
    stats = StreamStats()
    final = None
    async for ev in client.stream_chat(request):
        stats.feed(ev)
        if isinstance(ev, TextDelta):
            rec.append(ev.text)
        elif isinstance(ev, ReasoningDelta):
            rec.append_reasoning(ev.text)
        elif isinstance(ev, Finished):
            final = ev
    rec.finish("done", stats=stats)
    conversation.add_turn(msg).assistant = final.text
    return rec, stats, final


async def test_a_streamed_llama_conversation_round_trips_and_continues(llama_server):
    profile = Profile(name="llama", api_base=llama_server.api_base, temperature=0.0)
    store = HistoryStore()
    conversation = Conversation(system_prompt="You are a concise lab assistant.")
    async with ChatClient(llama_server.api_base) as client:
        rec, stats, final = await _ask(
            store, client, conversation, None, "Name one colour of the sky.", profile
        )
        loaded = store.load_conversation(rec.conversation_id)
        # Reopened, the stored conversation carries the follow-up exactly as the live one.
        follow = user_message("And at night?")
        assert loaded.conversation().messages_for(follow) == conversation.messages_for(follow)
        rec2, stats2, final2 = await _ask(
            store, client, loaded.conversation(), rec.conversation_id, "And at night?", profile
        )

    conv = store.load_conversation(rec.conversation_id)
    assert [t.index for t in conv.turns] == [0, 1]
    for turn, s, f in ((conv.turns[0], stats, final), (conv.turns[1], stats2, final2)):
        assert turn.answer == f.text and turn.answer.strip()
        assert turn.state == "done" and turn.finish_reason == f.finish_reason
        assert (turn.prompt_tokens, turn.output_tokens) == (s.prompt_tokens, s.output_tokens)
        assert turn.estimated is False  # llama.cpp sent its own usage
        assert turn.ttft_s == s.ttft_s and turn.cost == s.cost
    assert conv.turns[1].prompt_tokens > conv.turns[0].prompt_tokens  # it carried turn one
    assert (conv.model, conv.server_kind, conv.endpoint) == (
        "smollm2",
        "llama.cpp",
        llama_server.api_base,
    )
    assert conv.system_prompt == "You are a concise lab assistant."
    assert conv.turns[0].user_message == conversation.turns[0].user
    assert (
        store.list_conversations(search=re.findall(r"\w+", final.text)[0])[0].id
        == rec.conversation_id
    )
    assert final2.text.strip() in conversation_markdown(conv)
    store.close()
