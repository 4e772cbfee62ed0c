"""The endpoint benchmark: kanoa's documentation benchmark, run against one model server.

A suite of tasks (vision: a photo, a complex plot, data interpretation; text: basic chat,
code generation, reasoning, structured JSON output, multi-turn) is run ``runs`` times each
(default 3). Each run is one streamed chat request; its tokens/s is the generation rate the
status bar shows (:meth:`StreamStats.tokens_per_s`: output tokens after the first one over
the time since the first one), so time to first token is reported on its own.

Per task: mean, sample standard deviation, min and max tokens/s, coefficient of variation
(std / mean) and mean TTFT. The overall row follows kanoa's docs: the per-run average over
the tasks, then the same statistics over those averages.

Vision tasks are skipped with a note when the model reads text only (told, or probed with a
one-pixel image). A caller may pass a metrics reader (sync or async callable returning a
:class:`MetricsReading`); it is sampled during the run for the KV-cache peak and the
preemptions. No Qt here: the window, the command line and tests drive the same
:class:`EndpointBenchmark`.

``to_markdown`` writes the table in the layout of kanoa's docs (``| Test | Mean (tok/s) |
StdDev | Min | Max | Notes |``) with a ``Mean TTFT (s)`` column added before Notes, through
the one report writer (:mod:`kanoa_desktop.core.reports`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.core.endpoint.client import ChatClient
from kanoa_desktop.core.endpoint.stats import StreamStats
from kanoa_desktop.core.inputs.figures import prepare_figure
from kanoa_desktop.core.monitor.metrics import MetricsBodyError, fetch_metrics, parse_scrape
from kanoa_desktop.core.reports.document import Document, Paragraph, Table
from kanoa_desktop.core.reports.writer import to_markdown as markdown_text
from kanoa_desktop.core.reports.writer import write

RESOURCES_DIR = Path(__file__).resolve().parents[3] / "resources" / "bench"
DEFAULT_RUNS = 3

# Notes as in kanoa's tables. Thresholds on the coefficient of variation (kanoa's docs do not
# state theirs; these reproduce most of their labels).
STABLE_CV = 0.20
MEDIUM_CV = 0.35


@dataclass(frozen=True)
class BenchTask:
    """One benchmark task. ``image`` names a file in the resources folder (vision tasks);
    ``history`` holds earlier turns (multi-turn); ``extra`` is merged into the request body."""

    key: str
    label: str
    kind: Literal["vision", "text"]
    prompt: str
    image: str | None = None
    history: tuple[dict[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    max_tokens: int = 256


DEFAULT_TASKS: tuple[BenchTask, ...] = (
    BenchTask(
        "vision_photo", "Vision - Photo", "vision",
        "Describe this photograph: the scene, the light, and what stands out.",
        image="photo.png",
    ),
    BenchTask(
        "vision_complex_plot", "Vision - Complex Plot", "vision",
        "This is a four-panel scientific figure. Explain what each panel shows and how they "
        "relate.",
        image="complex_plot.png",
    ),
    BenchTask(
        "vision_data", "Vision - Data Interpretation", "vision",
        "Interpret this chart: which sites changed most between survey years, and which "
        "meet the target?",
        image="data_chart.png",
    ),
    BenchTask("basic_chat", "Basic Chat", "text", "Hello! In two sentences, what is a p-value?"),
    BenchTask(
        "code_generation", "Code Generation", "text",
        "Write a Python function that computes a moving average of a list with a given window, "
        "with a docstring and one example.",
    ),
    BenchTask(
        "reasoning", "Reasoning", "text",
        "A bat and a ball cost 1.10 in total. The bat costs 1.00 more than the ball. How much "
        "does the ball cost? Reason step by step.",
    ),
    BenchTask(
        "structured_output", "Structured Output", "text",
        'Return a JSON object with keys "species" (a list of three bird names) and "count" '
        "(their number). Reply with JSON only.",
        extra={"response_format": {"type": "json_object"}},
    ),
    BenchTask(
        "multi_turn", "Multi-turn", "text",
        "And how would the answer change if the sample size doubled?",
        history=(
            {"role": "user", "content": "I measured a mean of 4.2 with standard error 0.5."},
            {"role": "assistant", "content": "A 95% confidence interval is about 3.2 to 5.2."},
        ),
    ),
)  # fmt: skip


@dataclass(frozen=True)
class MetricsReading:
    """One reading of the server's metrics: KV-cache usage (0..1) and the preemptions
    counter since the server started. ``None``: the server does not say."""

    kv_cache_usage: float | None = None
    preemptions_total: float | None = None


MetricsReader = Callable[[], "MetricsReading | None | Awaitable[MetricsReading | None]"]


@dataclass(frozen=True)
class RunRecord:
    """One run of one task. ``error`` is a plain message when the run failed."""

    task: str
    index: int
    tokens_per_s: float | None = None
    ttft_s: float | None = None
    output_tokens: int = 0
    duration_s: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.tokens_per_s is not None


@dataclass(frozen=True)
class Summary:
    """Statistics of a series of tokens/s values. ``std`` is the sample standard deviation
    (n - 1; 0.0 for one value); ``cv`` is std / mean (None when mean is 0)."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    cv: float | None


