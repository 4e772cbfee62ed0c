"""Model-server metrics: parse a Prometheus ``/metrics`` body and derive what a user reads.

Two steps, both plain functions/objects that a thread pool, the command line or a test can
drive:

- :func:`parse_scrape` turns one text body into a :class:`Scrape` (samples indexed by name).
  It raises :class:`MetricsBodyError` (a plain-language message) when the body is not
  Prometheus text.
- :class:`MetricsDeriver` takes successive scrapes and returns a frozen
  :class:`ServerMetrics` snapshot: gauges as read, counters as rates between scrapes,
  histogram quantiles over the last minute, and warnings a user can act on.

Servers understood: vLLM (``vllm:*``, old and new names, with or without the ``engine``
label and the ``_created`` families), llama.cpp ``llama-server`` (``llamacpp:*``) and the
NVIDIA DCGM exporter (``DCGM_FI_DEV_*``). A value the body does not give is ``None``,
never a pretend ``0``.

Hostile or broken bodies: a sample whose value is NaN, infinite or negative is dropped
(its metric reads as unknown, never "inf %" and never a crash); a series repeated with the
same name and labels counts once (the first), never summed; :func:`fetch_metrics` reads at
most :data:`METRICS_BODY_CAP` bytes within an overall deadline, and :func:`parse_scrape`
parses at most :data:`MAX_METRICS_LINES` lines (a body with more is refused whole).
"""

from __future__ import annotations

import asyncio
import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

# httpx and the Prometheus parser load with the first scrape (on a worker thread in the
# app), not with the window: the GPU panel only needs the types below to start.
if TYPE_CHECKING:
    import httpx

__all__ = [
    "METRICS_BODY_CAP",
    "DcgmGpu",
    "MetricsBodyError",
    "MetricsBodyTooLarge",
    "MetricsResponse",
    "fetch_metrics",
    "MetricsDeriver",
    "Scrape",
    "ServerKind",
    "ServerMetrics",
    "histogram_quantile",
    "parse_scrape",
]

# Thresholds behind the warnings; shared with the GPU module's local readings.
KV_CACHE_WARN_FRACTION = 0.90
VRAM_WARN_FRACTION = 0.95
TEMPERATURE_WARN_C = 85.0


def gpu_health_warnings(
    label: str, memory_fraction: float | None, temperature_c: float | None
) -> list[str]:
    """Sentences for a GPU's memory nearly full or a high temperature, whether the reading
    came from local NVML or a remote DCGM exporter."""
    found: list[str] = []
    if memory_fraction is not None and memory_fraction > VRAM_WARN_FRACTION:
        found.append(
            f"{label} memory is {memory_fraction:.0%} full: a larger image or context may "
            "fail to load. Close other programs using the GPU or use a smaller model."
        )
    if temperature_c is not None and temperature_c >= TEMPERATURE_WARN_C:
        found.append(
            f"{label} is at {temperature_c:.0f} °C: it may slow itself down to cool. "
            "Check the fans and airflow."
        )
    return found


class ServerKind(StrEnum):
    """What published the body, from its metric names."""

    VLLM = "vllm"
    LLAMACPP = "llamacpp"
    DCGM = "dcgm"
    UNKNOWN = "unknown"


class MetricsBodyError(ValueError):
    """The body is not Prometheus text. ``str(err)`` is a sentence a user can read."""


class MetricsBodyTooLarge(MetricsBodyError):
    """The body passed :data:`METRICS_BODY_CAP`; reading stopped there."""


# A vLLM body is ~100 KB (a few MB with many LoRA adapters); anything past this is a
# server or proxy sending without end.
METRICS_BODY_CAP = 16 * 1024 * 1024
# ... and lines: a vLLM body has ~650, one with many engines and adapters tens of
# thousands. Each parsed sample is a few hundred bytes of Python objects: 16 MB of short
# lines would be millions of them, so a body with more lines is not parsed.
MAX_METRICS_LINES = 50_000


@dataclass(frozen=True)
class MetricsResponse:
    """A capped ``/metrics`` reply: the status and, for 200, the body as text."""

    status_code: int
    text: str


