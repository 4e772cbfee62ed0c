"""The stream's deadline watch (core/endpoint/client._Watch): one timer for all reads.

A per-read ``asyncio.timeout`` started and killed a Qt timer per token on qasync; the watch
keeps one timer, reads the deadline again when it fires, and turns only its own cancel
into a passed deadline (Stop stays a cancel). Pure asyncio: nothing to fake."""

from __future__ import annotations

import asyncio
import time

import pytest

from kanoa_desktop.core.endpoint.client import _DeadlinePassed, _Watch


class CountingLoop:
    """Counts the timers the watch asks the running loop for."""

    def __init__(self, monkeypatch):
        loop = asyncio.get_running_loop()
        self.calls = 0
        real = loop.call_later

        def call_later(delay, cb, *args, **kw):
            self.calls += getattr(cb, "__func__", None) is _Watch._fire  # not asyncio.sleep's
            return real(delay, cb, *args, **kw)

        monkeypatch.setattr(loop, "call_later", call_later)


async def test_tokens_that_move_the_deadline_cost_no_new_timer(monkeypatch):
    timers = CountingLoop(monkeypatch)
    last = time.monotonic()
    watch = _Watch(lambda: last + 0.3)
    for _ in range(200):  # 200 reads of 5 ms: 1 s in all, each well inside 0.3 s
        await watch.read(asyncio.sleep(0.005))
        last = time.monotonic()
    watch.close()
    # One at the first read, and one per firing in which tokens had moved it on (~1 s / 0.3 s).
    assert 1 <= timers.calls <= 8, timers.calls


async def test_a_read_past_the_deadline_is_a_passed_deadline():
    start = time.monotonic()
    watch = _Watch(lambda: start + 0.05)
    with pytest.raises(_DeadlinePassed):
        await watch.read(asyncio.sleep(5))
    # The task is not left cancelled: it goes on awaiting.
    await asyncio.sleep(0.01)
    with pytest.raises(_DeadlinePassed):  # already past: refused before reading
        await watch.read(asyncio.sleep(0))
    watch.close()


async def test_a_cancel_from_elsewhere_stays_a_cancel():
    watch = _Watch(lambda: time.monotonic() + 60)

    async def reader():
        await watch.read(asyncio.sleep(5))

    task = asyncio.ensure_future(reader())
    await asyncio.sleep(0.05)
    task.cancel()  # the user pressed Stop
    with pytest.raises(asyncio.CancelledError):
        await task
    watch.close()