def summarise(values: Sequence[float]) -> Summary | None:
    """Mean, sample std, min, max and CV of ``values``; None when empty."""
    if not values:
        return None
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    cv = std / mean if mean else None
    return Summary(len(values), mean, std, min(values), max(values), cv)


@dataclass
class TaskResult:
    task: BenchTask
    runs: list[RunRecord] = field(default_factory=list)
    skipped: str = ""  # why the task did not run (a text-only model, cancelled...)

    @property
    def ok_runs(self) -> list[RunRecord]:
        return [r for r in self.runs if r.ok]

    @property
    def summary(self) -> Summary | None:
        return summarise([r.tokens_per_s for r in self.ok_runs if r.tokens_per_s is not None])

    @property
    def mean_ttft_s(self) -> float | None:
        ttfts = [r.ttft_s for r in self.ok_runs if r.ttft_s is not None]
        return statistics.fmean(ttfts) if ttfts else None

    @property
    def failures(self) -> int:
        return sum(1 for r in self.runs if not r.ok)


@dataclass
class SuiteResult:
    """The whole suite: per-task results in task order, and what the metrics said."""

    model: str
    api_base: str
    runs: int
    tasks: list[TaskResult] = field(default_factory=list)
    cancelled: bool = False
    error: str = ""  # set when the suite stopped early on a failure
    kv_cache_peak: float | None = None
    preemptions: float | None = None  # increase of the counter during the suite
    started: float = field(default_factory=time.time)
    duration_s: float = 0.0
    server: str = ""  # the server's kind and version ("vLLM 0.33.0"), when it told

    @property
    def overall(self) -> Summary | None:
        """kanoa's "Overall Average": per run index, the mean over the tasks that have a
        good run at that index; then statistics over those averages."""
        per_index: dict[int, list[float]] = {}
        for t in self.tasks:
            for r in t.ok_runs:
                if r.tokens_per_s is not None:
                    per_index.setdefault(r.index, []).append(r.tokens_per_s)
        return summarise([statistics.fmean(v) for _, v in sorted(per_index.items())])

    @property
    def mean_ttft_s(self) -> float | None:
        ttfts = [r.ttft_s for t in self.tasks for r in t.ok_runs if r.ttft_s is not None]
        return statistics.fmean(ttfts) if ttfts else None


@dataclass(frozen=True)
class Progress:
    """Sent after every run: ``done`` of ``total`` planned runs (skipped tasks count as
    done), the task and the run just finished."""

    done: int
    total: int
    task: TaskResult
    record: RunRecord | None


def variance_note(summary: Summary | None) -> str:
    """kanoa's note for a row: "Stable ✓", "Medium variance" or "High variance ⚠️"."""
    if summary is None or summary.cv is None:
        return ""
    if summary.n < 2:
        return "Single run"
    if summary.cv <= STABLE_CV:
        return "Stable ✓"
    if summary.cv <= MEDIUM_CV:
        return "Medium variance"
    return "High variance ⚠️"


