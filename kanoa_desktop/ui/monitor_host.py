"""The GPU panel's poller: which server it watches, and the energy span of each answer.

:class:`MonitorHost` gives the panel a new :class:`~kanoa_desktop.core.monitor.poller.
MetricsPoller` when the profile or a preference changes (at once, no restart), retires the
old one without cutting a scrape off under a live socket, and adapts the poller to the
services' :class:`~kanoa_desktop.core.ask.services.EnergySpans` protocol.

Nothing is polled before the panel is first shown: the poller's module (httpx, the
Prometheus parser) is imported on a worker thread after that, so the window shows without
waiting for it. The user's poll interval applies while an answer streams; between answers
the poller waits :data:`IDLE_POLL_S`, and :data:`BACKGROUND_POLL_S` while the window is
minimised; an answer's start and end poll at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

IDLE_POLL_S = 5.0  # between answers: the numbers barely move, and each poll costs CPU
BACKGROUND_POLL_S = 30.0  # the window is minimised: nobody reads them


class MonitorHost:
    """``ready``, when given, is awaited before the poller's code loads and the first
    scrape: the window passes the end of its start-up, so the first scrape and the panel's
    first relayout do not overlap start-up's own imports (issue 18)."""

    def __init__(
        self,
        panel: Any,
        spawn: Callable[[Any], Any],
        ready: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.panel: Any = None
        self._spawn = spawn
        self._ready = ready
        self._key: tuple | None = None
        self._wanted: tuple[Any, Any] | None = None  # (profile, prefs) of the last watch()
        self._background = False
        self._live = False
        self._first_painted = None
        if panel is not None:
            self.attach(panel)

    def attach(self, panel: Any) -> None:
        """The panel to feed. The window builds its GPU panel after its own first paint, so
        the host may get it late; what was asked of ``watch`` meanwhile applies then."""
        self.panel = panel
        self._first_painted = getattr(panel, "firstPainted", None)
        background = getattr(panel, "backgroundChanged", None)
        if background is not None:
            background.connect(self.set_background)
        first_shown = getattr(panel, "firstShown", None)
        if first_shown is None:
            self._live = True
            if self._wanted is not None:
                self.watch(*self._wanted)
        elif panel.isVisible():
            self.start()  # on screen already: its poller after its first paint
        else:
            first_shown.connect(self.start)

    @property
    def poller(self):
        return getattr(self.panel, "poller", None)

    def watch(self, profile: Any, prefs: Any) -> None:
        """Poll ``profile``'s metrics with ``prefs``' interval and NVML switch (no-op when
        nothing changed)."""
        self._wanted = (profile, prefs)
        if not hasattr(self.panel, "set_poller"):
            return
        if not self._live:
            return  # start() makes it once the panel is shown
        key = (
            profile.effective_metrics_url,
            profile.dcgm_url or None,
            float(prefs.gpu_poll_interval_s),
            bool(prefs.local_nvml),
        )
        if key == self._key and self.poller is not None:
            return
        self._key = key
        from kanoa_desktop.core.monitor.poller import MetricsPoller

        poller = MetricsPoller(
            profile.effective_metrics_url,
            interval_s=prefs.gpu_poll_interval_s,
            idle_interval_s=self._idle_interval(),
            read_gpus=prefs.local_nvml,
            dcgm_url=profile.dcgm_url,
        )
        self.replace(poller)

    def start(self) -> None:
        """The panel is shown: import the poller off the GUI thread, then watch."""
        if self._live:
            return
        self._live = True  # a watch() from now on makes its poller at once
        if self._first_painted is not None:
            self._first_painted.connect(lambda: self._spawn(self._load_then_watch()))
        else:
            self._spawn(self._load_then_watch())

    async def _load_then_watch(self) -> None:
        from kanoa_desktop.ui.preload import HTTP_STACK, import_off_thread

        if self._ready is not None:
            await self._ready()
        # NVML's binding (an 8,000-line module) too: imported on the poller's own thread it
        # ran beside start-up's other imports, and two importers starved the GUI thread.
        nvml = ("pynvml",) if self._wanted is not None and self._wanted[1].local_nvml else ()
        await import_off_thread("kanoa_desktop.core.monitor.poller", *HTTP_STACK, *nvml)
        if self._wanted is not None and self.poller is None:
            self.watch(*self._wanted)

    def _idle_interval(self) -> float:
        wanted = self._wanted[1].gpu_poll_interval_s if self._wanted is not None else 1.0
        return max(float(wanted), BACKGROUND_POLL_S if self._background else IDLE_POLL_S)

    def set_background(self, background: bool) -> None:
        """The window was minimised (poll rarely) or brought back (poll now, then as usual)."""
        self._background = bool(background)
        poller = self.poller
        if poller is None:
            return
        poller.idle_interval_s = self._idle_interval()
        if not background and not poller.paused:
            poller.resume()

    def replace(self, poller) -> None:
        """Give the panel a new poller; the old one's task is awaited before it closes."""
        panel = self.panel
        old, old_task = panel.poller, getattr(panel, "_task", None)
        panel.set_poller(poller)
        if old is not None:
            self._spawn(retire_poller(old, old_task))

    async def shutdown(self) -> None:
        poller = self.poller
        if poller is None:
            return
        task = getattr(self.panel, "_task", None)
        self.panel.set_poller(None)
        await retire_poller(poller, task)

    # -- EnergySpans ------------------------------------------------------------------------

    def begin(self) -> Any:
        poller = self.poller
        if poller is not None:
            poller.mark_request("start")
        return poller

    def end(self, handle: Any) -> float | None:
        """Close the answer's span; its energy in watt-hours when NVML measured power."""
        poller = handle
        if poller is None:
            return None
        span = poller.mark_request("end")
        if poller is self.poller and not poller.paused:
            poller.resume()  # scrape now: the panel shows the answer's end at once
        return span.energy_wh if span is not None else None


async def retire_poller(poller, task) -> None:
    # Let the current scrape finish (bounded by the poller's own timeout) rather than
    # cancel it mid-connect, which can leave a socket behind.
    poller.stop()
    if task is not None and not task.done():
        try:
            await asyncio.wait_for(asyncio.shield(task), poller.timeout_s + 1.0)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        except Exception:  # noqa: BLE001 - the poll's own failure is not ours to report
            pass
    with contextlib.suppress(Exception):
        await poller.aclose()


__all__ = ["MonitorHost", "retire_poller"]
