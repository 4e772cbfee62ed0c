"""One question over a whole folder of figures and tables, resumable, with no Qt.

A :class:`Batch` asks one profile the same context/focus/question :class:`Template` about
every item of a folder or a list of files, a few at a time (``concurrency``, default 2),
each item in its own :class:`~kanoa_desktop.core.ask.pipeline.ConversationRunner`
(a fresh conversation) on one shared :class:`~kanoa_desktop.core.endpoint.pool.ClientPool`.

What an item is (decided when the batch is planned, :func:`plan_items`):

- an image or SVG file: one item, the figure;
- a table (CSV/TSV, Excel's first sheet, Parquet): one item, its summary;
- a notebook: one item per image output, the cell's source added to the context;
- a PDF: one item per page, the whole page rendered at the profile's long side (a batch
  cannot drag crop rectangles; embedded raster images are left out: a page is what a
  reader sees, and vector plots have no embedded image at all);
- a file that cannot be opened (damaged, encrypted, empty): one item that fails with the
  loader's message, without asking the server.

Resumable: each item's result is written to a small SQLite file (:class:`BatchStore`,
``data_dir()/batches.sqlite3``) the moment it finishes, keyed by the batch
(:func:`batch_key`: the sources, the items, the template and the profile's endpoint, model
and parameters). Running the same batch again (after a cancel, a crash, a SIGKILL) asks
only the items without a result: a finished item is never asked twice. A failed item keeps
its failure until :meth:`Batch.retry_failed`. An item stopped by a cancel has no result
and is asked again next time.

Events (to ``listener``): :class:`ItemStarted`, :class:`ItemFinished`, :class:`Progress`
(counts and time left) after each change, and :class:`BatchEnded` once per :meth:`run`.

Reports: :func:`write_report` writes Markdown (thumbnails beside it), self-contained HTML
(thumbnails embedded) or CSV, by the path's suffix: per item the answer, tokens, time and
cost, the totals, and the failures with their messages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import hashlib
import html
import io
import json
import logging
import sqlite3
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanoa_desktop.core.ask.interpret import DEFAULT_TABLE_TOKEN_BUDGET, Inputs
from kanoa_desktop.core.ask.pipeline import ConversationRunner, internal_error
from kanoa_desktop.core.config import paths
from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.history.store import safe_endpoint
from kanoa_desktop.core.reports.markdown import demote_headings

log = logging.getLogger(__name__)

FILE_NAME = "batches.sqlite3"
DEFAULT_CONCURRENCY = 2
MAX_CONCURRENCY = 16
THUMBNAIL_LONG_SIDE = 192
TEMPLATE_FIELDS = ("name", "stem", "folder", "item")
DEFAULT_QUESTION = "Interpret."


class BatchError(KanoaError):
    """The batch cannot run as asked (no files, a bad template)."""

    title = "Cannot run the batch"


# ---------------------------------------------------------------- template


@dataclass(frozen=True)
class Template:
    """Context, focus and question with fields filled per item: ``{name}`` (the file's
    name), ``{stem}`` (the name without its extension), ``{folder}`` (the name of the
    folder holding it) and ``{item}`` (the item: ``paper.pdf, page 3``). ``{{`` and ``}}``
    stand for braces."""

    context: str = ""
    focus: str = ""
    question: str = ""

    def check(self) -> None:
        """Raise :class:`BatchError` naming an unknown field or a stray brace."""
        for label, text in (("context", self.context), ("focus", self.focus),
                            ("question", self.question)):  # fmt: skip
            try:
                parsed = list(string.Formatter().parse(text))
            except ValueError as exc:
                raise BatchError(
                    f"The {label} template is not valid: {exc}.",
                    "Write a brace as {{ or }}; fields are "
                    + ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
                    + ".",
                ) from exc
            for _, name, spec, conv in parsed:
                if name is None:
                    continue
                if name not in TEMPLATE_FIELDS or spec or conv:
                    raise BatchError(
                        f"The {label} template uses {{{name}}}, which is not a field.",
                        "Use " + ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS) + ".",
                    )

    def fill(self, item: BatchItem) -> tuple[str, str, str]:
        values = {
            "name": item.path.name,
            "stem": item.path.stem,
            "folder": item.path.parent.name,
            "item": item.label,
        }
        return (
            self.context.format_map(values),
            self.focus.format_map(values),
            self.question.format_map(values),
        )


# ---------------------------------------------------------------- items


@dataclass(frozen=True)
class BatchItem:
    """One question of a batch. ``key`` is stable across runs (path and part)."""

    key: str
    path: Path
    label: str
    kind: str  # figure, table, notebook, pdf, or "file" when it could not be opened
    part: int | None = None  # PDF page or notebook figure (0-based)
    problem: str = ""  # set when planning already found the file unusable
    hint: str = ""


BATCH_SUFFIXES: set[str] = set()


def _batch_suffixes() -> set[str]:
    if not BATCH_SUFFIXES:
        from kanoa_desktop.core.inputs.figures import IMAGE_SUFFIXES
        from kanoa_desktop.core.inputs.load import TABLE_SUFFIXES

        BATCH_SUFFIXES.update(IMAGE_SUFFIXES | TABLE_SUFFIXES | {".pdf", ".ipynb"})
    return BATCH_SUFFIXES


def expand_sources(sources: Iterable[Path | str]) -> list[Path]:
    """The files of a batch: each folder's figures, tables, PDFs and notebooks (not its
    subfolders, not hidden files), sorted by name; files named directly are kept as given.
    Raises :class:`BatchError` for a missing path or when nothing is left."""
    files: list[Path] = []
    for src in sources:
        path = Path(src).expanduser()
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file()
                and not p.name.startswith(".")
                and p.suffix.lower() in _batch_suffixes()
            )
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise BatchError(f"{path} does not exist.", "Check the folder or file name.")
    seen: dict[Path, None] = {}
    for f in files:
        seen.setdefault(f.resolve(), None)
    if not seen:
        raise BatchError(
            "There is nothing to interpret: no figure, table, PDF or notebook was found.",
            "Choose a folder holding PNG, JPEG, SVG, CSV, Excel, PDF or notebook files.",
        )
    return list(seen)


def plan_items(files: Sequence[Path], *, long_side: int = 1024) -> list[BatchItem]:
    """The items of a batch (see the module docstring): blocking (opens PDFs and
    notebooks to count their pages and figures); run it off the GUI thread."""
    from kanoa_desktop.core.inputs.load import input_kind

    items: list[BatchItem] = []
    for path in files:
        kind = input_kind(path)
        key = str(path)
        if kind == "pdf":
            from kanoa_desktop.core.inputs.pdf import open_pdf

            try:
                with open_pdf(path) as doc:
                    n = doc.page_count
            except KanoaError as err:
                items.append(BatchItem(key, path, path.name, "pdf", None, err.message, err.hint))
                continue
            items += [
                BatchItem(f"{key}#page={i + 1}", path, f"{path.name}, page {i + 1}", "pdf", i)
                for i in range(n)
            ]
        elif kind == "notebook":
            from kanoa_desktop.core.inputs.notebook import load_notebook

            try:
                figs = load_notebook(path, long_side=long_side).figures
            except KanoaError as err:
                items.append(BatchItem(key, path, path.name, "notebook", None, err.message,
                                       err.hint))  # fmt: skip
                continue
            items += [
                BatchItem(
                    f"{key}#figure={i + 1}",
                    path,
                    f"{path.name}, figure {i + 1} (cell {f.cell_number})",
                    "notebook",
                    i,
                )
                for i, f in enumerate(figs)
            ]
        else:
            items.append(BatchItem(key, path, path.name, kind))
    return items


def _thumbnail(data: bytes) -> bytes | None:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMBNAIL_LONG_SIDE, THUMBNAIL_LONG_SIDE))
            buf = io.BytesIO()
            im.save(buf, "PNG", optimize=True)
            return buf.getvalue()
    except Exception:  # noqa: BLE001 - a thumbnail is a nicety
        return None


def load_item(
    item: BatchItem,
    template: Template,
    *,
    long_side: int = 1024,
    table_budget: int = DEFAULT_TABLE_TOKEN_BUDGET,
) -> tuple[Inputs, bytes | None]:
    """The inputs of one item and a small PNG thumbnail (None for a table). Blocking;
    raises the loader's typed error (a KanoaError) for a file it cannot use."""
    if item.problem:
        raise BatchError(item.problem, item.hint)
    context, focus, question = template.fill(item)
    inputs = Inputs(context=context, focus=focus, question=question or DEFAULT_QUESTION)
    if item.kind == "pdf":
        from kanoa_desktop.core.inputs.pdf import take_pages

        inputs.figures = take_pages(item.path, [item.part or 0], long_side=long_side)
    elif item.kind == "notebook":
        from kanoa_desktop.core.inputs.notebook import load_notebook

        nb = load_notebook(item.path, long_side=long_side)
        if item.part is None or item.part >= len(nb.figures):
            raise BatchError(
                f"{item.label} is no longer in the notebook.", "Run the batch again to re-plan it."
            )
        fig = nb.figures[item.part]
        inputs.figures = [fig.figure]
        inputs.context = (context + "\n\n" + fig.context).strip()
    else:
        from kanoa_desktop.core.ask.interpret import load_input, summarise
        from kanoa_desktop.core.inputs.tables import LoadedTable

        loaded = load_input(item.path, long_side=long_side)
        if isinstance(loaded, LoadedTable):
            inputs.table = loaded
            inputs.table_summary = summarise(loaded, table_budget)
        else:
            inputs.figures = [loaded]
    thumb = _thumbnail(inputs.figures[0].data) if inputs.figures else None
    return inputs, thumb