class EndpointBenchmark:
    """Run the suite against ``client`` and ``model``.

    ``vision``: True/False when known, None to probe the model with a one-pixel image.
    ``on_progress`` is called (on the caller's loop) after every run. ``cancel()`` stops at
    once: the request in flight is closed (the server stops generating) and ``run()``
    returns the runs finished so far with ``cancelled=True``. ``result`` is live while the
    suite runs.
    """

    def __init__(
        self,
        client: ChatClient,
        model: str,
        *,
        runs: int = DEFAULT_RUNS,
        tasks: Sequence[BenchTask] = DEFAULT_TASKS,
        vision: bool | None = None,
        metrics: MetricsReader | None = None,
        metrics_interval_s: float = 0.5,
        on_progress: Callable[[Progress], None] | None = None,
        temperature: float | None = 0.7,
        max_tokens: int | None = None,
        resources_dir: Path = RESOURCES_DIR,
        image_long_side: int = 1024,
    ) -> None:
        if runs < 1:
            raise ValueError("runs must be at least 1")
        self.client = client
        self.model = model
        self.runs = runs
        self.tasks = tuple(tasks)
        self.vision = vision
        self.metrics = metrics
        self.metrics_interval_s = metrics_interval_s
        self.on_progress = on_progress
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.resources_dir = resources_dir
        self.image_long_side = image_long_side
        self.result = SuiteResult(model=model, api_base=client.api_base, runs=runs)
        self._cancelled = False
        self._current: asyncio.Task[Any] | None = None
        self._first_preemptions: float | None = None

    def cancel(self) -> None:
        """Stop the suite; safe to call at any time, more than once."""
        self._cancelled = True
        if self._current is not None and not self._current.done():
            self._current.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> SuiteResult:
        """Run every task ``runs`` times; never raises for a failed run (it is recorded).

        A connection failure (server down) stops the suite with ``result.error`` set.
        """
        t0 = time.monotonic()
        res = self.result
        res.started = time.time()
        res.tasks = [TaskResult(t) for t in self.tasks]
        res.server = await self._server_label()
        sampler = asyncio.ensure_future(self._sample_metrics()) if self.metrics else None
        try:
            await self._run_all(res)
        finally:
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sampler
                await self._read_metrics()  # the last reading, after the last run
            res.cancelled = self._cancelled
            res.duration_s = time.monotonic() - t0
        return res

    async def _server_label(self) -> str:
        """ "vLLM 0.33.0", "llama.cpp b6000"... for the export; '' when the server says nothing."""
        try:
            info = await self.client.server_info()
        except Exception:  # noqa: BLE001 - a label only: never stops the suite
            return ""
        kind = {"vllm": "vLLM", "llama.cpp": "llama.cpp", "ollama": "Ollama"}.get(info.kind, "")
        return " ".join(x for x in (kind, info.version or "") if x)

    def _total(self) -> int:
        return len(self.tasks) * self.runs

    async def _run_all(self, res: SuiteResult) -> None:
        done = 0
        vision_ok = (
            await self._vision_ok(res) if any(t.kind == "vision" for t in self.tasks) else True
        )
        for tr in res.tasks:
            if self._cancelled:
                tr.skipped = tr.skipped or "Cancelled"
                continue
            if tr.task.kind == "vision" and not vision_ok:
                tr.skipped = "Skipped: text-only model"
                done += self.runs
                self._progress(done, tr, None)
                continue
            if res.error:
                tr.skipped = "Not run: " + res.error
                continue
            try:
                image_url = await self._image_url(tr.task)
            except Exception as exc:  # noqa: BLE001 - a missing sample figure is reported, not raised
                tr.skipped = f"Sample figure unreadable: {exc}"
                done += self.runs
                self._progress(done, tr, None)
                continue
            for i in range(self.runs):
                if self._cancelled:
                    break
                outcome = await self._one_run(tr.task, i, image_url)
                if outcome is None:  # cancelled mid-run: the partial run is not recorded
                    break
                record, fatal = outcome
                tr.runs.append(record)
                done += 1
                self._progress(done, tr, record)
                if fatal:
                    # The server cannot be reached: stop rather than wait out a timeout
                    # on every remaining run.
                    res.error = record.error
                    break
            if self._cancelled and not tr.runs:
                tr.skipped = "Cancelled"

    def _progress(self, done: int, tr: TaskResult, record: RunRecord | None) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(done, self._total(), tr, record))

    async def _vision_ok(self, res: SuiteResult) -> bool:
        if self.vision is not None:
            return self.vision
        try:
            return await self.client.probe_vision(self.model)
        except E.KanoaError:
            # The probe failed for another reason (server down): the first run will say
            # why; assume vision so the error shows on the vision rows, not as a skip.
            return True

    async def _image_url(self, task: BenchTask) -> str | None:
        if task.image is None:
            return None
        path = self.resources_dir / task.image
        # Decoding and re-encoding an image is CPU work: off the caller's thread.
        fig = await asyncio.to_thread(prepare_figure, path, long_side=self.image_long_side)
        return fig.data_url()

    def _request(self, task: BenchTask, image_url: str | None) -> ChatRequest:
        messages = [*task.history, user_message(task.prompt, [image_url] if image_url else [])]
        return ChatRequest(
            model=self.model,
            messages=[dict(m) for m in messages],
            temperature=self.temperature,
            max_tokens=self.max_tokens or task.max_tokens,
            extra=dict(task.extra),
        )

    async def _one_run(
        self, task: BenchTask, index: int, image_url: str | None
    ) -> tuple[RunRecord, bool] | None:
        """The run's record and whether its failure should stop the suite; None when the
        suite was cancelled during the run."""
        request = self._request(task, image_url)
        stats = StreamStats()

        async def consume() -> None:
            async with contextlib.aclosing(self.client.stream_chat(request)) as events:
                async for ev in events:
                    stats.feed(ev)

        self._current = asyncio.ensure_future(consume())
        try:
            await self._current
        except asyncio.CancelledError:
            if self._cancelled:
                return None
            raise
        except E.ConnectionFailed as exc:
            return RunRecord(task.key, index, error=str(exc)), True
        except E.KanoaError as exc:
            return RunRecord(task.key, index, error=str(exc)), False
        finally:
            self._current = None
        rate = stats.tokens_per_s()
        duration = stats.elapsed(stats.t_end) if stats.t_end is not None else None
        if rate is None:
            return RunRecord(
                task.key, index, None, stats.ttft_s, stats.output_tokens, duration,
                error="The answer was too short to measure a rate (fewer than 2 tokens).",
            ), False  # fmt: skip
        return RunRecord(task.key, index, rate, stats.ttft_s, stats.output_tokens, duration), False

    # -- metrics ---------------------------------------------------------------------------

    async def _read_metrics(self) -> None:
        if self.metrics is None:
            return
        try:
            reading = self.metrics()
            if inspect.isawaitable(reading):
                reading = await reading
        except Exception:  # noqa: BLE001 - a metrics failure must never stop the benchmark
            return
        if not isinstance(reading, MetricsReading):
            return
        res = self.result
        if reading.kv_cache_usage is not None:
            res.kv_cache_peak = max(res.kv_cache_peak or 0.0, reading.kv_cache_usage)
        if reading.preemptions_total is not None:
            if self._first_preemptions is None:
                self._first_preemptions = reading.preemptions_total
            res.preemptions = max(0.0, reading.preemptions_total - self._first_preemptions)

    async def _sample_metrics(self) -> None:
        while True:
            await self._read_metrics()
            await asyncio.sleep(self.metrics_interval_s)


