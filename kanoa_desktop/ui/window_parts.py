"""The main window's deferred parts: what its first frame does not show is built after it.

Issue 18: the window shows in two phases. Its constructor builds what the first frame
shows (inputs, answer, status bar, toolbar, GPU panel). The conversation runner, the
history database, the input loader and the hidden docks' contents are properties here,
each built on first use; :meth:`DeferredParts._finish_start` builds them after the first
paint: one worker job imports their code, builds the TLS context clients share and opens
the history database (file I/O, no GIL held for long), then each part is built in its own
turn of the event loop, so the window never stalls for long once it shows. Tests and
early user actions simply find a part built on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from functools import cached_property
from typing import Any

from PySide6.QtCore import QTimer

from kanoa_desktop.core.config.profiles import fleet_prometheus_url
from kanoa_desktop.core.lazy import LazyModule
from kanoa_desktop.ui import window_layout as layout
from kanoa_desktop.ui.preload import (
    HTTP_STACK,
    after_first_paint,
    load_modules,
    run_off_thread,
)

# Loaded after the first paint, on a worker thread.
P = LazyModule("kanoa_desktop.core.ask.pipeline")
dialogs = LazyModule("kanoa_desktop.ui.window_dialogs")
_pricing = LazyModule("kanoa_desktop.core.config.pricing")
DEFERRED = ("kanoa_desktop.core.ask.pipeline", "kanoa_desktop.core.history.store",
            "kanoa_desktop.core.endpoint.pool", "kanoa_desktop.ui.window_dialogs",
            "kanoa_desktop.ui.input_loader", "kanoa_desktop.ui.kb_panel",
            "kanoa_desktop.ui.history_panel", "kanoa_desktop.ui.usage_view",
            "kanoa_desktop.ui.fleet_panel", "kanoa_desktop.core.kb.retrieval",
            "kanoa_desktop.ui.table_view",
            # What the GPU poller and the first-run check import (in this same job, so
            # theirs find everything loaded; they start after it), with the HTTP stack.
            "kanoa_desktop.core.monitor.poller", "kanoa_desktop.ui.first_run")  # fmt: skip
HISTORY_BANNER = "History not saved"
HISTORY_RETRY_MS = 5000  # how often answers kept in memory are offered to the disk again

# What start-up builds after the first paint, one part per turn of the loop. The fleet
# panel (most users have no Prometheus) is built when its tab is first shown.
DEFERRED_PARTS = ("history", "runner", "loader", "table_view", "kb_panel", "usage_view")


def _load_deferred(open_history, nvml: bool) -> None:
    """On a worker thread: import the deferred code (the HTTP stack and NVML's binding as
    optional), build the shared TLS context, and open the history database
    (``open_history()``)."""
    load_modules(DEFERRED, (*HTTP_STACK, *(("pynvml",) if nvml else ())))
    open_history()


class DeferredParts:
    """Mixin of :class:`~kanoa_desktop.ui.main_window.MainWindow`: its deferred parts,
    built after the first paint, and the window's shutdown, which closes those built."""

    def _init_deferred(self) -> None:
        self._started = asyncio.Event()  # set at the end of start-up's second phase
        self._history_lock, self._history_store = threading.Lock(), None
        self._queued_turn: asyncio.Task | None = None  # a question asked during start-up

    async def _finish_start(self) -> None:
        """Start-up's second phase: after the first paint, one worker job imports the rest
        of the window's code and opens the history database (file I/O, migrations); then
        the first-run check starts and each deferred part is built in its own turn of the
        event loop, so the window never stalls for long once it shows."""
        await after_first_paint(self)
        await self._show_gpu_panel()
        nvml = bool(self.store.preferences.local_nvml)  # NVML's binding: 8,000 lines
        await run_off_thread(_load_deferred, self._open_history, nvml)
        if self._closing:
            return
        for part in DEFERRED_PARTS:
            await asyncio.sleep(0)
            if self._closing:
                return
            getattr(self, part)
        # Then the GPU poller's first scrape (MonitorHost waits for this) and the first-run
        # check: the panel's first relayout and the card come after the imports, not
        # during them (the GUI thread waited for the GIL at each Python call of a paint).
        self._started.set()
        await asyncio.sleep(0)
        self.spawn(dialogs.first_run_check(self))

    async def shutdown(self) -> None:
        """Cancel running work and close every connection; await before the loop ends."""
        self._closing = True
        self._status_timer.stop()
        for runner in [self._built("runner"), *self._retired]:
            if runner is not None:
                await runner.stop_and_wait("the window closed")
        await dialogs.shutdown_extras(self)  # comparison, batch, first-run probes
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.monitor.shutdown()
        if (fleet := self._built("fleet_panel")) is not None:
            await fleet.aclose()
        if (kb := self._built("kb_panel")) is not None:
            kb.shutdown()
        if (history := self._built("history")) is not None:
            self._history_retry.stop()
            history.close()
        if (clients := self._built("clients")) is not None:
            await clients.aclose()
        if self._misc_http is not None:
            await self._misc_http.aclose()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _show_gpu_panel(self) -> None:
        """The GPU panel first, on its own: built, then painted before the imports start
        (its plots paint in Python, and would wait for the GIL at each call)."""
        panel = self.gpu_panel
        painted = getattr(panel, "firstPainted", None)
        if painted is None or not panel.isVisible():
            return
        done = asyncio.get_running_loop().create_future()
        painted.connect(lambda: done.done() or done.set_result(None))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, 1.0)

    def _start_turn(self, question: str, **kwargs) -> None:
        """Start the runner's turn. One asked while start-up is still finishing (the first
        second or so) starts once it has: the GPU poller, which measures each answer's
        energy and records llama.cpp's timings, starts with the end of start-up."""
        if self._started.is_set():
            self.runner.start(question, **kwargs)
            return
        self._set_busy(True)
        runner = self.runner  # a new conversation meanwhile must not get this question

        async def when_started() -> None:
            await self._started.wait()
            await asyncio.sleep(0)  # MonitorHost makes its poller in the turn before
            if not self._closing and self.runner is runner and not runner.busy:
                runner.start(question, **kwargs)
            else:
                self._set_busy(False)

        self._queued_turn = self.spawn(when_started())

    def _busy(self) -> bool:
        runner = self._built("runner")
        queued = self._queued_turn
        return (runner is not None and runner.busy) or (queued is not None and not queued.done())

    def _cancel_queued(self) -> bool:
        """Drop a question asked during start-up and not started yet (nothing was sent or
        recorded); True when there was one."""
        queued = self._queued_turn
        if queued is None or queued.done():
            return False
        queued.cancel()  # done only once the loop runs it: forget it now
        self._queued_turn = None
        self._set_busy(False)
        return True

    def _stop_turn(self) -> None:
        if not self._cancel_queued():
            self.runner.stop()

    def _built(self, part: str) -> Any:
        """A deferred part if it was built already, else None (without building it)."""
        return self.__dict__.get(part)

    # The deferred parts: each is built on first use (and by _finish_start at the latest).

    @cached_property
    def history(self):
        return self._adopt_history(self._open_history())

    def _open_history(self):
        """The window's one HistoryStore, opened by whichever comes first: start-up's worker
        or a use before it got there (a question asked at once). Two opens of one database
        at the same moment found it locked; under this lock there is only ever one."""
        with self._history_lock:
            if self._history_store is None:
                from kanoa_desktop.core.history.store import HistoryStore

                self._history_store = HistoryStore()
            return self._history_store

    def _adopt_history(self, history):
        if history.problem is not None:
            self._say_history(history.problem)
        self.history_panel.set_store(history)  # built with the first frame, empty till now
        # The store may hear of a full or read-only disk on any write: say it, try again
        # every few seconds, and say when the answers kept in memory are written.
        loop = asyncio.get_event_loop()
        self._history_retry = QTimer(self, interval=HISTORY_RETRY_MS)
        self._history_retry.timeout.connect(history.retry)
        history.subscribe(
            lambda problem: loop.call_soon_threadsafe(self._history_problem_changed, problem)
        )
        if history.blocked:
            self._history_retry.start()
        return history

    def _history_problem_changed(self, problem) -> None:
        if self._closing:
            return
        if problem is None:
            self._history_retry.stop()
            if self.banner.isVisible() and self.banner.title.text() == HISTORY_BANNER:
                self.banner.hide()  # what it said is over: everything is written
        else:
            self._history_retry.start()
            self._say_history(problem)
        self._refresh_lists()

    def _say_history(self, problem) -> None:
        self.banner.show_message(HISTORY_BANNER, problem.situation, problem.remedy)

    @cached_property
    def clients(self):
        from kanoa_desktop.core.endpoint.pool import ClientPool

        return ClientPool(self.keys)

    @cached_property
    def services(self):
        """The window's one :class:`~kanoa_desktop.core.ask.services.Services`: what its
        conversation, comparisons and batches are given (never fished out of the window)."""
        from kanoa_desktop.core.ask.services import Services

        return Services(self.clients, self.history, _pricing.load_kanoa_pricing(),
                        lambda: self.kb_panel.knowledge_base, energy=self.monitor,
                        vision=self.store, run_cpu=self.run_cpu)  # fmt: skip

    @cached_property
    def runner(self):
        return self._new_runner()

    @cached_property
    def loader(self):
        from kanoa_desktop.ui.input_loader import InputLoader

        loader = InputLoader(self.spawn, self.run_cpu, lambda: self.profile.image_long_side)
        loader.loaded.connect(self._input_loaded)
        loader.tableRead.connect(self._table_read)
        loader.failed.connect(lambda err: self.banner.show_error(P.as_error(err), can_retry=False))
        loader.loading.connect(self._show_loading)
        return loader

    @cached_property
    def table_view(self):
        # Made here, not by the first table: the first drop's GUI work stays small.
        return self.inputs.table

    @cached_property
    def gpu_panel(self):
        panel = layout.make_gpu_panel(self)
        self.monitor.attach(panel)
        return panel

    @cached_property
    def kb_panel(self):
        panel = layout.make_kb_panel(self)
        profile = self.store.get_by_id(self._kb_profile_id) or self.profile
        panel.apply_profile([str(f) for f in profile.kb_folders or ()], profile.kb_follow_links)
        return panel

    @cached_property
    def usage_view(self):
        return layout.make_usage_view(self)

    @cached_property
    def fleet_panel(self):
        panel = layout.make_fleet_panel(self)
        panel.set_prometheus_url(fleet_prometheus_url(self.profile, self.store.preferences))
        return panel


__all__ = ["DEFERRED", "DEFERRED_PARTS", "DeferredParts"]
