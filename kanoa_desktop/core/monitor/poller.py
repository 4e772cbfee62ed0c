"""Poll a server's ``/metrics`` on an interval and report what the user should see.

:class:`MetricsPoller` scrapes one URL with ``httpx.AsyncClient``, parses and derives off
the event loop's thread, optionally reads local GPUs, and reports :class:`MetricsUpdate`
values through callbacks or an async iterator. It says in words whether the numbers are
live, stale, or why there are none (unreachable, no metrics endpoint, not Prometheus), and
backs off while the server does not answer. Works on any asyncio loop (qasync included).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from kanoa_desktop.core.endpoint.bodies import CappedTransport
from kanoa_desktop.core.monitor.gpu import EnergyMeter, GpuReading, LocalGpuReader, NvmlUnavailable
from kanoa_desktop.core.monitor.metrics import (
    METRICS_BODY_CAP,
    MetricsBodyError,
    MetricsDeriver,
    ServerKind,
    ServerMetrics,
    fetch_metrics,
    parse_scrape,
)
from kanoa_desktop.core.monitor.pacing import Paced

__all__ = [
    "MetricsPoller",
    "MetricsUpdate",
    "PollState",
    "RequestSpan",
    "ServerTimings",
]


# How long request spans are kept for the panel's plots.
SPAN_HISTORY_S = 300.0


class PollState(StrEnum):
    """Where the numbers stand."""

    WAITING = "waiting"  # no scrape finished yet
    LIVE = "live"
    STALE = "stale"  # the latest scrape failed but a good one is recent
    UNREACHABLE = "unreachable"
    NO_ENDPOINT = "no_endpoint"  # 404 / 501: the server publishes no metrics
    BAD_BODY = "bad_body"  # 200 but not Prometheus text (or empty)


@dataclass(frozen=True)
class RequestSpan:
    """One answer's time on the monotonic clock; ``end`` is None while it streams.
    ``energy_wh`` is the local GPUs' energy over the span when NVML gave power readings."""

    start: float
    end: float | None = None
    energy_wh: float | None = None


@dataclass(frozen=True)
class ServerTimings:
    """llama.cpp's own account of one answer: the ``timings`` object of its last stream
    chunk (``prompt_n``, ``prompt_per_second``, ``predicted_n``, ``predicted_per_second``,
    ``cache_n``). ``None`` where the server did not say."""

    prompt_tokens: int | None = None
    prompt_per_s: float | None = None
    generated_tokens: int | None = None
    generation_per_s: float | None = None
    cached_tokens: int | None = None

    @classmethod
    def from_timings(cls, timings: Mapping[str, Any] | None) -> ServerTimings | None:
        """From a response's ``timings`` dict; None when it has no usable figure."""
        if not isinstance(timings, Mapping):
            return None

        def num(key: str) -> float | None:
            value = timings.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return float(value) if math.isfinite(value) and value >= 0 else None

        def count(key: str) -> int | None:
            value = num(key)
            return int(value) if value is not None else None

        found = cls(
            prompt_tokens=count("prompt_n"),
            prompt_per_s=num("prompt_per_second"),
            generated_tokens=count("predicted_n"),
            generation_per_s=num("predicted_per_second"),
            cached_tokens=count("cache_n"),
        )
        return found if found != cls() else None


@dataclass(frozen=True)
class MetricsUpdate:
    """One report. ``message`` is the state line the user reads.

    ``snapshot`` is the latest good :class:`ServerMetrics` (kept while stale, None when no
    scrape ever succeeded). ``gpus`` is the local GPU reading of this poll, an
    :class:`NvmlUnavailable`, or None when the poller reads no local GPUs.
    """

    state: PollState
    message: str
    url: str
    timestamp: float
    snapshot: ServerMetrics | None = None
    last_good_age_s: float | None = None
    gpus: tuple[GpuReading, ...] | NvmlUnavailable | None = None
    request_active: bool = False
    requests: tuple[RequestSpan, ...] = ()
    # llama.cpp: the token rates come from /slots (tokens decoded so far by running
    # requests) as well as the counters, which move only when a request ends.
    live_from_slots: bool = False
    last_answer: ServerTimings | None = None  # the last answer's own timings


_SLOTS_CAP = 4 * 1024 * 1024  # a /slots body without prompt texts is a few kB


def _slot_number(slot: Mapping[str, Any], key: str) -> float:
    value = slot.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return max(float(value), 0.0)