# -- metrics from a server's /metrics ----------------------------------------------------

# llama.cpp exports no KV-cache gauge (see shared/reference/servers.md): None there.
_KV_NAMES = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
_PREEMPT_NAMES = ("vllm:num_preemptions_total", "vllm:num_preemptions")


def reading_from_metrics_body(body: str) -> MetricsReading:
    """KV-cache usage (the fullest engine) and total preemptions from a Prometheus body."""
    scrape = parse_scrape(body, time.time())
    kv: float | None = None
    for name in _KV_NAMES:
        vals = [v for _, v in scrape.values(name) if not math.isnan(v)]
        if vals:
            kv = max(vals)
            break
    pre: float | None = None
    for name in _PREEMPT_NAMES:
        vals = [v for _, v in scrape.values(name) if not math.isnan(v)]
        if vals:
            pre = sum(vals)
            break
    return MetricsReading(kv, pre)


def scraping_reader(url: str, http: httpx.AsyncClient, timeout_s: float = 2.0) -> MetricsReader:
    """A metrics reader that scrapes ``url``; a failed scrape reads as None."""

    async def read() -> MetricsReading | None:
        try:
            resp = await fetch_metrics(http, url, timeout_s=timeout_s)  # capped, deadlined
        except (httpx.HTTPError, MetricsBodyError):
            return None
        if resp.status_code != 200:
            return None
        try:
            return reading_from_metrics_body(resp.text)
        except MetricsBodyError:
            return None

    return read