async def fetch_metrics(
    http: httpx.AsyncClient, url: str, *, timeout_s: float, cap: int = METRICS_BODY_CAP
) -> MetricsResponse:
    """GET ``url`` with a per-read ``timeout_s`` and an overall deadline of
    ``max(3 * timeout_s, 10)`` seconds (so a body dripped byte by byte still ends), reading
    at most ``cap`` bytes of a 200 body (other statuses' bodies are not read).

    Raises ``httpx.ReadTimeout`` at the deadline (like any other transport error) and
    :class:`MetricsBodyTooLarge` past the cap. Redirects are not followed."""
    import httpx

    from kanoa_desktop.core.endpoint.client import read_capped
    from kanoa_desktop.core.endpoint.errors import BodyTooLarge

    budget = max(3.0 * timeout_s, 10.0)
    try:
        async with asyncio.timeout(budget) as cm:
            async with http.stream("GET", url, timeout=timeout_s, follow_redirects=False) as resp:
                if resp.status_code != 200:
                    return MetricsResponse(resp.status_code, "")
                try:
                    body = await read_capped(resp, cap, "metrics page")
                except BodyTooLarge as exc:
                    raise _too_large(url, cap) from exc
                return MetricsResponse(200, body.decode(resp.encoding or "utf-8", "replace"))
    except TimeoutError:
        if cm.expired():
            raise httpx.ReadTimeout(
                f"the metrics page took more than {budget:.0f} s to arrive"
            ) from None
        raise


def _too_large(url: str, cap: int) -> MetricsBodyTooLarge:
    return MetricsBodyTooLarge(
        f"The metrics page at {url} is larger than {cap // (1024 * 1024)} MB; kanoa desktop "
        "stopped reading it. Check that the URL points at the model server's /metrics."
    )


# --- parsing -----------------------------------------------------------------------------

# Families the deriver reads. Only their lines reach prometheus_client's parser: the
# reference vLLM body has 644 lines, most of them histograms nobody shows, and the pure
# Python parser costs ~13 µs a line. Filtering first keeps a 1 s poll far below 1 % of a core.
_VLLM_FAMILIES = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "vllm:prompt_tokens",
    "vllm:generation_tokens",
    "vllm:num_preemptions",
    "vllm:prefix_cache_queries",
    "vllm:prefix_cache_hits",
    "vllm:gpu_prefix_cache_queries",
    "vllm:gpu_prefix_cache_hits",
    "vllm:request_success",
    "vllm:time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds",
    "vllm:time_per_output_token_seconds",
    "vllm:e2e_request_latency_seconds",
    # Newer vLLM: prompt tokens by source, waiting requests by reason, prefill work.
    "vllm:prompt_tokens_by_source",
    "vllm:num_requests_waiting_by_reason",
    "vllm:request_prefill_kv_computed_tokens",
)
_SUFFIXES = ("", "_total", "_bucket", "_count", "_sum")
_WANTED_NAMES = frozenset(f + s for f in _VLLM_FAMILIES for s in _SUFFIXES)
_WANTED_PREFIXES = ("llamacpp:", "DCGM_FI_DEV_")

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Scrape:
    """One parsed body.

    ``timestamp`` is the caller's ``time.monotonic()`` at the scrape (rates use it).
    ``samples`` maps a sample name (``vllm:prompt_tokens_total``, ``..._bucket``) to its
    ``(labels, value)`` pairs, values always ``float``. ``kind`` says which server it is.
    """

    timestamp: float
    samples: Mapping[str, Sequence[tuple[Labels, float]]]
    kind: ServerKind

    def values(self, name: str) -> Sequence[tuple[Labels, float]]:
        """The ``(labels, value)`` pairs of one sample name; empty when absent."""
        return self.samples.get(name, ())


def _sample_name(line: str) -> str:
    brace = line.find("{")
    space = line.find(" ")
    if brace == -1:
        return line if space == -1 else line[:space]
    if space == -1 or brace < space:
        return line[:brace]
    return line[:space]


def _wanted(name: str) -> bool:
    return name in _WANTED_NAMES or name.startswith(_WANTED_PREFIXES)