def _slot_decoded(slot: Mapping[str, Any]) -> float:
    """``n_decoded`` of a slot: under ``next_token`` (a list in recent llama.cpp, an object
    in older ones) or at the top level in the oldest."""
    token = slot.get("next_token")
    if isinstance(token, list):
        return sum(_slot_number(t, "n_decoded") for t in token if isinstance(t, Mapping))
    if isinstance(token, Mapping):
        return _slot_number(token, "n_decoded")
    return _slot_number(slot, "n_decoded")


def _describe_transport_error(url: str, err: httpx.HTTPError) -> tuple[str, bool]:
    """A plain reason for a failed request and whether it is definite (nothing listening)."""
    parts = urlsplit(url)
    where = parts.netloc or url
    text = str(err) or type(err).__name__
    if isinstance(err, httpx.TimeoutException):
        return f"{where} did not answer in time", False
    if isinstance(err, httpx.ConnectError):
        # httpx words it "All connection attempts failed"; the OS error is in the chain.
        causes = []
        cause: BaseException | None = err
        while cause is not None and len(causes) < 8:
            causes.append(cause)
            cause = cause.__cause__ or cause.__context__
        if any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in text.lower():
            return (
                f"nothing is listening at {where} (connection refused): is the server running?",
                True,
            )
        if "name" in text.lower() and ("resolve" in text.lower() or "known" in text.lower()):
            return f"the host name in {where} cannot be found: check the URL", True
        return f"cannot connect to {where} ({text})", True
    return f"the connection to {where} failed ({text})", False


def _no_endpoint_message(url: str, status: int) -> str:
    if status == 501:
        return (
            f"No metrics endpoint: {url} answered 501 (metrics are switched off). "
            "Start llama-server with --metrics to enable them."
        )
    return (
        f"No metrics endpoint: {url} answered 404. vLLM serves /metrics by default; "
        "llama-server needs --metrics; Ollama and llama-cpp-python's server publish none."
    )