# -- output --------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def benchmark_document(result: SuiteResult, *, hardware: str = "", accuracy: str = "") -> Document:
    """The results as a report in the layout of kanoa's docs.

    A bold title line ("**MODEL Statistics** (N-run benchmark on HARDWARE):"), the table
    ``| Test | Mean (tok/s) | StdDev | Min | Max | Mean TTFT (s) | Notes |`` with one bold
    row per task and an ``Overall Average`` row whose note is its CV, then a line with the
    KV-cache peak and preemptions when a metrics reader gave them; ``accuracy`` is the
    accuracy pass's line (:meth:`~kanoa_desktop.core.bench.accuracy.AccuracyPass.line`).
    """
    on = f" on {hardware}" if hardware else ""
    rows = []
    for tr in result.tasks:
        s = tr.summary
        if s is None:
            note = tr.skipped or (tr.runs[0].error if tr.runs else "Not run")
            rows.append([tr.task.label, "—", "—", "—", "—", "—", note])
            continue
        note = variance_note(s)
        if tr.failures:
            note += f" ({tr.failures} of {len(tr.runs)} runs failed)"
        rows.append([tr.task.label, _f(s.mean), _f(s.std), _f(s.min), _f(s.max),
                     _f(tr.mean_ttft_s, 2), note])  # fmt: skip
    o = result.overall
    if o is not None:
        cv = f"{o.cv * 100:.0f}% CV" if o.cv is not None else ""
        rows.append(["Overall Average", _f(o.mean), _f(o.std), _f(o.min), _f(o.max),
                     _f(result.mean_ttft_s, 2), cv])  # fmt: skip
    extras = []
    if result.kv_cache_peak is not None:
        extras.append(f"KV cache peak {result.kv_cache_peak * 100:.1f}%")
    if result.preemptions is not None:
        extras.append(f"preemptions {result.preemptions:.0f}")
    if result.cancelled:
        extras.append("cancelled before the end")
    if result.error:
        extras.append(f"stopped: {result.error}")
    headers = ("Test", "Mean (tok/s)", "StdDev", "Min", "Max", "Mean TTFT (s)", "Notes")
    return Document("").add(
        Paragraph(f"({result.runs}-run benchmark{on}):", lead=f"{result.model} Statistics"),
        Table(headers, rows, first_column="b"),
        Paragraph("; ".join(extras) + ".", style="em") if extras else None,
        Paragraph(accuracy) if accuracy else None,
        Paragraph(provenance_line(result), style="em"),
    )


def provenance_line(result: SuiteResult) -> str:
    """When, against which server (address, kind and version) and with which kanoa desktop
    the suite ran: what makes an exported table comparable with another."""
    from kanoa_desktop import __version__

    when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(result.started)).strip()
    server = f" ({result.server})" if result.server else ""
    return (
        f"Run {when} against {result.api_base}{server}, model {result.model}, "
        f"{result.runs} run(s) per task, {result.duration_s:.0f} s; kanoa desktop {__version__}."
    )


def to_markdown(result: SuiteResult, *, hardware: str = "", accuracy: str = "") -> str:
    """The results as Markdown (:func:`benchmark_document`), as the dialog shows and
    exports it and ``bench-endpoint`` prints it."""
    return markdown_text(benchmark_document(result, hardware=hardware, accuracy=accuracy))


def export_benchmark(
    result: SuiteResult, path: Path | str, *, hardware: str = "", accuracy: str = ""
) -> Path:
    """Write the results as Markdown to ``path`` (the one report writer); raises
    :class:`~kanoa_desktop.core.reports.writer.ReportError` saying why it could not."""
    return write(benchmark_document(result, hardware=hardware, accuracy=accuracy), path, "md")
