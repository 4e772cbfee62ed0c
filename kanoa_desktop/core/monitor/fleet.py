"""A lab's fleet read from Prometheus: one row per model server, router and GPU.

A lab with several vLLM (or llama.cpp) servers, a vLLM router in front and a Prometheus
server scraping them should not have the app poll every node's ``/metrics``. The fleet view
asks Prometheus for *aggregates* instead, through its HTTP API:

- :meth:`FleetReader.snapshot`: ONE instant query (``POST /api/v1/query``) that joins every
  figure with ``or``, each tagged by ``label_replace`` with a ``kanoa_figure`` label, all
  grouped ``by (instance)``: gauges as read, counters through ``rate()``, latencies through
  ``histogram_quantile()`` over the buckets' rates. The cost does not grow with the size of
  each server's body, only with the number of instances (a few numbers each).
- :meth:`FleetReader.history`: ``query_range`` for the plots (15 min, 1 h, 6 h): the
  history is Prometheus's, not the app's memory.

Old and new vLLM names both work (``kv_cache_usage_perc``/``gpu_cache_usage_perc``,
``inter_token_latency_seconds``/``time_per_output_token_seconds``), llama.cpp servers
through their ``llamacpp:*`` names, vLLM router rows through ``vllm_router_*``, GPU rows
through the DCGM exporter's ``DCGM_FI_DEV_*``. A figure Prometheus does not have is
``None``, never a pretend 0. Plain asyncio + httpx: no Qt.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from kanoa_desktop.core.endpoint.bodies import BodyCapExceeded, CappedTransport, MiB, get_json
from kanoa_desktop.core.endpoint.router import RouterStatus, parse_workers
from kanoa_desktop.core.monitor.metrics import (
    KV_CACHE_WARN_FRACTION,
    DcgmGpu,
    gpu_health_warnings,
)
from kanoa_desktop.core.monitor.pacing import Paced
from kanoa_desktop.core.monitor.poller import _describe_transport_error
from kanoa_desktop.core.safety import JsonTooLarge, escape_control, loads_json_bounded

__all__ = [
    "FIGURES",
    "FleetGpu",
    "FleetPoller",
    "FleetReader",
    "FleetRow",
    "FleetSnapshot",
    "FleetUpdate",
    "PrometheusError",
    "fleet_query",
]


# How many points a history (query_range) asks for.
PLOT_POINTS = 120
# What one Prometheus answer may be: bytes on the wire, and JSON values once parsed
# (counted before parsing). A fleet of 1,000 instances answers about 6 MB and 500,000
# values; 16 MB of tiny objects would be ~1 GB of Python objects.
PROMETHEUS_BODY_CAP = 16 * MiB
MAX_PROMETHEUS_ITEMS = 1_000_000
# A router's /workers list (as core/endpoint/router reads it).
ROUTER_WORKERS_CAP = 4 * MiB
_LABEL = "kanoa_figure"


class PrometheusError(Exception):
    """Prometheus could not be asked or refused. ``str(err)`` is a sentence for a user."""


def _q(q: float, family: str) -> str:
    return f"histogram_quantile({q}, sum by (le, instance) (rate({family}_bucket[W])))"


def _either(*exprs: str) -> str:
    # ``or`` keeps the left side's instances and adds the right side's others: an
    # instance publishing the old name gets it, one publishing the new name gets that.
    return " or ".join(f"({e})" for e in exprs)


# figure -> PromQL, with W standing for the rate window. Every expression is grouped by
# instance (plus a label the row needs) so that the joined query stays one small vector.
FIGURES: dict[str, str] = {
    "up": "max by (instance, job) (up)",
    # What each instance is, from the last 10 minutes: a server that just went down (its
    # series gone stale) keeps its kind and models.
    "kind_vllm": "group by (instance) (last_over_time(vllm:num_requests_running[10m]))",
    "kind_llamacpp": ("group by (instance) (last_over_time(llamacpp:requests_processing[10m]))"),
    "kind_router": "group by (instance) (last_over_time(vllm_router_active_workers[10m]))",
    "models": ("group by (instance, model_name) (last_over_time(vllm:num_requests_running[10m]))"),
    "running": _either(
        "sum by (instance) (vllm:num_requests_running)",
        "sum by (instance) (llamacpp:requests_processing)",
    ),
    "waiting": _either(
        "sum by (instance) (vllm:num_requests_waiting)",
        "sum by (instance) (llamacpp:requests_deferred)",
    ),
    "waiting_capacity": (
        'sum by (instance) (vllm:num_requests_waiting_by_reason{reason="capacity"})'
    ),
    "waiting_deferred": (
        'sum by (instance) (vllm:num_requests_waiting_by_reason{reason="deferred"})'
    ),
    "waiting_change": _either(
        "sum by (instance) (delta(vllm:num_requests_waiting[W]))",
        "sum by (instance) (delta(llamacpp:requests_deferred[W]))",
    ),
    "kv": _either(
        "max by (instance) (vllm:kv_cache_usage_perc)",
        "max by (instance) (vllm:gpu_cache_usage_perc)",
    ),
    "generation_tps": _either(
        "sum by (instance) (rate(vllm:generation_tokens_total[W]))",
        "sum by (instance) (rate(llamacpp:tokens_predicted_total[W]))",
    ),
    "prompt_tps": _either(
        "sum by (instance) (rate(vllm:prompt_tokens_total[W]))",
        "sum by (instance) (rate(llamacpp:prompt_tokens_total[W]))",
    ),
    # llama.cpp's own timers: tokens per second while it was busy.
    "generation_busy_tps": (
        "sum by (instance) (rate(llamacpp:tokens_predicted_total[W])) / "
        "sum by (instance) (rate(llamacpp:tokens_predicted_seconds_total[W]))"
    ),
    "ttft_p50": _q(0.5, "vllm:time_to_first_token_seconds"),
    "ttft_p95": _q(0.95, "vllm:time_to_first_token_seconds"),
    "itl_p50": _either(
        _q(0.5, "vllm:inter_token_latency_seconds"),
        _q(0.5, "vllm:time_per_output_token_seconds"),
    ),
    "itl_p95": _either(
        _q(0.95, "vllm:inter_token_latency_seconds"),
        _q(0.95, "vllm:time_per_output_token_seconds"),
    ),
    "preemptions_per_min": "60 * sum by (instance) (rate(vllm:num_preemptions_total[W]))",
    # Share of prompt tokens served from the prefix cache (newer vLLM: by source).
    "prompt_cache_share": _either(
        "sum by (instance) "
        '(rate(vllm:prompt_tokens_by_source_total{source="local_cache_hit"}[W])) / '
        "sum by (instance) (rate(vllm:prompt_tokens_by_source_total[W]))",
        "sum by (instance) (rate(vllm:prefix_cache_hits_total[W])) / "
        "sum by (instance) (rate(vllm:prefix_cache_queries_total[W]))",
        "sum by (instance) (rate(vllm:gpu_prefix_cache_hits_total[W])) / "
        "sum by (instance) (rate(vllm:gpu_prefix_cache_queries_total[W]))",
    ),
    "prefill_computed_p50": _q(0.5, "vllm:request_prefill_kv_computed_tokens"),
    # The vLLM router's own metrics (its --prometheus-port).
    "router_requests_per_s": "sum by (instance) (rate(vllm_router_requests_total[W]))",
    "router_retries_per_min": "60 * sum by (instance) (rate(vllm_router_retries_total[W]))",
    "router_errors_per_min": ("60 * sum by (instance) (rate(vllm_router_request_errors_total[W]))"),
    "router_workers_healthy": "sum by (instance) (vllm_router_worker_health)",
    "router_workers_total": "count by (instance) (vllm_router_worker_health)",
    # Circuit state per worker: 0 closed, 1 open, 2 half open.
    "router_circuit": "max by (instance, worker) (vllm_router_cb_state)",
    "router_worker_health": "max by (instance, worker) (vllm_router_worker_health)",
    # DCGM exporter: one series per GPU.
    "dcgm_util": "max by (instance, gpu, modelName, Hostname) (DCGM_FI_DEV_GPU_UTIL)",
    "dcgm_fb_used": "max by (instance, gpu, modelName, Hostname) (DCGM_FI_DEV_FB_USED)",
    "dcgm_fb_free": "max by (instance, gpu, modelName, Hostname) (DCGM_FI_DEV_FB_FREE)",
    "dcgm_temp": "max by (instance, gpu, modelName, Hostname) (DCGM_FI_DEV_GPU_TEMP)",
    "dcgm_power": "max by (instance, gpu, modelName, Hostname) (DCGM_FI_DEV_POWER_USAGE)",
}


def _window(seconds: float) -> str:
    return f"{max(int(math.ceil(seconds)), 1)}s"


def fleet_query(rate_window_s: float, figures: Sequence[str] | None = None) -> str:
    """The one PromQL expression behind a snapshot: every figure tagged by
    ``label_replace(..., "kanoa_figure", NAME, "", "")`` and joined with ``or``."""
    window = _window(rate_window_s)
    parts = []
    for name in figures or FIGURES:
        expr = FIGURES[name].replace("[W]", f"[{window}]")
        parts.append(f'label_replace(({expr}), "{_LABEL}", "{name}", "", "")')
    return "\n or ".join(parts)


# --- rows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetRow:
    """One scraped instance (a model server, a router, an exporter) as the fleet sees it.

    ``up`` is Prometheus's ``up`` (None when it has no target of that name). Rates cover
    the last ``rate_window_s`` seconds of the snapshot; quantiles the buckets' rates over
    the same window. ``None`` means Prometheus has no such series for the instance.
    """

    instance: str
    job: str | None = None
    kind: str = "other"  # vllm | llamacpp | router | dcgm | other
    up: bool | None = None
    models: tuple[str, ...] = ()
    requests_running: float | None = None
    requests_waiting: float | None = None
    waiting_for_capacity: float | None = None  # newer vLLM: no room in the KV cache
    waiting_deferred: float | None = None  # newer vLLM: LoRA budget, KV transfer...
    waiting_change: float | None = None  # over the rate window
    kv_cache_usage: float | None = None  # 0..1
    prompt_tokens_per_s: float | None = None
    generation_tokens_per_s: float | None = None
    generation_busy_tok_s: float | None = None  # llama.cpp: while busy
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    itl_p50_s: float | None = None
    itl_p95_s: float | None = None
    preemptions_per_min: float | None = None
    prompt_cache_share: float | None = None  # 0..1 of prompt tokens from the prefix cache
    prefill_computed_p50_tokens: float | None = None  # tokens each prefill really computed
    # A vLLM router's own figures.
    router_requests_per_s: float | None = None
    router_retries_per_min: float | None = None
    router_errors_per_min: float | None = None
    router_workers_healthy: float | None = None
    router_workers_total: float | None = None
    open_circuits: tuple[str, ...] = ()  # worker URLs whose circuit is open
    unhealthy_workers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("models", "open_circuits", "unhealthy_workers"):
            data[key] = list(data[key])
        return data


@dataclass(frozen=True)
class FleetGpu:
    """One GPU from a DCGM exporter scraped by Prometheus."""

    instance: str
    hostname: str | None
    gpu: DcgmGpu


@dataclass(frozen=True)
class FleetSnapshot:
    """The fleet at ``timestamp`` (Unix seconds, Prometheus's evaluation time)."""

    timestamp: float
    rows: tuple[FleetRow, ...]
    gpus: tuple[FleetGpu, ...] = ()
    warnings: tuple[str, ...] = ()
    rate_window_s: float = 60.0
    router: RouterStatus | None = None  # the --router's /workers, when one was given
    router_error: str | None = None

    def row(self, instance: str) -> FleetRow | None:
        for row in self.rows:
            if row.instance == instance:
                return row
        return None

    @property
    def servers(self) -> tuple[FleetRow, ...]:
        return tuple(r for r in self.rows if r.kind in ("vllm", "llamacpp"))

    @property
    def down(self) -> tuple[FleetRow, ...]:
        return tuple(r for r in self.rows if r.up is False)

    def to_dicts(self) -> list[dict[str, Any]]:
        """One JSON-ready object per instance (``instance``, ``up``, figures), GPUs
        folded into their exporter's object under ``gpus``."""
        out = []
        gpus: dict[str, list[dict[str, Any]]] = {}
        for g in self.gpus:
            entry = asdict(g.gpu)
            entry["hostname"] = g.hostname
            entry["fb_used_fraction"] = g.gpu.fb_used_fraction
            gpus.setdefault(g.instance, []).append(entry)
        for row in self.rows:
            data = row.to_dict()
            data["timestamp"] = self.timestamp
            if row.instance in gpus:
                data["gpus"] = gpus[row.instance]
            out.append(data)
        return out


def _value(sample: Mapping[str, Any]) -> float | None:
    try:
        value = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None  # NaN: 0/0 or no observations


def _labels(sample: object) -> dict[str, str]:
    """A sample's labels, only those whose name and value are text (a server may send
    anything: a list for ``metric``, a number for a label)."""
    labels = sample.get("metric") if isinstance(sample, Mapping) else None
    if not isinstance(labels, Mapping):
        return {}
    return {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}


def _instance_order(instance: str) -> tuple:
    """Natural order: 10.0.0.9:8000 before 10.0.0.10:8000."""
    return tuple(
        (0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", instance)
    )


_ROW_FIELDS = {
    "running": "requests_running",
    "waiting": "requests_waiting",
    "waiting_capacity": "waiting_for_capacity",
    "waiting_deferred": "waiting_deferred",
    "waiting_change": "waiting_change",
    "kv": "kv_cache_usage",
    "generation_tps": "generation_tokens_per_s",
    "prompt_tps": "prompt_tokens_per_s",
    "generation_busy_tps": "generation_busy_tok_s",
    "ttft_p50": "ttft_p50_s",
    "ttft_p95": "ttft_p95_s",
    "itl_p50": "itl_p50_s",
    "itl_p95": "itl_p95_s",
    "preemptions_per_min": "preemptions_per_min",
    "prompt_cache_share": "prompt_cache_share",
    "prefill_computed_p50": "prefill_computed_p50_tokens",
    "router_requests_per_s": "router_requests_per_s",
    "router_retries_per_min": "router_retries_per_min",
    "router_errors_per_min": "router_errors_per_min",
    "router_workers_healthy": "router_workers_healthy",
    "router_workers_total": "router_workers_total",
}
_DCGM_FIELDS = {
    "dcgm_util": "utilization_pct",
    "dcgm_fb_used": "fb_used_mib",
    "dcgm_fb_free": "fb_free_mib",
    "dcgm_temp": "temperature_c",
    "dcgm_power": "power_w",
}


def build_snapshot(
    result: Sequence[Mapping[str, Any]],
    timestamp: float,
    rate_window_s: float,
    known_kinds: Mapping[str, str] | None = None,
) -> FleetSnapshot:
    """Rows, GPUs and warnings from the joined query's ``result`` vector (pure: tests and
    benchmarks drive it directly). ``known_kinds`` names instances seen before, so a server
    that is down (its series gone) keeps its kind."""
    rows: dict[str, dict[str, Any]] = {}
    gpus: dict[tuple[str, str], dict[str, Any]] = {}

    def row(instance: str) -> dict[str, Any]:
        return rows.setdefault(instance, {"instance": instance, "kinds": set()})

    for sample in result:
        labels = _labels(sample)
        figure = labels.get(_LABEL)
        instance = labels.get("instance")
        if not figure or not instance:
            continue
        value = _value(sample)
        if figure == "up":
            r = row(instance)
            r["job"] = labels.get("job")
            r["up"] = value == 1.0 if value is not None else None
        elif figure.startswith("kind_"):
            row(instance)["kinds"].add(figure[len("kind_") :])
        elif figure == "models":
            if labels.get("model_name"):
                row(instance).setdefault("models", set()).add(labels["model_name"])
        elif figure == "router_circuit":
            if value == 1.0 and labels.get("worker"):
                row(instance).setdefault("open_circuits", set()).add(labels["worker"])
        elif figure == "router_worker_health":
            if value == 0.0 and labels.get("worker"):
                row(instance).setdefault("unhealthy_workers", set()).add(labels["worker"])
        elif figure in _DCGM_FIELDS:
            gpu = labels.get("gpu") or "0"
            entry = gpus.setdefault(
                (instance, gpu),
                {
                    "instance": instance,
                    "hostname": labels.get("Hostname"),
                    "gpu": gpu,
                    "name": labels.get("modelName"),
                },
            )
            entry[_DCGM_FIELDS[figure]] = value
            row(instance)["kinds"].add("dcgm")
        elif figure in _ROW_FIELDS:
            row(instance)[_ROW_FIELDS[figure]] = value

    known = dict(known_kinds or {})
    out_rows: list[FleetRow] = []
    for instance in sorted(rows, key=_instance_order):
        data = rows[instance]
        kinds = data.pop("kinds")
        kind = next((k for k in ("router", "vllm", "llamacpp", "dcgm") if k in kinds), None)
        data["kind"] = kind or known.get(instance, "other")
        for key in ("models", "open_circuits", "unhealthy_workers"):
            if key in data:
                data[key] = tuple(sorted(data[key]))
        if data.get("up") is False:
            # Rates over the window still hold samples from before it went down: a
            # server Prometheus cannot scrape has no current figures.
            for key in (*_ROW_FIELDS.values(), "open_circuits", "unhealthy_workers"):
                data.pop(key, None)
        out_rows.append(FleetRow(**data))

    out_gpus = tuple(
        FleetGpu(
            instance=e["instance"],
            hostname=e["hostname"],
            gpu=DcgmGpu(
                gpu=e["gpu"],
                name=e["name"],
                utilization_pct=e.get("utilization_pct"),
                fb_used_mib=e.get("fb_used_mib"),
                fb_free_mib=e.get("fb_free_mib"),
                temperature_c=e.get("temperature_c"),
                power_w=e.get("power_w"),
            ),
        )
        for _, e in sorted(gpus.items(), key=lambda kv: (kv[0][0], len(kv[0][1]), kv[0][1]))
    )
    return FleetSnapshot(
        timestamp=timestamp,
        rows=tuple(out_rows),
        gpus=out_gpus,
        warnings=tuple(fleet_warnings(out_rows, out_gpus, rate_window_s)),
        rate_window_s=rate_window_s,
    )


def _plural(n: float, noun: str) -> str:
    return f"{n:.0f} {noun}" + ("" if n == 1 else "s")


def fleet_warnings(
    rows: Sequence[FleetRow], gpus: Sequence[FleetGpu], rate_window_s: float
) -> list[str]:
    """Sentences a lab can act on: instances down, KV cache nearly full, queues growing,
    preemptions, router circuits open, GPUs hot or full."""
    found: list[str] = []
    if not rows:
        found.append(
            "Prometheus scrapes no targets: add your model servers, the router and any DCGM "
            "exporter to its scrape_configs."
        )
    for r in rows:
        name = f"{r.instance}" + (f" ({r.job})" if r.job else "")
        if r.up is False:
            found.append(
                f"{name} is down: Prometheus could not scrape it at its last try. Check "
                "that the server is running."
            )
            continue
        if r.kv_cache_usage is not None and r.kv_cache_usage > KV_CACHE_WARN_FRACTION:
            found.append(
                f"{name}: KV cache is {r.kv_cache_usage:.0%} full: new requests will wait or "
                "be preempted. Spread the load or give the server more GPU memory."
            )
        if r.requests_waiting and r.waiting_change is not None and r.waiting_change > 0:
            found.append(
                f"{name}: the waiting queue is growing ({_plural(r.requests_waiting, 'request')}"
                f" waiting, {r.waiting_change:+.0f} in the last {rate_window_s:.0f} s): answers "
                "will start late. Send fewer requests at once or add a server."
            )
        if r.preemptions_per_min:
            found.append(
                f"{name}: {r.preemptions_per_min:.1f} preemptions a minute: the KV cache is "
                "too small for the load, so answers restart and slow down."
            )
        for worker in r.open_circuits:
            found.append(
                f"The router {r.instance} has opened its circuit to {worker}: it sends that "
                "server no requests until it answers again."
            )
        for worker in r.unhealthy_workers:
            if worker not in r.open_circuits:
                found.append(f"The router {r.instance} marks {worker} unhealthy.")
    for g in gpus:
        label = f"GPU {g.gpu.gpu} on {g.hostname or g.instance}"
        found += gpu_health_warnings(label, g.gpu.fb_used_fraction, g.gpu.temperature_c)
    return found


# --- the client ------------------------------------------------------------------------------


def _said(text: object, limit: int = 300) -> str:
    """A server's words, quoted in a sentence: cut, control characters shown escaped."""
    text = str(text)
    return escape_control(text if len(text) <= limit else text[: limit - 1] + "…")


def _prometheus_error(url: str, resp: httpx.Response) -> PrometheusError:
    detail = None
    if len(resp.content) <= 64 * 1024:  # an error page: small, or not worth parsing
        try:
            data = loads_json_bounded(resp.content, max_items=10_000)
            detail = data.get("error") if isinstance(data, dict) else None
        except (ValueError, RecursionError):
            detail = None
    if detail:
        return PrometheusError(
            f"Prometheus at {url} refused the query ({resp.status_code}): {_said(detail)}."
        )
    if resp.status_code == 404:
        return PrometheusError(
            f"{url} has no Prometheus query API (404 on /api/v1/query): check the address "
            "(a Prometheus server, e.g. http://prometheus:9090, not an exporter's /metrics)."
        )
    if resp.is_redirect:
        where = resp.headers.get("location")
        if where:
            target = _said(str(resp.url.join(where)), 200)
            return PrometheusError(
                f"Prometheus at {url} answered HTTP {resp.status_code}: it redirects to "
                f"{target}. Set that address instead (redirects are not followed)."
            )
        return PrometheusError(
            f"Prometheus at {url} answered HTTP {resp.status_code}, a redirect without a "
            "Location: check the address."
        )
    return PrometheusError(f"Prometheus at {url} answered HTTP {resp.status_code}.")


class FleetReader:
    """Reads the fleet from one Prometheus server (and, optionally, a router's workers).

    ``prometheus_url``: the server's root (``http://prom:9090``). ``rate_window_s``: the
    window of ``rate()`` and the quantiles; keep it at least four scrape intervals.
    """

    def __init__(
        self,
        prometheus_url: str,
        *,
        router_url: str | None = None,
        rate_window_s: float = 60.0,
        timeout_s: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        base = prometheus_url.strip().rstrip("/")
        if not base.startswith(("http://", "https://")):
            base = "http://" + base
        self.url = base
        self.router_url = router_url.strip().rstrip("/") if router_url else None
        if self.router_url and self.router_url.endswith("/v1"):
            self.router_url = self.router_url[: -len("/v1")]
        self.rate_window_s = rate_window_s
        self.timeout_s = timeout_s
        self._client = client
        self._owns_client = client is None
        self._kinds: dict[str, str] = {}
        self._query = fleet_query(rate_window_s)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # Prometheus answers capped and deadlined (core/endpoint/bodies).
            self._client = httpx.AsyncClient(
                timeout=self.timeout_s,
                transport=CappedTransport(
                    max_body_bytes=PROMETHEUS_BODY_CAP, deadline_s=max(3 * self.timeout_s, 30.0)
                ),
            )
        return self._client

    async def _api(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.url}/api/v1/{path}"
        try:
            # POST (form-encoded): the joined query is too long for a comfortable URL.
            resp = await self._http().post(url, data=dict(params), timeout=self.timeout_s)
        except BodyCapExceeded:
            raise PrometheusError(
                f"Prometheus at {self.url} answered /api/v1/{path} with more than "
                f"{PROMETHEUS_BODY_CAP // MiB} MB; reading stopped there (a fleet's answer is "
                "a few MB): check that the address is a Prometheus server."
            ) from None
        except httpx.HTTPError as err:
            reason, _ = _describe_transport_error(self.url, err)
            end = "" if reason.endswith((".", "?", "!")) else "."
            raise PrometheusError(f"Cannot ask Prometheus: {reason}{end}") from None
        if resp.status_code != 200:
            raise _prometheus_error(self.url, resp)
        try:
            data = loads_json_bounded(resp.content, max_items=MAX_PROMETHEUS_ITEMS)
        except JsonTooLarge as exc:
            raise PrometheusError(
                f"Prometheus at {self.url} answered /api/v1/{path} with about {exc.items:,} "
                f"values, more than the {exc.limit:,} the fleet view reads; it was not read."
            ) from None
        except (ValueError, RecursionError):
            raise PrometheusError(
                f"{self.url} is not a Prometheus server: its /api/v1/{path} answer is not JSON."
            ) from None
        if not isinstance(data, dict) or data.get("status") != "success":
            reason = data.get("error") if isinstance(data, dict) else None
            raise PrometheusError(
                f"Prometheus at {self.url} did not answer the query: "
                f"{_said(reason) if reason else 'no reason given'}."
            )
        payload = data.get("data")
        if not isinstance(payload, dict):
            raise PrometheusError(
                f"{self.url} answered /api/v1/{path} without the data object a Prometheus "
                "answer has: check that the address is a Prometheus server."
            )
        return payload

    def _series(self, payload: Mapping[str, Any], path: str, expect: str) -> list[Any]:
        """The ``result`` list of a query answer, which must be of type ``expect``."""
        kind = payload.get("resultType")
        result = payload.get("result")
        if kind not in (None, expect) or not isinstance(result, list):
            shown = _said(kind, 40) if isinstance(kind, str) else type(result).__name__
            raise PrometheusError(
                f"Prometheus at {self.url} answered /api/v1/{path} with a {shown} result, "
                f"not the {expect} of series the fleet view asks for."
            )
        return result

    async def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result vector (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = await self._api("query", params)
        return self._series(data, "query", "vector")

    async def snapshot(self, at: float | None = None) -> FleetSnapshot:
        """The fleet now (or at Unix time ``at``): one Prometheus query, plus the router's
        ``/workers`` when a router URL was given. Raises :class:`PrometheusError`."""
        when = time.time() if at is None else at
        router_task = None
        if self.router_url:
            router_task = asyncio.ensure_future(self._router_status(self.router_url))
        try:
            result = await self.query(self._query, when)
        except BaseException:
            if router_task is not None:
                router_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await router_task
            raise
        snapshot = build_snapshot(result, when, self.rate_window_s, self._kinds)
        for row in snapshot.rows:
            if row.kind != "other":
                self._kinds[row.instance] = row.kind
        if router_task is not None:
            router, problem = await router_task
            extra: tuple[str, ...] = ()
            if router is None:
                extra = (f"Router {self.router_url}: {problem}.",)
            else:
                for w in router.workers:
                    # Once per server: Prometheus's router rows may have said it already.
                    if not w.healthy and not any(w.url in said for said in snapshot.warnings):
                        extra += (f"The router {self.router_url} marks {w.url} unhealthy.",)
            snapshot = FleetSnapshot(
                timestamp=snapshot.timestamp,
                rows=snapshot.rows,
                gpus=snapshot.gpus,
                warnings=snapshot.warnings + tuple(w for w in extra if w not in snapshot.warnings),
                rate_window_s=snapshot.rate_window_s,
                router=router,
                router_error=problem,
            )
        return snapshot

    async def _router_status(self, root: str) -> tuple[RouterStatus | None, str | None]:
        """The router's ``/workers``, or None and why (a sentence without its full stop):
        too large, not answering, or not a router's answer."""
        try:
            status, data = await get_json(
                self._http(), f"{root}/workers", cap=ROUTER_WORKERS_CAP, timeout_s=self.timeout_s
            )
        except BodyCapExceeded:
            return None, (
                f"its /workers list is larger than {ROUTER_WORKERS_CAP // MiB} MB, too large "
                "to read, so its servers are not listed"
            )
        except httpx.HTTPError as err:
            reason, _ = _describe_transport_error(root, err)
            return None, f"/workers could not be read: {reason}"
        if status != 200:
            return None, f"it answered /workers with HTTP {status}, so it is not a vLLM router"
        router = parse_workers(root, data) if data is not None else None
        if router is None:
            return None, f"{root} did not answer /workers as a vLLM router does"
        return router, None

    async def history(
        self,
        figure: str,
        range_s: float,
        *,
        end: float | None = None,
        points: int = PLOT_POINTS,
    ) -> dict[str, list[tuple[float, float]]]:
        """``instance -> [(unix time, value), ...]`` of one figure over the last
        ``range_s`` seconds, from ``query_range`` (NaN points dropped)."""
        if figure not in FIGURES:
            raise ValueError(f"unknown fleet figure {figure!r}")
        end = time.time() if end is None else end
        step = max(range_s / points, 1.0)
        window = _window(max(self.rate_window_s, 2 * step))
        expr = FIGURES[figure].replace("[W]", f"[{window}]")
        data = await self._api(
            "query_range",
            {
                "query": expr,
                "start": f"{end - range_s:.3f}",
                "end": f"{end:.3f}",
                "step": f"{step:.3f}",
            },
        )
        out: dict[str, list[tuple[float, float]]] = {}
        for series in self._series(data, "query_range", "matrix"):
            instance = _labels(series).get("instance")
            values = series.get("values") if isinstance(series, Mapping) else None
            if not instance or not isinstance(values, list):
                continue
            points_out = out.setdefault(instance, [])
            for point in values:
                try:
                    t, v = point
                    t, value = float(t), float(v)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value) and math.isfinite(t):
                    points_out.append((t, value))
        return out

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


# --- polling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetUpdate:
    """One refresh: the snapshot, or why there is none (``error``, a sentence). A failed
    refresh keeps the previous snapshot in ``snapshot`` with ``stale`` set."""

    snapshot: FleetSnapshot | None
    error: str | None = None
    stale: bool = False
    took_s: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class FleetPoller(Paced[FleetUpdate]):
    """Refreshes a :class:`FleetReader` every ``interval_s`` and tells its listeners
    (on the loop's thread: a Qt widget on a qasync loop may update itself). ``pause()``
    while nobody looks; ``resume()`` refreshes at once."""

    def __init__(
        self,
        reader: FleetReader,
        *,
        interval_s: float = 5.0,
        on_update: Callable[[FleetUpdate], None] | None = None,
    ) -> None:
        self.reader = reader
        self.interval_s = interval_s
        super().__init__(on_update)
        self._last: FleetSnapshot | None = None
        self.latest: FleetUpdate | None = None

    async def refresh(self) -> FleetUpdate:
        t0 = time.perf_counter()
        try:
            snapshot = await self.reader.snapshot()
            update = FleetUpdate(snapshot, took_s=time.perf_counter() - t0)
            self._last = snapshot
        except PrometheusError as err:
            update = FleetUpdate(self._last, str(err), stale=self._last is not None)
        self.latest = update
        self._tell(update)
        return update

    async def run(self) -> None:
        self._begin()
        while not self._stopped:
            if not self._paused:
                await self.refresh()
            await self._wait(None if self._paused else self.interval_s)

    async def aclose(self) -> None:
        self.stop()
        await self.reader.aclose()