def _prefilter(body: str) -> str:
    kept: list[str] = []
    for line in body.splitlines():
        if not line:
            continue
        if line[0] == "#":
            # Keep the TYPE lines of wanted families (the parser needs them to group
            # histogram samples); HELP text is never shown.
            if line.startswith("# TYPE "):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and _wanted(parts[2]):
                    kept.append(line)
            continue
        if _wanted(_sample_name(line)):
            kept.append(line)
    kept.append("")
    return "\n".join(kept)


def _kind_of(names: Iterable[str]) -> ServerKind:
    for name in names:
        if name.startswith("vllm:"):
            return ServerKind.VLLM
        if name.startswith("llamacpp:"):
            return ServerKind.LLAMACPP
        if name.startswith("DCGM_FI_"):
            return ServerKind.DCGM
    return ServerKind.UNKNOWN


def _first_line(body: str) -> str:
    for line in body.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= 60 else line[:57] + "..."
    return ""


def _parse(text: str) -> dict[str, list[tuple[Labels, float]]]:
    samples: dict[str, list[tuple[Labels, float]]] = {}
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # prometheus_client gives int for integer-looking values (llama.cpp's "36").
            value = float(sample.value)
            if not math.isfinite(value) or value < 0:
                continue  # unknown: never shown as "inf %", never summed into a total
            key = (sample.name, tuple(sorted(sample.labels.items())))
            if key in seen:
                continue  # a repeated series counts once
            seen.add(key)
            samples.setdefault(sample.name, []).append((sample.labels, value))
    return samples


def parse_scrape(body: str, timestamp: float, *, keep_all: bool = False) -> Scrape:
    """Parse one ``/metrics`` body taken at ``timestamp`` (``time.monotonic()``).

    By default only the families the deriver reads are kept (much faster); ``keep_all``
    keeps every sample. A body with none of them is still parsed in full, so that text
    which is not Prometheus at all raises :class:`MetricsBodyError`, while a valid body
    from another exporter gives a scrape of kind ``unknown``.

    Raises :class:`MetricsBodyError` for an empty body or one that is not Prometheus text,
    :class:`MetricsBodyTooLarge` for one of more than ``MAX_METRICS_LINES`` lines.
    CPU only: safe to call from a worker thread.
    """
    if not body.strip():
        raise MetricsBodyError("The metrics answer was empty: the server sent no metrics.")
    lines = body.count("\n")
    if lines > MAX_METRICS_LINES:
        raise MetricsBodyTooLarge(
            f"The metrics page has {lines:,} lines, more than the {MAX_METRICS_LINES:,} "
            "kanoa desktop reads; it was not parsed. Check that the URL points at one model "
            "server's /metrics."
        )
    try:
        samples = {} if keep_all else _parse(_prefilter(body))
        if not samples:
            samples = _parse(body)
    except ValueError as err:
        raise MetricsBodyError(
            "The answer is not Prometheus metrics (it starts with "
            f"{_first_line(body)!r}). Check that the URL points at the server's /metrics."
        ) from err
    return Scrape(timestamp=timestamp, samples=samples, kind=_kind_of(samples))


# --- derived snapshot --------------------------------------------------------------------


@dataclass(frozen=True)
class DcgmGpu:
    """One GPU as a DCGM exporter reports it (a remote server's card)."""

    gpu: str
    name: str | None
    utilization_pct: float | None
    fb_used_mib: float | None
    fb_free_mib: float | None
    temperature_c: float | None
    power_w: float | None

    @property
    def fb_used_fraction(self) -> float | None:
        """Used / (used + free) frame buffer, or None when either is unknown."""
        if self.fb_used_mib is None or self.fb_free_mib is None:
            return None
        total = self.fb_used_mib + self.fb_free_mib
        return self.fb_used_mib / total if total > 0 else None