class MetricsPoller(Paced[MetricsUpdate]):
    """Scrapes ``url`` every ``interval_s`` seconds and reports :class:`MetricsUpdate`.

    - ``await run()`` polls until ``stop()``/``aclose()``; ``poll_once()`` does one poll.
    - ``on_update`` callbacks (``add_listener``) run on the loop's thread, so a Qt widget on
      a qasync loop may update itself from them. ``updates()`` is an async iterator.
    - ``pause()`` / ``resume()``: no requests while paused; ``resume()`` polls at once.
    - While the server fails to answer the delay doubles up to ``max_backoff_s``.
    - ``mark_request("start"|"end")`` records when an answer streams (shown as spans) and
      polls at once. ``interval_s`` applies while an answer streams; between answers the
      poller waits ``idle_interval_s`` (default: the same), which the window sets longer
      (and longer still while it is minimised) so an idle app costs next to no CPU.
    - ``gpu_reader``: an object with ``read()`` (a :class:`LocalGpuReader`); read in a
      worker thread each poll. Pass ``read_gpus=True`` to create one.
    """

    def __init__(
        self,
        url: str,
        *,
        interval_s: float = 1.0,
        idle_interval_s: float | None = None,
        timeout_s: float = 2.0,
        max_backoff_s: float = 30.0,
        stale_after_s: float = 10.0,
        deriver: MetricsDeriver | None = None,
        client: httpx.AsyncClient | None = None,
        gpu_reader: LocalGpuReader | None = None,
        read_gpus: bool = False,
        on_update: Callable[[MetricsUpdate], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        dcgm_url: str | None = None,
    ) -> None:
        self.url = url
        # A remote server's GPU from its DCGM exporter, scraped beside the server's metrics.
        self.dcgm_url = dcgm_url or None
        self._dcgm_deriver = MetricsDeriver()
        self.interval_s = interval_s
        self.idle_interval_s = interval_s if idle_interval_s is None else idle_interval_s
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.stale_after_s = stale_after_s
        self.deriver = deriver if deriver is not None else MetricsDeriver()
        self._client = client
        self._owns_client = client is None
        self._gpu_reader = (
            gpu_reader if gpu_reader is not None else (LocalGpuReader() if read_gpus else None)
        )
        self._owns_gpu_reader = gpu_reader is None and read_gpus
        self._clock = clock
        super().__init__(on_update)
        self._queues: list[asyncio.Queue[MetricsUpdate | None]] = []
        self._failures = 0
        self._last_good: ServerMetrics | None = None
        self._last_good_at: float | None = None
        self._latest: MetricsUpdate | None = None
        self._spans: deque[RequestSpan] = deque()
        self._active: RequestSpan | None = None
        self._energy: EnergyMeter | None = None
        # llama.cpp live figures (see _with_slots).
        self._slots_url = (
            url[: -len("/metrics")] + "/slots" if url.rstrip().endswith("/metrics") else None
        )
        self._slots_off = False
        self._slots_in_flight = False
        self._slots_live = False
        self._llama_counters: tuple[float, float] = (0.0, 0.0)
        self._live_point: tuple[float, float, float] | None = None
        self._last_counters: tuple[float, float] | None = None
        self._slot_tasks: dict[tuple[Any, Any], tuple[float, float]] = {}
        self._pending: tuple[float, float] = (0.0, 0.0)
        self._last_timings: ServerTimings | None = None

    # -- listeners

    async def updates(self) -> AsyncIterator[MetricsUpdate]:
        """Every update from now on, until the poller stops."""
        queue: asyncio.Queue[MetricsUpdate | None] = asyncio.Queue()
        self._queues.append(queue)
        try:
            while (update := await queue.get()) is not None:
                yield update
        finally:
            self._queues.remove(queue)

    def _emit(self, update: MetricsUpdate) -> None:
        self._latest = update
        self._tell(update)
        for queue in self._queues:
            queue.put_nowait(update)

    @property
    def latest(self) -> MetricsUpdate | None:
        return self._latest

    # -- request markers

    def mark_request(
        self,
        event: Literal["start", "end"],
        *,
        timings: Mapping[str, Any] | None = None,
    ) -> RequestSpan | None:
        """Mark that an answer started or finished streaming.

        ``"end"`` returns the finished :class:`RequestSpan` (with its energy when NVML power
        readings came in meanwhile); ``"start"`` returns None. ``timings``: the answer's
        ``Usage.server_timings`` (llama.cpp's ``timings``), shown as the last answer's speed.
        """
        now = self._clock()
        if timings is not None:
            self.record_timings(timings)
        if event in ("start", "end"):
            self._poke()  # poll now: the panel shows the start (or end) at once
        if event == "start":
            self._active = RequestSpan(start=now)
            self._energy = EnergyMeter()
            return None
        if event != "end":
            raise ValueError(f"mark_request takes 'start' or 'end', not {event!r}")
        if self._active is None:
            return None
        energy = self._energy
        wh = energy.wh if energy is not None and energy.duration_s > 0 else None
        span = RequestSpan(start=self._active.start, end=now, energy_wh=wh)
        self._active = None
        self._energy = None
        self._spans.append(span)
        return span

    def record_timings(self, timings: Mapping[str, Any] | None) -> ServerTimings | None:
        """Keep an answer's own llama.cpp ``timings`` (``Usage.server_timings``) to show as
        the last answer's speed; returns what was kept (None: nothing usable)."""
        found = ServerTimings.from_timings(timings)
        if found is not None:
            self._last_timings = found
        return found

    def _request_spans(self, now: float) -> tuple[RequestSpan, ...]:
        while self._spans and (self._spans[0].end or now) < now - SPAN_HISTORY_S:
            self._spans.popleft()
        spans = tuple(self._spans)
        return spans + ((self._active,) if self._active is not None else ())

    # -- polling

    def _new_client(self) -> httpx.AsyncClient:
        # Every body capped and deadlined (/metrics, /slots, DCGM), and kept-alive
        # connections short-lived with a retry on a stale one: see core/endpoint/bodies.
        # The transport's cap is a backstop above fetch_metrics' own, whose message says
        # which page was too large.
        return httpx.AsyncClient(
            timeout=self.timeout_s,
            transport=CappedTransport(
                max_body_bytes=2 * METRICS_BODY_CAP, deadline_s=max(3 * self.timeout_s, 10.0)
            ),
        )

    def _client_or_new(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    async def _read_gpus(self) -> tuple[GpuReading, ...] | NvmlUnavailable | None:
        if self._gpu_reader is None:
            return None
        result = await asyncio.to_thread(self._gpu_reader.read)
        if isinstance(result, NvmlUnavailable):
            return result
        if self._energy is not None:
            power = [r.power_w for r in result if r.power_w is not None]
            if power:
                self._energy.add(self._clock(), sum(power))
        return tuple(result)

    def _derive(self, body: str, at: float) -> ServerMetrics:
        scrape = parse_scrape(body, at)
        # Counters the /slots reading adds to (llama.cpp moves them only at a request's end).
        self._llama_counters = (
            sum(v for _, v in scrape.values("llamacpp:tokens_predicted_total")),
            sum(v for _, v in scrape.values("llamacpp:prompt_tokens_total")),
        )
        return self.deriver.update(scrape)

    async def _with_slots(self, snapshot: ServerMetrics, at: float) -> ServerMetrics:
        """llama.cpp: token rates that move while an answer streams.

        Its counters only move when a request ends, so the rates read 0 during an answer
        and spike after it. Adding what running requests decoded so far (``/slots``:
        ``next_token.n_decoded``, ``n_prompt_tokens_processed`` of processing slots) makes a
        total that grows smoothly; the rates are that total's change between polls.

        A finished request's slot is released (its counts reset) a moment before the
        counters take its tokens (seen here), so its last counts are kept as *pending*
        until the counters have grown by as much: the total never steps back and forth.
        ``/slots`` is asked only while a request runs (or just ran): idle costs nothing.
        """
        self._slots_live = False
        if snapshot.kind is not ServerKind.LLAMACPP or self._slots_url is None:
            self._live_point = None
            return snapshot
        busy = self._active is not None or bool(snapshot.requests_running) or self._slots_in_flight
        counted = self._llama_counters
        last = self._last_counters
        self._last_counters = counted
        if last is not None and (counted[0] < last[0] or counted[1] < last[1]):
            # The server restarted: nothing before compares.
            self._slot_tasks, self._pending, self._live_point = {}, (0.0, 0.0), None
            last = None
        processing: int | None = None
        in_flight = (0.0, 0.0)
        if busy and not self._slots_off:
            slots = await self._read_slots()
            if slots is not None:
                tasks: dict[tuple[Any, Any], tuple[float, float]] = {}
                for slot in slots:
                    if isinstance(slot, Mapping) and slot.get("is_processing"):
                        tasks[(slot.get("id"), slot.get("id_task"))] = (
                            _slot_decoded(slot),
                            _slot_number(slot, "n_prompt_tokens_processed"),
                        )
                processing = len(tasks)
                in_flight = (
                    sum(g for g, _ in tasks.values()),
                    sum(p for _, p in tasks.values()),
                )
                # Requests that finished since the last read: pending until counted.
                ended = [v for k, v in self._slot_tasks.items() if k not in tasks]
                self._pending = (
                    self._pending[0] + sum(g for g, _ in ended),
                    self._pending[1] + sum(p for _, p in ended),
                )
                self._slot_tasks = tasks
                self._slots_in_flight = processing > 0
        if last is not None:
            grown = (counted[0] - last[0], counted[1] - last[1])
            self._pending = (
                max(self._pending[0] - grown[0], 0.0),
                max(self._pending[1] - grown[1], 0.0),
            )
        generated = counted[0] + in_flight[0] + self._pending[0]
        prompted = counted[1] + in_flight[1] + self._pending[1]
        previous, self._live_point = self._live_point, (at, generated, prompted)
        if previous is None or not at > previous[0]:
            return snapshot
        elapsed = at - previous[0]
        self._slots_live = processing is not None
        changes: dict[str, Any] = {
            "generation_tokens_per_s": max(generated - previous[1], 0.0) / elapsed,
            "prompt_tokens_per_s": max(prompted - previous[2], 0.0) / elapsed,
        }
        if processing is not None:
            changes["requests_running"] = float(processing)
        return replace(snapshot, **changes)

    async def _read_slots(self) -> list[Any] | None:
        try:
            resp = await self._client_or_new().get(self._slots_url, timeout=self.timeout_s)
        except httpx.HTTPError:
            return None
        if resp.status_code in (404, 501):
            self._slots_off = True  # started with --no-slots: never ask again
            return None
        if resp.status_code != 200 or len(resp.content) > _SLOTS_CAP:
            return None
        try:
            data = resp.json()
        except ValueError:
            return None
        return data if isinstance(data, list) else None

    async def _with_dcgm(self, snapshot: ServerMetrics, at: float) -> ServerMetrics:
        """Add the DCGM exporter's GPUs (and their warnings) to the server's snapshot.

        A DCGM failure never hides the server's metrics: it becomes one warning."""
        if not self.dcgm_url:
            return snapshot
        problem: str | None = None
        try:
            resp = await fetch_metrics(
                self._client_or_new(), self.dcgm_url, timeout_s=self.timeout_s
            )
            if resp.status_code != 200:
                problem = f"answered HTTP {resp.status_code}"
            else:
                dcgm = await asyncio.to_thread(
                    lambda: self._dcgm_deriver.update(parse_scrape(resp.text, at))
                )
                if not dcgm.gpus:
                    problem = "sent no DCGM_FI_DEV_* readings"
                else:
                    return replace(
                        snapshot,
                        gpus=dcgm.gpus,
                        warnings=snapshot.warnings + tuple(dcgm.warnings),
                    )
        except httpx.HTTPError as err:
            problem = _describe_transport_error(self.dcgm_url, err)[0]
        except MetricsBodyError as err:
            problem = str(err)
        return replace(
            snapshot,
            warnings=snapshot.warnings + (f"DCGM exporter {self.dcgm_url}: {problem}.",),
        )

    async def poll_once(self) -> MetricsUpdate:
        """Scrape once, update the state, notify listeners and return the update."""
        started = self._clock()
        if self._client is None:
            # Its TLS context reads the CA bundle (tens of ms; more on a busy machine): made
            # on a worker thread, so the first poll never stalls a GUI on this loop.
            self._client = await asyncio.to_thread(self._new_client)
        gpus_task = asyncio.ensure_future(self._read_gpus())
        try:
            failure: tuple[PollState, str, bool] | None = None
            try:
                # Capped and deadlined: an endless or dripped body cannot grow or hang us.
                response = await fetch_metrics(
                    self._client_or_new(), self.url, timeout_s=self.timeout_s
                )
            except httpx.HTTPError as err:
                reason, definite = _describe_transport_error(self.url, err)
                failure = (PollState.UNREACHABLE, reason, definite)
            except MetricsBodyError as err:
                failure = (PollState.BAD_BODY, str(err), True)
            else:
                if response.status_code in (404, 501):
                    failure = (
                        PollState.NO_ENDPOINT,
                        _no_endpoint_message(self.url, response.status_code),
                        True,
                    )
                elif response.status_code != 200:
                    hint = (
                        " (it may still be loading the model)"
                        if response.status_code == 503
                        else ""
                    )
                    failure = (
                        PollState.UNREACHABLE,
                        f"the server answered HTTP {response.status_code}{hint}",
                        False,
                    )
                else:
                    try:
                        # Parsing is CPU work: keep it off the loop's (GUI) thread.
                        snapshot = await asyncio.to_thread(self._derive, response.text, started)
                        snapshot = await self._with_slots(snapshot, started)
                        snapshot = await self._with_dcgm(snapshot, started)
                    except MetricsBodyError as err:
                        failure = (PollState.BAD_BODY, str(err), True)
            gpus = await gpus_task
        finally:
            # Cancelled mid-poll (the panel closed): do not leave the NVML read pending.
            if not gpus_task.done():
                gpus_task.cancel()
        now = self._clock()
        spans = self._request_spans(now)
        if failure is None:
            self._failures = 0
            self._last_good, self._last_good_at = snapshot, now
            message = "Live"
            if snapshot.kind is ServerKind.UNKNOWN:
                message = (
                    "Live, but the server publishes no vLLM or llama.cpp metrics "
                    "(vLLM started with --disable-log-stats?)"
                )
            update = MetricsUpdate(
                PollState.LIVE,
                message,
                self.url,
                now,
                snapshot,
                0.0,
                gpus,
                self._active is not None,
                spans,
                self._slots_live,
                self._last_timings,
            )
        else:
            self._failures += 1
            state, reason, definite = failure
            age = now - self._last_good_at if self._last_good_at is not None else None
            if (
                state is PollState.UNREACHABLE
                and not definite
                and age is not None
                and age < self.stale_after_s
            ):
                state = PollState.STALE
                message = f"Stale: last good scrape {age:.0f} s ago ({reason})"
            elif state is PollState.UNREACHABLE:
                message = f"Unreachable: {reason}"
            else:
                message = reason
            update = MetricsUpdate(
                state,
                message,
                self.url,
                now,
                self._last_good,
                age,
                gpus,
                self._active is not None,
                spans,
                self._slots_live,
                self._last_timings,
            )
        self._emit(update)
        return update

    def next_delay_s(self) -> float:
        """Seconds until the next poll: ``interval_s`` while an answer streams, else
        ``idle_interval_s``; doubled per consecutive failure."""
        base = self.interval_s if self._active is not None else self.idle_interval_s
        if self._failures == 0:
            return base
        return min(base * 2.0**self._failures, max(self.max_backoff_s, base))

    async def run(self) -> None:
        """Poll until :meth:`stop` or :meth:`aclose`. Safe to start with ensure_future."""
        self._begin()
        try:
            while not self._stopped:
                if self._paused:
                    await self._wait(None)
                    continue
                await self.poll_once()
                await self._wait(self.next_delay_s())
        finally:
            for queue in self._queues:
                queue.put_nowait(None)

    async def aclose(self) -> None:
        """Stop, close the HTTP client (if the poller made it) and shut NVML down."""
        self.stop()
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._owns_gpu_reader and self._gpu_reader is not None:
            await asyncio.to_thread(self._gpu_reader.close)