def batch_key(sources: Sequence[Path], items: Sequence[BatchItem], template: Template,
              profile: Profile) -> str:  # fmt: skip
    """The identity of a batch: the same sources, items, template and profile (endpoint,
    model, parameters, system prompt) give the same key, so a rerun continues it."""
    spec = {
        "sources": sorted(str(Path(s).resolve()) for s in sources),
        "items": [i.key for i in items],
        "template": [template.context, template.focus, template.question],
        "profile": [
            safe_endpoint(profile.api_base),
            profile.model,
            profile.temperature,
            profile.max_tokens,
            profile.top_p,
            profile.image_long_side,
            profile.system_prompt or "",
        ],
    }
    blob = json.dumps(spec, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


# ---------------------------------------------------------------- results and store


@dataclass(frozen=True)
class ItemResult:
    """What one item gave: ``state`` "done" or "error" (``error``/``hint`` say why)."""

    key: str
    label: str
    kind: str
    path: str
    state: str
    model: str = ""
    answer: str = ""
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    estimated: bool = False
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    duration_s: float | None = None
    cost: float | None = None
    error: str = ""
    hint: str = ""
    finish_reason: str | None = None
    thumbnail: bytes | None = field(default=None, repr=False)
    finished: float = 0.0

    @property
    def ok(self) -> bool:
        return self.state == "done"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    spec TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS results (
    batch TEXT NOT NULL,
    item TEXT NOT NULL,
    label TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    state TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    answer TEXT NOT NULL DEFAULT '',
    prompt_tokens INTEGER,
    output_tokens INTEGER,
    estimated INTEGER NOT NULL DEFAULT 0,
    ttft_s REAL,
    tokens_per_s REAL,
    duration_s REAL,
    cost REAL,
    error TEXT NOT NULL DEFAULT '',
    hint TEXT NOT NULL DEFAULT '',
    finish_reason TEXT,
    thumbnail BLOB,
    finished REAL NOT NULL,
    PRIMARY KEY (batch, item)
);
"""

_COLUMNS = tuple(ItemResult.__dataclass_fields__)


class BatchStore:
    """The results of every batch, one committed row per finished item (WAL: a row is
    on disk when :meth:`put` returns, whatever happens to the process next)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else paths.data_dir() / FILE_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)

    def begin(self, key: str, spec: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO batches(key, created, spec) VALUES (?, ?, ?)",
                (key, time.time(), json.dumps(spec, ensure_ascii=False)),
            )

    def results(self, key: str) -> dict[str, ItemResult]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM results WHERE batch = ?", (key,)).fetchall()
        out = {}
        for r in rows:
            values = {c: r["item" if c == "key" else c] for c in _COLUMNS}
            values["estimated"] = bool(values["estimated"])
            values["thumbnail"] = bytes(values["thumbnail"]) if values["thumbnail"] else None
            out[r["item"]] = ItemResult(**values)
        return out

    def put(self, batch: str, result: ItemResult) -> None:
        values = {c: getattr(result, c) for c in _COLUMNS}
        values["item"] = values.pop("key")
        values["estimated"] = int(values["estimated"])
        cols = ", ".join(["batch", *values])
        marks = ", ".join("?" * (len(values) + 1))
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO results({cols}) VALUES ({marks})",
                (batch, *values.values()),
            )

    def forget(self, batch: str, items: Iterable[str]) -> None:
        with self._lock:
            self._db.executemany(
                "DELETE FROM results WHERE batch = ? AND item = ?", [(batch, i) for i in items]
            )

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()


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
    "cancelled" (some have none yet: run the same batch again to continue)."""

    batch: Batch
    state: str
    progress: Progress


BatchEvent = ItemStarted | ItemFinished | Progress | BatchEnded


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------- the batch


CpuRunner = Callable[[Callable[[], Any]], Any]


async def _to_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


class Batch:
    """Ask ``template`` of every item of ``sources`` on ``profile``; see the module
    docstring. Call :meth:`prepare` (or let :meth:`run` do it), then :meth:`run`."""

    def __init__(
        self,
        sources: Sequence[Path | str],
        profile: Profile,
        template: Template,
        *,
        pool: ClientPool,
        store: BatchStore | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        listener: Callable[[BatchEvent], None] | None = None,
        vision: Any = None,
        kanoa_pricing: Any = None,
        knowledge_base: Callable[[], Any] | None = None,
        run_cpu: CpuRunner | None = None,
        table_budget: int = DEFAULT_TABLE_TOKEN_BUDGET,
    ) -> None:
        template.check()
        self.sources = [Path(s) for s in sources]
        self.profile = profile
        self.template = template
        self.pool = pool
        self.store = store if store is not None else BatchStore()
        self.concurrency = concurrency
        self.listeners: list[Callable[[BatchEvent], None]] = [listener] if listener else []
        self.vision = vision
        self.kanoa_pricing = kanoa_pricing
        self.knowledge_base = knowledge_base
        self.run_cpu = run_cpu or _to_thread
        self.table_budget = table_budget
        self.items: list[BatchItem] | None = None
        self.key = ""
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
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a broken view must not break the batch
                log.exception("batch listener failed on %s", type(event).__name__)

    # -- planning --------------------------------------------------------------------------

    async def prepare(self) -> list[BatchItem]:
        """Plan the items (off the loop's thread), compute the batch's key and load the
        results stored by earlier runs of the same batch."""
        long_side = self.profile.image_long_side

        def plan() -> list[BatchItem]:
            return plan_items(expand_sources(self.sources), long_side=long_side)

        self.items = await self.run_cpu(plan)
        self.key = key = batch_key(self.sources, self.items, self.template, self.profile)
        spec = {
            "sources": [str(s) for s in self.sources],
            "profile": self.profile.name,
            "model": self.profile.model,
            "template": [self.template.context, self.template.focus, self.template.question],
        }

        def load() -> dict[str, ItemResult]:  # thumbnails and answers: off the loop's thread
            self.store.begin(key, spec)
            return self.store.results(key)

        known = await self.run_cpu(load)
        self.results = {i.key: known[i.key] for i in self.items if i.key in known}
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
            runner.stop("Batch cancelled.")
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
        failed = [r.key for r in self.failures]
        self.store.forget(self.key, failed)
        for key in failed:
            self.results.pop(key, None)
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
        ended = BatchEnded(self, state, self.progress())
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

    def _failure(self, item: BatchItem, err: KanoaError, thumb: bytes | None = None) -> ItemResult:
        return ItemResult(
            key=item.key,
            label=item.label,
            kind=item.kind,
            path=str(item.path),
            state="error",
            error=err.message,
            hint=err.hint or "",
            thumbnail=thumb,
            finished=time.time(),
        )

    async def _ask(self, item: BatchItem, started: float) -> ItemResult | None:
        profile = self.profile
        try:
            inputs, thumb = await self.run_cpu(
                lambda: load_item(
                    item,
                    self.template,
                    long_side=profile.image_long_side,
                    table_budget=self.table_budget,
                )
            )
        except KanoaError as err:
            return self._failure(item, err)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            log.exception("batch: loading %s failed", item.label)
            return self._failure(item, internal_error(exc))
        if self._cancelled:
            return None
        runner = ConversationRunner(
            profile,
            pool=self.pool,
            vision=self.vision,
            kanoa_pricing=self.kanoa_pricing,
            knowledge_base=self.knowledge_base,
            run_cpu=self.run_cpu,
            table_budget=self.table_budget,
        )
        self._runners[item.key] = runner
        self.asked += 1
        ended = await runner.ask(inputs)
        if ended.state == "stopped":
            return None  # cancelled: no result, asked again next time
        if ended.state == "error":
            err = ended.error or KanoaError("The answer failed.")
            return self._failure(item, err, thumb)
        stats = ended.stats
        return ItemResult(
            key=item.key,
            label=item.label,
            kind=item.kind,
            path=str(item.path),
            state="done",
            model=runner.model,
            answer=ended.answer,
            prompt_tokens=stats.prompt_tokens if stats else None,
            output_tokens=stats.output_tokens if stats else None,
            estimated=bool(stats.estimated) if stats else False,
            ttft_s=stats.ttft_s if stats else None,
            tokens_per_s=stats.tokens_per_s() if stats else None,
            duration_s=time.monotonic() - started,
            cost=ended.cost,
            finish_reason=ended.finish_reason,
            thumbnail=thumb,
            finished=time.time(),
        )


# ---------------------------------------------------------------- reports


@dataclass(frozen=True)
class Totals:
    items: int
    done: int
    failed: int
    missing: int  # no result yet (cancelled before they ran)
    prompt_tokens: int
    output_tokens: int
    cost: float
    duration_s: float


def totals(items: Sequence[BatchItem], results: Sequence[ItemResult]) -> Totals:
    done = [r for r in results if r.ok]
    return Totals(
        items=len(items),
        done=len(done),
        failed=len(results) - len(done),
        missing=len(items) - len(results),
        prompt_tokens=sum(r.prompt_tokens or 0 for r in done),
        output_tokens=sum(r.output_tokens or 0 for r in done),
        cost=sum(r.cost or 0.0 for r in done),
        duration_s=sum(r.duration_s or 0.0 for r in done),
    )


def _usage(r: ItemResult) -> str:
    bits = []
    if r.prompt_tokens is not None:
        est = "~" if r.estimated else ""
        bits.append(
            f"{est}{r.prompt_tokens:,} prompt + {est}{r.output_tokens or 0:,} output tokens"
        )
    if r.duration_s is not None:
        bits.append(f"{r.duration_s:.1f} s")
    if r.tokens_per_s:
        bits.append(f"{r.tokens_per_s:.1f} tok/s")
    if r.cost is not None:
        bits.append(format_cost(r.cost))
    return " · ".join(bits)


def _title(batch: Batch) -> str:
    names = ", ".join(s.name for s in batch.sources[:3]) + (" …" if len(batch.sources) > 3 else "")
    return f"Batch: {names}"


def _thumb_name(index: int, r: ItemResult) -> str:
    return f"{index:03d}-{hashlib.sha1(r.key.encode()).hexdigest()[:8]}.png"


def report_markdown(batch: Batch, thumb_folder: str | None = None) -> str:
    """The report as Markdown; ``thumb_folder`` is where :func:`write_report` put the
    thumbnails (relative), else none are linked."""
    results = batch.ordered_results()
    t = totals(batch.items or [], results)
    p = batch.profile
    out = [f"# {_title(batch)}", ""]
    out += [
        f"- **Profile**: {p.name} ({safe_endpoint(p.api_base)})",
        f"- **Model**: {next((r.model for r in results if r.model), p.model or '-')}",
    ]
    for label, text in (("Context", batch.template.context), ("Focus", batch.template.focus),
                        ("Question", batch.template.question or DEFAULT_QUESTION)):  # fmt: skip
        if text.strip():
            out.append(f"- **{label} template**: {' '.join(text.split())}")
    out += [
        "",
        "## Totals",
        "",
        f"- **Items**: {t.items:,} ({t.done:,} done, {t.failed:,} failed"
        + (f", {t.missing:,} not run yet" if t.missing else "")
        + ")",
        f"- **Tokens**: {t.prompt_tokens:,} prompt + {t.output_tokens:,} output",
        f"- **Time** (sum over items): {t.duration_s:,.1f} s",
        f"- **Cost**: {format_cost(t.cost)}",
        "",
    ]
    failures = [r for r in results if not r.ok]
    if failures:
        out += ["## Failures", ""]
        out += [
            f"- **{r.label}**: {r.error}" + (f" *{r.hint}*" if r.hint else "") for r in failures
        ]
        out.append("")
    out += ["## Items", ""]
    for n, r in enumerate(results, 1):
        out += [f"### {n}. {r.label}", ""]
        if r.thumbnail and thumb_folder:
            out += [f"![{r.label}]({thumb_folder}/{_thumb_name(n, r)})", ""]
        if r.ok:
            out += [demote_headings(r.answer.strip()) or "*(no text)*", "", f"*{_usage(r)}*", ""]
        else:
            out += [f"**Failed:** {r.error}" + (f" *{r.hint}*" if r.hint else ""), ""]
    return "\n".join(out)


def report_html(batch: Batch) -> str:
    """The report as one self-contained HTML page (thumbnails embedded)."""
    from kanoa_desktop.core.reports.markdown import render_markdown

    e = html.escape
    results = batch.ordered_results()
    t = totals(batch.items or [], results)
    css = (
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
        "line-height:1.5;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:.2rem .5rem;vertical-align:top;text-align:left}.num{text-align:right}"
        ".fail{color:#a40000}.item{display:flex;gap:1rem;border-top:1px solid #ddd;"
        "padding-top:.5rem}.item img{max-width:192px;border:1px solid #ddd;align-self:start}"
        ".usage{color:#666;font-size:.85em}"
    )
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{e(_title(batch))}</title><style>{css}</style></head><body>",
        f"<h1>{e(_title(batch))}</h1>",
        f"<p>Profile {e(batch.profile.name)} ({e(safe_endpoint(batch.profile.api_base))})</p>",
        "<h2>Totals</h2><table>",
        f"<tr><th>Items</th><td class='num'>{t.items:,}</td></tr>",
        f"<tr><th>Done</th><td class='num'>{t.done:,}</td></tr>",
        f"<tr><th>Failed</th><td class='num'>{t.failed:,}</td></tr>",
    ]
    if t.missing:
        out.append(f"<tr><th>Not run yet</th><td class='num'>{t.missing:,}</td></tr>")
    out += [
        f"<tr><th>Prompt tokens</th><td class='num'>{t.prompt_tokens:,}</td></tr>",
        f"<tr><th>Output tokens</th><td class='num'>{t.output_tokens:,}</td></tr>",
        f"<tr><th>Time (sum)</th><td class='num'>{t.duration_s:,.1f} s</td></tr>",
        f"<tr><th>Cost</th><td class='num'>{e(format_cost(t.cost))}</td></tr></table>",
    ]
    failures = [r for r in results if not r.ok]
    if failures:
        out.append("<h2>Failures</h2><ul>")
        out += [
            f"<li class='fail'><strong>{e(r.label)}</strong>: {e(r.error)}"
            + (f" <em>{e(r.hint)}</em>" if r.hint else "")
            + "</li>"
            for r in failures
        ]
        out.append("</ul>")
    out.append("<h2>Items</h2>")
    for n, r in enumerate(results, 1):
        img = ""
        if r.thumbnail:
            src = "data:image/png;base64," + base64.b64encode(r.thumbnail).decode()
            img = f'<img src="{src}" alt="{e(r.label)}">'
        if r.ok:
            body = render_markdown(demote_headings(r.answer)) + (
                f'<p class="usage">{e(_usage(r))}</p>'
            )
        else:
            body = f"<p class='fail'><strong>Failed:</strong> {e(r.error)} <em>{e(r.hint)}</em></p>"
        out.append(f'<h3>{n}. {e(r.label)}</h3><div class="item">{img}<div>{body}</div></div>')
    out.append("</body></html>")
    return "\n".join(out)


CSV_COLUMNS = (
    "item", "file", "kind", "state", "model", "prompt_tokens", "output_tokens", "estimated",
    "ttft_s", "tokens_per_s", "duration_s", "cost", "finish_reason", "error", "answer",
)  # fmt: skip


def report_csv(batch: Batch) -> str:
    """One row per item (items not run yet have state "pending")."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for item in batch.items or ():
        r = batch.results.get(item.key)
        if r is None:
            w.writerow([item.label, str(item.path), item.kind, "pending"] + [""] * 11)
            continue
        w.writerow(
            [
                r.label, r.path, r.kind, r.state, r.model, r.prompt_tokens, r.output_tokens,
                int(r.estimated), _num(r.ttft_s), _num(r.tokens_per_s), _num(r.duration_s),
                f"{r.cost:.8f}" if r.cost is not None else "", r.finish_reason or "",
                r.error, r.answer,
            ]
        )  # fmt: skip
    return buf.getvalue()


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


REPORT_SUFFIXES = (".md", ".html", ".csv")


def write_report(batch: Batch, path: Path | str) -> Path:
    """Write the report by the path's suffix (.md with thumbnails in ``<stem>_thumbs/``,
    .html, .csv). Raises BatchError for another suffix or a file it cannot write."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".markdown",):
        suffix = ".md"
    if suffix not in REPORT_SUFFIXES:
        raise BatchError(
            f"{path.name}: a report is Markdown (.md), HTML (.html) or CSV (.csv).",
            "Name the report file with one of these extensions.",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".html":
            path.write_text(report_html(batch), encoding="utf-8")
        elif suffix == ".csv":
            path.write_text(report_csv(batch), encoding="utf-8", newline="")
        else:
            folder = path.with_name(f"{path.stem}_thumbs")
            results = batch.ordered_results()
            if any(r.thumbnail for r in results):
                folder.mkdir(exist_ok=True)
                for n, r in enumerate(results, 1):
                    if r.thumbnail:
                        (folder / _thumb_name(n, r)).write_bytes(r.thumbnail)
            path.write_text(report_markdown(batch, folder.name), encoding="utf-8")
    except OSError as exc:
        raise BatchError(
            f"{path} could not be written ({exc.strerror or exc}).",
            "Choose another folder, or check that there is free space.",
        ) from exc
    return path


__all__ = [
    "BATCH_SUFFIXES",
    "DEFAULT_CONCURRENCY",
    "Batch",
    "BatchEnded",
    "BatchError",
    "BatchEvent",
    "BatchItem",
    "BatchStore",
    "ItemFinished",
    "ItemResult",
    "ItemStarted",
    "Progress",
    "Template",
    "Totals",
    "batch_key",
    "expand_sources",
    "format_duration",
    "load_item",
    "plan_items",
    "report_csv",
    "report_html",
    "report_markdown",
    "totals",
    "write_report",
]
