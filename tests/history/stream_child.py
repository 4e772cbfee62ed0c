"""Child process for the crash test: stream one answer from a server into a TurnRecorder.

``python -m tests.history.stream_child API_BASE MODEL DB_PATH``. Prints ``TURN <id>`` once
the turn exists, then ``DELTA <monotonic time> <characters so far>`` per text delta and
``FLUSH <characters written>`` after each write, flushing stdout every line, so the parent
knows what had reached the database before it sends SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys
import time

from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.core.endpoint.client import ChatClient
from kanoa_desktop.core.endpoint.events import TextDelta
from kanoa_desktop.core.history.store import HistoryStore


async def main(api_base: str, model: str, db_path: str) -> None:
    store = HistoryStore(db_path)
    msg = user_message("Describe the figure.")
    rec = store.begin_turn(None, user_message=msg, model=model)
    print(f"TURN {rec.turn_id}", flush=True)
    received = 0
    async with ChatClient(api_base) as client:
        async for ev in client.stream_chat(ChatRequest(model, [msg], max_tokens=4000)):
            if isinstance(ev, TextDelta):
                received += len(ev.text)
                before = rec.writes
                rec.append(ev.text)
                print(f"DELTA {time.monotonic():.6f} {received}", flush=True)
                if rec.writes != before:
                    print(f"FLUSH {received}", flush=True)
    rec.finish("done")
    print("DONE", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
