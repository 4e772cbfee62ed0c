"""A server that closes an idle kept-alive connection as the next poll reuses it is not a
stale server: the poll goes again on a fresh connection and the panel stays live.

llama-server (cpp-httplib) and vLLM (uvicorn) close idle connections after 5 s, which was
also httpx's keep-alive expiry and the GPU panel's idle poll interval: the reuse raced the
close and the panel said "Stale ... Server disconnected without sending a response". The
race cannot be timed on a real server in a test, so this loopback server closes every
connection when a second request arrives on it, deterministically (raw asyncio sockets).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

from kanoa_desktop.core.monitor.poller import MetricsPoller, PollState

BODY = (Path(__file__).resolve().parents[1] / "data" / "vllm-0.33-metrics.prom").read_bytes()


class ClosesOnReuse:
    """Answers the first request of each connection, closes it when a second one comes."""

    def __init__(self) -> None:
        self.connections = 0
        self.answered = 0
        self.closed_on_reuse = 0
        self._loop = asyncio.new_event_loop()
        self._handlers: set[asyncio.Task] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader, writer) -> None:
        self._handlers.add(asyncio.current_task())
        self.connections += 1
        first = True
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                if not first:
                    self.closed_on_reuse += 1
                    return  # the idle close, as the request arrives: no response at all
                first = False
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                    b"Connection: keep-alive\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
                )
                await writer.drain()
                self.answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._handlers.discard(asyncio.current_task())

    def __enter__(self) -> ClosesOnReuse:
        self._thread.start()
        self._ready.wait(10)
        return self

    async def _shutdown(self) -> None:
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def __exit__(self, *exc) -> None:
        # Every connection closed and every handler ended before the loop goes: nothing
        # is left for the garbage collector to warn about in a later test.
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def test_a_server_closing_a_reused_connection_keeps_the_panel_live():
    with ClosesOnReuse() as server:
        poller = MetricsPoller(f"http://127.0.0.1:{server.port}/metrics", timeout_s=2.0)
        try:
            updates = []
            for _ in range(4):  # back to back: each reuses the connection of the last
                updates.append(await poller.poll_once())
        finally:
            await poller.aclose()
    assert [u.state for u in updates] == [PollState.LIVE] * 4, [u.message for u in updates]
    assert server.closed_on_reuse >= 1, "the poller reused a kept-alive connection"
    assert server.answered == 4
