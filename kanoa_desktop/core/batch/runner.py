"""One question over a whole folder of figures and tables, resumable by content, no Qt.

A :class:`Batch` asks one profile the same context/focus/question :class:`Template` about
every item of a folder or a list of files, a few at a time (``concurrency``, default 2),
each item in its own :class:`~kanoa_desktop.core.ask.pipeline.ConversationRunner`
(a fresh conversation) on one shared :class:`~kanoa_desktop.core.ask.services.Services`.

What an item is: the one input plan (core/inputs/plan.py) with ``each=True``: a figure; a
table (each sheet of a workbook with data, or ``sheet``); each page of a PDF (``pages``
narrows it: a batch cannot drag crop rectangles); each figure of a notebook with its
cell's code as context; a file that cannot be opened is an item that fails with the
loader's message, without asking the server.

Resumable by content: each answer is kept in a :class:`~kanoa_desktop.core.batch.store.
BatchStore` the moment it arrives, under the batch (its sources) and the item's
fingerprint (core/batch/plan.py: its file's bytes and everything that shapes its
request). Running the batch again keeps the answers whose fingerprint is unchanged
(``kept``), asks items never answered (``new``) and those whose file or request changed
(``changed``), and leaves out of the report the items no longer planned (``removed``):
:attr:`Batch.rerun`. A failed item keeps its failure until :meth:`Batch.retry_failed`
(or until its file changes). An item stopped by a cancel has no answer and is asked next
time.

Events (to ``listener``): :class:`ItemStarted`, :class:`ItemFinished`, :class:`Progress`
(counts and time left) after each change, and :class:`BatchEnded` once per :meth:`run`.
Reports: core/batch/report.py.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanoa_desktop.core.ask.pipeline import ConversationRunner, internal_error
from kanoa_desktop.core.ask.prompts import DEFAULT_QUESTION_FIGURE, DEFAULT_QUESTION_TABLE
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.batch.plan import (
    BatchError,
    BatchItem,
    Template,
    batch_key,
    fingerprint,
    load_item,
)
from kanoa_desktop.core.batch.store import BatchStore, ItemResult
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.history.records import safe_endpoint
from kanoa_desktop.core.inputs.plan import PlanOptions, file_digest, plan
from kanoa_desktop.core.inputs.tables import DEFAULT_TABLE_TOKEN_BUDGET
from kanoa_desktop.core.listeners import tell

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 2
MAX_CONCURRENCY = 16


@dataclass(frozen=True)
class Rerun:
    """How this run's plan compares with what the batch kept (see the module docstring)."""

    kept: int = 0
    new: int = 0
    changed: int = 0
    removed: int = 0

    def line(self, asked: int | None = None) -> str:
        """``3 kept, 1 new, 1 changed, 1 removed; asked 2`` (zero counts left out)."""
        bits = [f"{n} {word}" for n, word in ((self.kept, "kept"), (self.new, "new"),
                (self.changed, "changed"), (self.removed, "removed")) if n]  # fmt: skip
        text = ", ".join(bits) or "nothing planned"
        return text if asked is None else f"{text}; asked {asked}"


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class Progress:
    """Where the batch stands. ``eta_s`` None until an item finished in this run."""

    total: int
    done: int
    failed: int
    running: int
    paused: bool
    elapsed_s: float  # of this run, pauses excluded
    eta_s: float | None

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def remaining(self) -> int:
        return self.total - self.finished

    def line(self) -> str:
        """One line for a progress bar or stderr: ``12/40 done, 1 failed, 2 running,
        about 3 min left``."""
        bits = [f"{self.finished}/{self.total} finished"]
        if self.failed:
            bits.append(f"{self.failed} failed")
        if self.running:
            bits.append(f"{self.running} running")
        if self.paused:
            bits.append("paused")
        if self.eta_s is not None and self.remaining:
            bits.append(f"about {format_duration(self.eta_s)} left")
        return ", ".join(bits)


