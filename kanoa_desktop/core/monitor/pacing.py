"""What every poller in core.monitor shares: listeners, pause / resume / stop, the wait.

:class:`Paced` is the base of the metrics poller (one server's ``/metrics`` and the GPU)
and the fleet poller (Prometheus). Listeners run on the loop's thread, so a Qt widget on a
qasync loop may update itself from them; a listener that raises is logged and the polling
goes on. ``pause()`` stops the requests (nobody looks); ``resume()`` and ``stop()`` cut the
current wait short.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

from kanoa_desktop.core.listeners import tell

U = TypeVar("U")


class Paced(Generic[U]):
    def __init__(self, on_update: Callable[[U], None] | None = None) -> None:
        self._listeners: list[Callable[[U], None]] = [on_update] if on_update else []
        self._paused = False
        self._stopped = False
        self._wake: asyncio.Event | None = None

    def add_listener(self, callback: Callable[[U], None]) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[U], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def _tell(self, update: U) -> None:
        tell(self._listeners, update, type(self).__name__)

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """No requests (the view is hidden) until :meth:`resume`."""
        self._paused = True

    def resume(self) -> None:
        """Poll again, starting now."""
        self._paused = False
        self._poke()

    def stop(self) -> None:
        """Make ``run`` return after the current poll."""
        self._stopped = True
        if self._wake is not None:
            self._wake.set()

    def _begin(self) -> None:
        """Called by ``run`` first, on the loop."""
        self._stopped = False
        self._wake = asyncio.Event()

    def _poke(self) -> None:
        """Poll now instead of at the end of the wait (unless paused)."""
        if not self._paused and self._wake is not None:
            self._wake.set()

    async def _wait(self, delay: float | None) -> None:
        """Until ``delay`` seconds passed (None: forever) or a poke, resume or stop."""
        wake = self._wake
        if wake is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), delay)
        wake.clear()
