"""What the server is doing while an answer is awaited or streams, and whether it is there.

A :class:`ServerWatch` runs beside one streamed request (the pipeline starts it with the
request and ends it with the stream). It is fed the stream's events and reports a
:class:`Activity` at least once a second while there is something to tell:

- the server reading the prompt, ``processed`` of ``total`` tokens, where it says so
  (llama.cpp streams ``prompt_progress`` when asked);
- the request's place in the server's queue, where it publishes one (vLLM's ``/metrics``:
  ``vllm:num_requests_waiting`` and ``_running``);
- otherwise how long the question has waited, or how long since the last token.

It also follows the connection: after :data:`SILENCE_S` seconds without a token it asks
whether anything still listens at the server's address (every :data:`LISTEN_EVERY_S`); when
the connection is refused the server is gone, and :meth:`ServerWatch.run` returns the
error that ends the turn at once, instead of the answer staying "Streaming" until a read
or progress deadline. A slow server (a timeout on that check) is never taken for a dead one.

Plain asyncio; the only requests are small GETs beside the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.events import (
    FirstToken,
    PromptProgress,
    ReasoningDelta,
    RequestSent,
    TextDelta,
)

#: How often a waiting or silent stream is reported (the elapsed time moves every second).
TICK_S = 1.0
#: Seconds without a token after which the watch checks that the server is still there.
SILENCE_S = 2.0
#: How often it checks while the silence lasts.
LISTEN_EVERY_S = 1.0
#: How often vLLM's queue is read while the question waits for its first token.
QUEUE_EVERY_S = 1.0


@dataclass(frozen=True)
class Activity:
    """What the server is doing for one request, for a status line.

    ``phase``: "waiting" (sent, nothing known yet), "queued" (vLLM: requests ahead),
    "prompt" (reading the prompt: ``processed`` of ``total``), "streaming" (tokens come)
    or "silent" (tokens stopped for ``silent_s`` seconds). ``elapsed_s`` counts from
    sending the request."""

    phase: str
    elapsed_s: float
    processed: int | None = None
    total: int | None = None
    cached: int | None = None
    waiting: int | None = None  # requests waiting in the server's queue (vLLM)
    running: int | None = None  # requests the server is answering (vLLM)
    silent_s: float | None = None

    def text(self) -> str:
        """One line: "Reading the prompt: 1,234 of 4,096 tokens (30 %) · 12 s"."""
        secs = _seconds(self.elapsed_s)
        if self.phase == "prompt" and self.total:
            pct = 100 * (self.processed or 0) / self.total
            cached = f", {self.cached:,} cached" if self.cached else ""
            return (
                f"Reading the prompt: {self.processed or 0:,} of {self.total:,} tokens "
                f"({pct:.0f} %{cached}) · {secs}"
            )
        if self.phase == "queued":
            ahead = self.waiting or 0
            busy = f", {self.running} answering" if self.running else ""
            noun = "request" if ahead == 1 else "requests"
            return f"Queued on the server: {ahead} {noun} waiting{busy} · {secs}"
        if self.phase == "silent" and self.silent_s is not None:
            return f"No new token for {_seconds(self.silent_s)} · {secs}"
        if self.phase == "streaming":
            return f"Streaming · {secs}"
        return f"Waiting for the first token · {secs}"


def _seconds(s: float) -> str:
    s = max(0, int(s))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


def server_gone(api_base: str, partial_text: str) -> E.KanoaError:
    """The error of a server that stopped listening while it answered."""
    return E.ConnectionRefused(
        f"The server at {api_base} stopped: nothing listens there any more.",
        ("The text received so far is kept. " if partial_text else "")
        + "Start the server again, then Retry.",
        partial_text=partial_text,
    )


class ServerWatch:
    """Watches one streamed request; see the module docstring.

    ``client`` is the request's :class:`~kanoa_desktop.core.endpoint.client.ChatClient`,
    ``report(activity)`` is called on the loop, ``partial()`` gives the text so far."""

    def __init__(
        self,
        client: Any,
        report: Callable[[Activity], None],
        partial: Callable[[], str] = str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.report = report
        self.partial = partial
        self.clock = clock
        self.t_sent: float | None = None
        self.last_token: float | None = None
        self.progress: PromptProgress | None = None
        self.queue: tuple[int | None, int | None] | None = None
        self._last_check = 0.0
        self._last_queue = 0.0
        self._reported = ""  # the phase last reported
        # llama.cpp tells its progress in the stream; any other server's /metrics is read
        # until it shows it has no vLLM queue figures.
        self._queue_readable = not getattr(client, "is_llamacpp", False)

    def feed(self, ev: Any) -> None:
        """The stream's events, in order (cheap: a few assignments)."""
        if isinstance(ev, TextDelta | ReasoningDelta | FirstToken):
            self.last_token = ev.t
        elif isinstance(ev, PromptProgress):
            self.progress = ev
        elif isinstance(ev, RequestSent):
            self.t_sent = ev.t

    def activity(self, now: float) -> Activity | None:
        """What to show now; None before the request was sent."""
        if self.t_sent is None:
            return None
        elapsed = now - self.t_sent
        if self.last_token is not None:
            silent = now - self.last_token
            if silent >= SILENCE_S:
                return Activity("silent", elapsed, silent_s=silent)
            return Activity("streaming", elapsed)
        p = self.progress
        if p is not None:
            return Activity("prompt", elapsed, p.processed, p.total, p.cached)
        if self.queue is not None and self.queue[0]:
            return Activity("queued", elapsed, waiting=self.queue[0], running=self.queue[1])
        return Activity("waiting", elapsed)

    async def run(self) -> E.KanoaError:
        """Report until cancelled; return (ending the watch) the error of a server that
        stopped listening. The caller cancels it when the stream ends."""
        while True:
            await asyncio.sleep(TICK_S)
            now = self.clock()
            if self.t_sent is None:
                continue
            if self.last_token is None and self.progress is None:
                await self._read_queue(now)
                now = self.clock()
            current = self.activity(now)
            # Streaming reports itself through its tokens: said once, after a silence.
            if current is not None and (current.phase != "streaming" or self._reported == "silent"):
                self.report(current)
                self._reported = current.phase
            silent_since = self.last_token if self.last_token is not None else self.t_sent
            if silent_since is not None and now - silent_since >= SILENCE_S:
                if now - self._last_check >= LISTEN_EVERY_S:
                    self._last_check = now
                    if await self.client.listening() is False:
                        return server_gone(self.client.api_base, self.partial())

    async def _read_queue(self, now: float) -> None:
        if not self._queue_readable or now - self._last_queue < QUEUE_EVERY_S:
            return
        self._last_queue = now
        body = await self.client.metrics_text()
        queue: tuple[int | None, int | None] = (None, None)
        if body is not None:
            with contextlib.suppress(Exception):  # a page we cannot read says nothing
                queue = await asyncio.to_thread(vllm_queue, body)
        if queue == (None, None):
            self._queue_readable = False  # no such page or figures here: stop asking
            return
        self.queue = queue


def vllm_queue(body: str) -> tuple[int | None, int | None]:
    """``(waiting, running)`` requests from a vLLM ``/metrics`` page (summed over models
    and engines); None where the page has no such figure."""
    from kanoa_desktop.core.monitor.metrics import parse_scrape

    scrape = parse_scrape(body, 0.0, keep_all=True)

    def total(name: str) -> int | None:
        values = scrape.values(name)
        return int(sum(v for _, v in values)) if values else None

    return total("vllm:num_requests_waiting"), total("vllm:num_requests_running")


__all__ = ["Activity", "ServerWatch", "server_gone", "vllm_queue"]