@dataclass(frozen=True)
class ItemStarted:
    batch: Batch
    item: BatchItem


@dataclass(frozen=True)
class ItemFinished:
    batch: Batch
    item: BatchItem
    result: ItemResult


@dataclass(frozen=True)
class BatchEnded:
    """:meth:`Batch.run` is over: ``state`` "done" (every item has a result) or
    "cancelled" (some have none yet: run the same batch again to continue). ``asked``:
    the questions this run sent."""

    batch: Batch
    state: str
    progress: Progress
    asked: int = 0

    def line(self) -> str:
        """What the run did: ``3 kept, 1 new, 1 changed; asked 2``."""
        return self.batch.rerun.line(self.asked)


BatchEvent = ItemStarted | ItemFinished | Progress | BatchEnded


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------- the batch


class Batch:
    """Ask ``template`` of every item of ``sources`` on ``profile``; see the module
    docstring. Call :meth:`prepare` (or let :meth:`run` do it), then :meth:`run`."""

    def __init__(
        self,
        sources: Sequence[Path | str],
        profile: Profile,
        template: Template,
        services: Services,
        *,
        store: BatchStore | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        listener: Callable[[BatchEvent], None] | None = None,
        table_budget: int = DEFAULT_TABLE_TOKEN_BUDGET,
        pages: str | None = None,
        sheet: str | None = None,
    ) -> None:
        template.check()
        self.sources = [Path(s) for s in sources]
        self.profile = profile
        self.template = template
        self.services = services.replace(history=None)  # a batch keeps its own results
        self.pool, self.run_cpu = services.pool, services.run_cpu
        self.store = store if store is not None else BatchStore()
        self.concurrency = concurrency
        self.listeners: list[Callable[[BatchEvent], None]] = [listener] if listener else []
        self.options = PlanOptions.for_profile(
            profile, pages=pages, sheet=sheet, table_budget=table_budget, each=True
        )
        self.items: list[BatchItem] | None = None
        self.warnings: list[str] = []  # the plan's (pages left out, skipped figures, ...)
        self.key = batch_key(self.sources)
        self.rerun = Rerun()
        self._prints: dict[str, tuple[str, str]] = {}  # item key: (fingerprint, content)
        self.results: dict[str, ItemResult] = {}
        self.asked = 0  # questions sent to the server by this object (all runs)
        self._runners: dict[str, ConversationRunner] = {}
        self._running: set[str] = set()
        self._paused = False
        self._cancelled = False
        self._wake: asyncio.Event | None = None
        self._run_started = 0.0
        self._paused_at: float | None = None
        self._paused_s = 0.0
        self._finished_this_run = 0

    @property
    def concurrency(self) -> int:
        return self._concurrency

    @concurrency.setter
    def concurrency(self, n: int) -> None:
        """How many items run at once (1 to MAX_CONCURRENCY); takes effect at once."""
        self._concurrency = max(1, min(int(n), MAX_CONCURRENCY))
        if getattr(self, "_wake", None) is not None:
            self._wake.set()

    # -- events ----------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[BatchEvent], None]) -> None:
        self.listeners.append(listener)

    def _emit(self, event: BatchEvent) -> None:
        tell(self.listeners, event, "batch")

    # -- planning --------------------------------------------------------------------------

    async def prepare(self) -> list[BatchItem]:
        """Plan the items and their fingerprints (off the loop's thread), then keep the
        stored answers that still hold (:attr:`rerun` says how many)."""
        template, profile, options = self.template, self.profile, self.options

        def identify() -> tuple[list[BatchItem], list[str], dict[str, tuple[str, str]]]:
            planned = plan(self.sources, options)
            contents: dict[Path, str] = {}
            for item in planned.items:
                if item.path not in contents:
                    try:
                        contents[item.path] = file_digest(item.path)
                    except OSError:
                        contents[item.path] = ""  # unreadable: it fails when loaded
            prints = {
                i.key: (fingerprint(i, contents[i.path], template, profile, options),
                        contents[i.path])
                for i in planned.items
            }  # fmt: skip
            return planned.items, planned.warnings, prints

        self.items, self.warnings, self._prints = await self.run_cpu(identify)
        spec = {
            "sources": [str(s) for s in self.sources],
            "profile": profile.name,
            "model": profile.model,
            "template": [template.context, template.focus, template.question],
            "items": {key: fp for key, (fp, _) in self._prints.items()},
        }

        def load() -> tuple[dict[str, Any], list[ItemResult]]:  # answers: off the loop
            try:
                return self.store.begin(self.key, spec), self.store.results(self.key)
            except sqlite3.Error as exc:  # full disk, read-only folder, a damaged file
                raise BatchError(f"The batch state {self.store.path} cannot be used ({exc}).",
                                 "Free some space, or give --state another file.") from exc  # fmt: skip

        previous, stored = await self.run_cpu(load)
        found = {(r.key, r.fingerprint): r for r in stored}
        planned_before = dict(previous.get("items") or {})
        before: dict[str, set[str]] = {k: {fp} for k, fp in planned_before.items()}
        for r in stored:
            before.setdefault(r.key, set()).add(r.fingerprint)
        self.results, kept, changed = {}, 0, 0
        for item in self.items:
            fp = self._prints[item.key][0]
            if (result := found.get((item.key, fp))) is not None:
                self.results[item.key] = result
                kept += 1
            elif fp not in before.get(item.key, {fp}):  # asked or planned as another request
                changed += 1
        removed = len(set(planned_before) - set(self._prints))
        self.rerun = Rerun(kept, len(self.items) - kept - changed, changed, removed)
        return self.items

    # -- control ---------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Start no new item; the running ones finish (and are kept)."""
        if not self._paused:
            self._paused = True
            self._paused_at = time.monotonic()
            self._emit(self.progress())

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._paused_at is not None:
                self._paused_s += time.monotonic() - self._paused_at
            self._paused_at = None
            if self._wake is not None:
                self._wake.set()
            self._emit(self.progress())

    def cancel(self) -> None:
        """Stop the running items (they get no result and are asked again next time) and
        start no more; :meth:`run` returns with BatchEnded("cancelled")."""
        self._cancelled = True
        for runner in list(self._runners.values()):
            runner.stop("the batch was cancelled")
        if self._wake is not None:
            self._wake.set()

    def progress(self) -> Progress:
        total = len(self.items or ())
        done = sum(1 for r in self.results.values() if r.ok)
        failed = len(self.results) - done
        now = time.monotonic()
        paused = self._paused_s + (now - self._paused_at if self._paused_at else 0.0)
        elapsed = max(0.0, now - self._run_started - paused) if self._run_started else 0.0
        remaining = total - done - failed
        eta = None
        if self._finished_this_run and elapsed > 0:
            eta = remaining * elapsed / self._finished_this_run
        return Progress(total, done, failed, len(self._running), self._paused, elapsed, eta)

    @property
    def failures(self) -> list[ItemResult]:
        return [r for r in self.ordered_results() if not r.ok]

    def ordered_results(self) -> list[ItemResult]:
        """Results in item order (items without a result left out)."""
        return [self.results[i.key] for i in self.items or () if i.key in self.results]

    async def retry_failed(self) -> BatchEnded:
        """Forget the failed items' results and run them again."""
        failed = self.failures
        self.store.forget(self.key, failed)
        for r in failed:
            self.results.pop(r.key, None)
        return await self.run()

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> BatchEnded:
        """Ask every item without a result, ``concurrency`` at a time; returns (and emits)
        BatchEnded. Never raises for a failed item."""
        if self.items is None:
            await self.prepare()
        self._cancelled = False
        self._wake = asyncio.Event()
        self._run_started = time.monotonic()
        self._paused_s = 0.0
        self._paused_at = time.monotonic() if self._paused else None
        self._finished_this_run = 0
        asked_before = self.asked
        pending = deque(i for i in self.items if i.key not in self.results)
        tasks: set[asyncio.Task] = set()
        self._emit(self.progress())
        try:
            while True:
                while (
                    pending
                    and not self._paused
                    and not self._cancelled
                    and len(tasks) < self.concurrency
                ):
                    item = pending.popleft()
                    task = asyncio.ensure_future(self._run_item(item))
                    task.add_done_callback(lambda t: (tasks.discard(t), self._wake.set()))
                    tasks.add(task)
                if not tasks and (not pending or self._cancelled):
                    break
                await self._wake.wait()
                self._wake.clear()
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        state = "cancelled" if any(i.key not in self.results for i in self.items) else "done"
        ended = BatchEnded(self, state, self.progress(), self.asked - asked_before)
        self._emit(ended)
        return ended

    async def _run_item(self, item: BatchItem) -> None:
        self._running.add(item.key)
        self._emit(ItemStarted(self, item))
        started = time.monotonic()
        try:
            result = await self._ask(item, started)
        finally:
            self._running.discard(item.key)
            self._runners.pop(item.key, None)
        if result is not None:
            try:
                self.store.put(self.key, result)
            except sqlite3.Error as exc:  # the answer still counts; only resuming loses it
                log.warning("batch: result of %s not saved: %s", item.label, exc)
            self.results[item.key] = result
            self._finished_this_run += 1
            self._emit(ItemFinished(self, item, result))
        self._emit(self.progress())

    def _result(self, item: BatchItem, state: str, **values: Any) -> ItemResult:
        fp, content = self._prints.get(item.key, ("", ""))
        return ItemResult(
            key=item.key,
            label=item.label,
            kind=item.kind,
            path=str(item.path),
            state=state,
            fingerprint=fp,
            content=content,
            server=safe_endpoint(self.profile.api_base),
            finished=time.time(),
            **values,
        )

    def _failure(self, item: BatchItem, err: KanoaError, **values: Any) -> ItemResult:
        return self._result(item, "error", error=err.message, hint=err.hint or "", **values)

    async def _ask(self, item: BatchItem, started: float) -> ItemResult | None:
        try:
            inputs, question, thumb, warnings = await self.run_cpu(
                lambda: load_item(item, self.template, self.options)
            )
        except KanoaError as err:
            return self._failure(item, err)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            log.exception("batch: loading %s failed", item.label)
            return self._failure(item, internal_error(exc))
        if self._cancelled:
            return None
        runner = ConversationRunner(self.profile, self.services, outbox=inputs,
                                    table_budget=self.options.table_budget)  # fmt: skip
        self._runners[item.key] = runner
        self.asked += 1
        ended = await runner.ask(question)
        if ended.state == "stopped":
            return None  # cancelled: no result, asked again next time
        default = DEFAULT_QUESTION_FIGURE if inputs.figures else DEFAULT_QUESTION_TABLE
        asked = dict(
            model=runner.model,
            question=question or default,
            context=inputs.context,
            warnings="\n".join(warnings),
            thumbnail=thumb,
        )
        if ended.state == "error":
            return self._failure(item, ended.error or KanoaError("The answer failed."), **asked)
        stats = ended.stats
        return self._result(
            item,
            "done",
            answer=ended.answer,
            prompt_tokens=stats.prompt_tokens if stats else None,
            output_tokens=stats.output_tokens if stats else None,
            estimated=bool(stats.estimated) if stats else False,
            ttft_s=stats.ttft_s if stats else None,
            tokens_per_s=stats.tokens_per_s() if stats else None,
            duration_s=time.monotonic() - started,
            cost=ended.cost,
            finish_reason=ended.finish_reason,
            **asked,
        )
