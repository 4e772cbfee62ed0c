"""A conversation with a figure, recorded while the real multimodal llama.cpp server
answers, reopened from history and continued: the restored figure is sent again, and the
server decodes and counts it."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.endpoint.chat import ChatRequest, Conversation, user_message
from kanoa_desktop.core.endpoint.client import ChatClient
from kanoa_desktop.core.endpoint.events import Finished, TextDelta
from kanoa_desktop.core.endpoint.stats import StreamStats
from kanoa_desktop.core.history.store import HistoryStore
from tests.history.conftest import figure
from tests.servers import make_mmproj

pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]


async def _ask(store, client, conversation, cid, msg, figures=()):
    request = ChatRequest("smollm2", conversation.messages_for(msg), max_tokens=12, temperature=0)
    rec = store.begin_turn(cid, user_message=msg, model="smollm2", figures=figures,
                           server_kind="llama.cpp", system_prompt=conversation.system_prompt)  # fmt: skip
    stats = StreamStats()
    final = None
    async for ev in client.stream_chat(request):
        stats.feed(ev)
        if isinstance(ev, TextDelta):
            rec.append(ev.text)
        elif isinstance(ev, Finished):
            final = ev
    rec.finish("done", final.finish_reason, stats=stats)
    conversation.add_turn(msg).assistant = final.text
    return rec, stats, request


def _without_images(messages):
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [p for p in content if p.get("type") != "image_url"]
        out.append({**m, "content": content})
    return out


async def test_a_reopened_figure_is_sent_again_and_counted_by_the_server(llama_vision_server):
    fig = figure("teal", "teal.png")
    store = HistoryStore()
    conversation = Conversation(system_prompt="You read figures.")
    async with ChatClient(llama_vision_server.api_base) as client:
        first = user_message("What colour is this?", [fig.data_url()])
        rec, stats, _ = await _ask(store, client, conversation, None, first, [fig])
        cid = rec.conversation_id

        loaded = store.load_conversation(cid)
        assert [f.hash for f in loaded.figures] and loaded.prepared_figures()[0].data == fig.data
        reopened = loaded.conversation()
        follow = user_message("And its shade?")
        # The stored conversation carries the figure back exactly as it was sent.
        assert reopened.messages_for(follow) == conversation.messages_for(follow)
        _, stats2, request2 = await _ask(store, client, reopened, cid, follow)

    # The server's count for the follow-up is the text plus one image.
    text_only = llama_vision_server.prompt_tokens(_without_images(request2.messages))
    assert stats2.prompt_tokens == text_only + make_mmproj.TOKENS_PER_IMAGE
    conv = store.load_conversation(cid)
    assert [t.index for t in conv.turns] == [0, 1]
    assert conv.turns[1].prompt_tokens == stats2.prompt_tokens and not conv.turns[1].estimated
    store.close()