@dataclass(frozen=True)
class ServerMetrics:
    """What the panel and the ``metrics`` command show, derived from scrapes.

    Rates (``*_per_s``) compare the latest scrape with the previous one; quantiles
    (``*_p50_s``/``*_p95_s``), ``preemptions_per_min`` and ``prefix_cache_hit_rate`` cover
    the last ``window_s`` seconds of scrapes. Every value is ``None`` when the body does not
    give it or too few scrapes exist yet; ``None`` never stands for zero.
    """

    timestamp: float
    kind: ServerKind
    models: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()
    model: str | None = None  # the selected model; None = sum over all
    requests_running: float | None = None
    requests_waiting: float | None = None
    kv_cache_usage: float | None = None  # 0..1, the fullest selected engine
    prompt_tokens_per_s: float | None = None
    generation_tokens_per_s: float | None = None
    # llama.cpp only: tokens per second while busy (its own timers), not per wall second.
    prompt_speed_tok_s: float | None = None
    generation_speed_tok_s: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    itl_p50_s: float | None = None
    itl_p95_s: float | None = None
    e2e_p50_s: float | None = None
    e2e_p95_s: float | None = None
    preemptions_per_min: float | None = None
    prefix_cache_hit_rate: float | None = None  # 0..1 over the window
    prefix_cache_hit_rate_lifetime: float | None = None  # 0..1 since the server started
    finished_reasons: Mapping[str, int] = field(default_factory=dict)
    # Newer vLLM: where the window's prompt tokens came from (local_compute,
    # local_cache_hit, external_kv_transfer: token counts), the share served from the
    # prefix cache, why requests wait (capacity: no KV space; deferred: LoRA budget, KV
    # transfer), and how many tokens each prefill really computed (p50/p95).
    prompt_tokens_by_source: Mapping[str, float] = field(default_factory=dict)
    prompt_cache_share: float | None = None
    waiting_by_reason: Mapping[str, float] = field(default_factory=dict)
    prefill_computed_p50_tokens: float | None = None
    prefill_computed_p95_tokens: float | None = None
    gpus: tuple[DcgmGpu, ...] = ()
    window_s: float | None = None  # seconds actually covered by the windowed values
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (kind as its string, gpus as dicts)."""
        data = asdict(self)
        data["kind"] = str(self.kind)
        data["finished_reasons"] = dict(self.finished_reasons)
        data["prompt_tokens_by_source"] = dict(self.prompt_tokens_by_source)
        data["waiting_by_reason"] = dict(self.waiting_by_reason)
        data["models"] = list(self.models)
        data["engines"] = list(self.engines)
        data["warnings"] = list(self.warnings)
        return data


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Quantile ``q`` (0..1) of a cumulative histogram, as Prometheus' histogram_quantile.

    ``buckets`` are ``(upper_bound, cumulative_count)`` pairs sorted by bound, the last one
    ``+Inf``. Linear interpolation inside the bucket holding the rank; the first bucket
    starts at 0; a rank in the ``+Inf`` bucket returns the highest finite bound. ``None``
    when there are no observations or no ``+Inf`` bucket.
    """
    if not buckets or not math.isinf(buckets[-1][0]):
        return None
    # Counts read from separate lines can be non-monotonic; Prometheus fixes that the same way.
    counts: list[float] = []
    running = 0.0
    for _, count in buckets:
        running = max(running, count)
        counts.append(running)
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    index = bisect_left(counts, rank)
    if index >= len(buckets) - 1:
        return buckets[-2][0] if len(buckets) >= 2 else None
    upper = buckets[index][0]
    if index == 0:
        lower, below = 0.0, 0.0
        if upper <= 0:
            return upper
    else:
        lower, below = buckets[index - 1][0], counts[index - 1]
    in_bucket = counts[index] - below
    if in_bucket <= 0:
        return upper
    return lower + (upper - lower) * ((rank - below) / in_bucket)


# Windowed series: the deriver keeps, per scrape, a vector of these cumulative values.
_HISTOGRAMS = {
    "ttft": ("vllm:time_to_first_token_seconds",),
    "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
    "e2e": ("vllm:e2e_request_latency_seconds",),
    "prefill_computed": ("vllm:request_prefill_kv_computed_tokens",),
}


@dataclass
class _Point:
    timestamp: float
    counters: dict[str, float]
    histograms: dict[str, list[tuple[float, float]]]


def _increase(current: float, base: float) -> float:
    # A counter that went down was reset (server restart): everything counted since is new.
    return current - base if current >= base else current


class MetricsDeriver:
    """Turns successive scrapes of one server into :class:`ServerMetrics` snapshots.

    Stateful and not thread-safe: feed it from one thread (or one task). ``model`` picks
    one ``model_name`` (``None`` sums over all models), ``engine`` one ``engine`` label
    value (``None`` sums over engines). Changing either clears the history, because rates
    and windows of a different selection do not compare.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        engine: str | None = None,
        window_s: float = 60.0,
    ) -> None:
        self._model = model
        self._engine = engine
        self.window_s = window_s
        self._previous: _Point | None = None
        self._ring: deque[_Point] = deque()

    @property
    def model(self) -> str | None:
        return self._model

    @model.setter
    def model(self, value: str | None) -> None:
        if value != self._model:
            self._model = value
            self.reset()

    @property
    def engine(self) -> str | None:
        return self._engine

    @engine.setter
    def engine(self, value: str | None) -> None:
        if value != self._engine:
            self._engine = value
            self.reset()

    def reset(self) -> None:
        """Forget previous scrapes (rates and windows start again)."""
        self._previous = None
        self._ring.clear()

    # -- selection helpers

    def _selected(self, labels: Labels) -> bool:
        if self._model is not None and labels.get("model_name") != self._model:
            return False
        return self._engine is None or labels.get("engine") == self._engine

    def _sum(self, scrape: Scrape, *names: str) -> float | None:
        """Sum over the selected series of the first name present in the body."""
        for name in names:
            values = [v for labels, v in scrape.values(name) if self._selected(labels)]
            if values:
                return sum(values)
        return None  # absent, or no series of the selected model: unknown, not 0

    def _max(self, scrape: Scrape, *names: str) -> float | None:
        for name in names:
            values = [v for labels, v in scrape.values(name) if self._selected(labels)]
            if values:
                return max(values)
        return None

    def _histogram(self, scrape: Scrape, names: Sequence[str]) -> list[tuple[float, float]]:
        for name in names:
            pairs = scrape.values(name + "_bucket")
            if not pairs:
                continue
            by_bound: dict[float, float] = {}
            for labels, value in pairs:
                if self._selected(labels):
                    try:
                        bound = float(labels.get("le", "nan"))
                    except ValueError:
                        continue  # a bucket bound that is not a number: not a bucket
                    by_bound[bound] = by_bound.get(bound, 0.0) + value
            return sorted((b, c) for b, c in by_bound.items() if not math.isnan(b))
        return []

    def _point(self, scrape: Scrape) -> _Point:
        counters: dict[str, float] = {}
        pairs: dict[str, tuple[str, ...]] = {
            "prompt": ("vllm:prompt_tokens_total", "llamacpp:prompt_tokens_total"),
            "generation": ("vllm:generation_tokens_total", "llamacpp:tokens_predicted_total"),
            "prompt_seconds": ("llamacpp:prompt_seconds_total",),
            "generation_seconds": ("llamacpp:tokens_predicted_seconds_total",),
            "preemptions": ("vllm:num_preemptions_total",),
            "prefix_queries": (
                "vllm:prefix_cache_queries_total",
                "vllm:gpu_prefix_cache_queries_total",
            ),
            "prefix_hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
        }
        for key, names in pairs.items():
            value = self._sum(scrape, *names)
            if value is not None:
                counters[key] = value
        for labels, value in scrape.values("vllm:prompt_tokens_by_source_total"):
            if self._selected(labels):
                key = "source:" + labels.get("source", "unknown")
                counters[key] = counters.get(key, 0.0) + value
        histograms = {key: self._histogram(scrape, names) for key, names in _HISTOGRAMS.items()}
        return _Point(scrape.timestamp, counters, {k: v for k, v in histograms.items() if v})

    # -- the snapshot

    def update(self, scrape: Scrape) -> ServerMetrics:
        """Add one scrape (timestamps must increase) and return the snapshot it gives."""
        point = self._point(scrape)
        previous = self._previous
        if previous is not None and not (0 < point.timestamp - previous.timestamp <= self.window_s):
            # A repeated scrape, a clock going backwards, or a long pause (panel hidden):
            # no rate from that pair, and the window starts again.
            previous = None
            self._ring.clear()
        self._previous = point

        ring = self._ring
        ring.append(point)
        # Keep the newest point at or before the window start as the base, drop older ones.
        horizon = point.timestamp - self.window_s
        while len(ring) >= 2 and ring[1].timestamp <= horizon:
            ring.popleft()
        base = ring[0] if len(ring) >= 2 else None

        def rate(key: str) -> float | None:
            if previous is None or key not in point.counters or key not in previous.counters:
                return None
            elapsed = point.timestamp - previous.timestamp
            return _increase(point.counters[key], previous.counters[key]) / elapsed

        def windowed(key: str) -> float | None:
            if base is None or key not in point.counters or key not in base.counters:
                return None
            return _increase(point.counters[key], base.counters[key])

        def quantiles(key: str) -> tuple[float | None, float | None]:
            current = point.histograms.get(key)
            if base is None or current is None:
                return None, None
            old = dict(base.histograms.get(key, ()))
            # The +Inf count going down means the server restarted: all counts are new.
            restarted = current[-1][1] < old.get(math.inf, 0.0)
            delta = [(b, c if restarted else c - old.get(b, 0.0)) for b, c in current]
            return histogram_quantile(0.5, delta), histogram_quantile(0.95, delta)

        window = point.timestamp - base.timestamp if base is not None else None
        preempted = windowed("preemptions")
        preemptions_per_min = (
            preempted * 60.0 / window if preempted is not None and window else None
        )
        queries, hits = windowed("prefix_queries"), windowed("prefix_hits")
        hit_rate = hits / queries if queries and hits is not None else None
        life_q, life_h = point.counters.get("prefix_queries"), point.counters.get("prefix_hits")
        hit_rate_lifetime = life_h / life_q if life_q and life_h is not None else None

        def speed(tokens: str, seconds: str, gauge: str) -> float | None:
            busy = rate(seconds)
            made = rate(tokens)
            if busy and made is not None:
                return made / busy
            if previous is None:
                # First scrape: llama-server's own average since its previous scrape.
                value = self._sum(scrape, gauge)
                return value if value else None
            return None

        ttft, itl, e2e = quantiles("ttft"), quantiles("itl"), quantiles("e2e")
        prefill = quantiles("prefill_computed")
        sources = {
            key[len("source:") :]: value
            for key in point.counters
            if key.startswith("source:") and (value := windowed(key)) is not None
        }
        sourced = sum(sources.values())
        cache_share = sources.get("local_cache_hit", 0.0) / sourced if sourced else None
        waiting_by_reason: dict[str, float] = {}
        for labels, value in scrape.values("vllm:num_requests_waiting_by_reason"):
            if self._selected(labels):
                reason = labels.get("reason", "unknown")
                waiting_by_reason[reason] = waiting_by_reason.get(reason, 0.0) + value
        models = sorted(
            {
                labels["model_name"]
                for pairs in scrape.samples.values()
                for labels, _ in pairs
                if "model_name" in labels
            }
        )
        engines = sorted(
            {
                labels["engine"]
                for pairs in scrape.samples.values()
                for labels, _ in pairs
                if "engine" in labels
            }
        )
        finished: dict[str, int] = {}
        for labels, value in scrape.values("vllm:request_success_total"):
            if self._selected(labels):
                reason = labels.get("finished_reason", "unknown")
                finished[reason] = finished.get(reason, 0) + int(value)

        if scrape.kind is ServerKind.LLAMACPP:
            running = self._sum(scrape, "llamacpp:requests_processing")
            waiting = self._sum(scrape, "llamacpp:requests_deferred")
            prompt_speed = speed("prompt", "prompt_seconds", "llamacpp:prompt_tokens_seconds")
            gen_speed = speed(
                "generation", "generation_seconds", "llamacpp:predicted_tokens_seconds"
            )
        else:
            running = self._sum(scrape, "vllm:num_requests_running")
            waiting = self._sum(scrape, "vllm:num_requests_waiting")
            prompt_speed = gen_speed = None

        snapshot = ServerMetrics(
            timestamp=point.timestamp,
            kind=scrape.kind,
            models=tuple(models),
            engines=tuple(engines),
            model=self._model,
            requests_running=running,
            requests_waiting=waiting,
            kv_cache_usage=self._max(
                scrape, "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"
            ),
            prompt_tokens_per_s=rate("prompt"),
            generation_tokens_per_s=rate("generation"),
            prompt_speed_tok_s=prompt_speed,
            generation_speed_tok_s=gen_speed,
            ttft_p50_s=ttft[0],
            ttft_p95_s=ttft[1],
            itl_p50_s=itl[0],
            itl_p95_s=itl[1],
            e2e_p50_s=e2e[0],
            e2e_p95_s=e2e[1],
            preemptions_per_min=preemptions_per_min,
            prefix_cache_hit_rate=hit_rate,
            prefix_cache_hit_rate_lifetime=hit_rate_lifetime,
            finished_reasons=finished,
            prompt_tokens_by_source=sources,
            prompt_cache_share=cache_share,
            waiting_by_reason=waiting_by_reason,
            prefill_computed_p50_tokens=prefill[0],
            prefill_computed_p95_tokens=prefill[1],
            gpus=_dcgm_gpus(scrape),
            window_s=window,
        )
        return _with_warnings(snapshot, preempted)


def _dcgm_gpus(scrape: Scrape) -> tuple[DcgmGpu, ...]:
    if scrape.kind is not ServerKind.DCGM:
        return ()
    fields = {
        "DCGM_FI_DEV_GPU_UTIL": "utilization_pct",
        "DCGM_FI_DEV_FB_USED": "fb_used_mib",
        "DCGM_FI_DEV_FB_FREE": "fb_free_mib",
        "DCGM_FI_DEV_GPU_TEMP": "temperature_c",
        "DCGM_FI_DEV_POWER_USAGE": "power_w",
    }
    found: dict[str, dict[str, object]] = {}
    for name, attr in fields.items():
        for labels, value in scrape.values(name):
            gpu = labels.get("gpu") or labels.get("UUID") or "0"
            entry = found.setdefault(gpu, {"gpu": gpu, "name": labels.get("modelName")})
            entry[attr] = value
    gpus = []
    for gpu in sorted(found, key=lambda g: (len(g), g)):
        entry = found[gpu]
        gpus.append(
            DcgmGpu(
                **{
                    "utilization_pct": None,
                    "fb_used_mib": None,
                    "fb_free_mib": None,
                    "temperature_c": None,
                    "power_w": None,
                    **entry,
                }
            )
        )  # type: ignore[arg-type]
    return tuple(gpus)


def _count(n: float, noun: str) -> str:
    return f"{n:.0f} {noun}" + ("" if n == 1 else "s")


def _with_warnings(snapshot: ServerMetrics, preempted: float | None) -> ServerMetrics:
    warnings: list[str] = []
    kv = snapshot.kv_cache_usage
    if kv is not None and kv > KV_CACHE_WARN_FRACTION:
        warnings.append(
            f"KV cache is {kv:.0%} full: new requests will wait or be preempted and answers "
            "slow down. Send fewer requests at once, shorten prompts, or give the server "
            "more GPU memory (vLLM --gpu-memory-utilization)."
        )
    if preempted:
        warnings.append(
            f"The server preempted {_count(preempted, 'request')} in the last minute: the KV "
            "cache is too small for the load, so answers restart and slow down. Send fewer "
            "requests at once or lower the maximum context length."
        )
    waiting = snapshot.requests_waiting
    if waiting:
        warnings.append(
            f"{_count(waiting, 'request')} {'is' if waiting == 1 else 'are'} waiting for the "
            "server: answers will start late. "
            "Wait for running requests to finish or send fewer at once."
        )
    for gpu in snapshot.gpus:
        warnings += gpu_health_warnings(f"GPU {gpu.gpu}", gpu.fb_used_fraction, gpu.temperature_c)
    return replace(snapshot, warnings=tuple(warnings)) if warnings else snapshot
