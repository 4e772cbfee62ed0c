"""Synthetic vLLM /metrics bodies for the tests, in the three shapes servers send.

``style``: "new" (vLLM 0.33 names, ``engine`` label, ``_created`` families), "old"
(``gpu_cache_usage_perc``, ``gpu_prefix_cache_*``, ``time_per_output_token_seconds``, no
``engine``), "multiprocess" (new names, no ``engine``, no ``_created``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

TTFT_BOUNDS = (0.1, 0.25, 0.5, 1.0)
ITL_BOUNDS = (0.01, 0.025, 0.05, 0.1)
E2E_BOUNDS = (1.0, 2.5, 5.0, 10.0)


@dataclass
class Series:
    """One (model, engine) series. Histogram lists are cumulative counts per bound, +Inf last."""

    model: str = "m"
    engine: str = "0"
    running: float = 0
    waiting: float = 0
    kv: float = 0.0
    prompt: float = 0
    generation: float = 0
    preemptions: float = 0
    queries: float = 0
    hits: float = 0
    success: dict[str, float] = field(default_factory=lambda: {"stop": 0, "length": 0})
    ttft: list[float] = field(default_factory=lambda: [0, 0, 0, 0, 0])
    itl: list[float] = field(default_factory=lambda: [0, 0, 0, 0, 0])
    e2e: list[float] = field(default_factory=lambda: [0, 0, 0, 0, 0])


def _labels(series: Series, style: str, extra: str = "") -> str:
    parts = [] if style != "new" else [f'engine="{series.engine}"']
    if extra:
        parts.append(extra)
    parts.append(f'model_name="{series.model}"')
    return "{" + ",".join(parts) + "}"


def vllm_body(*series: Series, style: str = "new") -> str:
    old = style == "old"
    created = style != "multiprocess"
    out: list[str] = []

    def gauge(name: str, attr: str) -> None:
        out.append(f"# HELP {name} help\n# TYPE {name} gauge")
        for s in series:
            out.append(f"{name}{_labels(s, style)} {float(getattr(s, attr))}")

    def counter(name: str, attr: str) -> None:
        out.append(f"# HELP {name} help\n# TYPE {name} counter")
        for s in series:
            out.append(f"{name}_total{_labels(s, style)} {float(getattr(s, attr))}")
        if created:
            out.append(f"# HELP {name}_created help\n# TYPE {name}_created gauge")
            for s in series:
                out.append(f"{name}_created{_labels(s, style)} 1.7956260956e+09")

    def histogram(name: str, attr: str, bounds: tuple[float, ...]) -> None:
        out.append(f"# HELP {name} help\n# TYPE {name} histogram")
        for s in series:
            counts = getattr(s, attr)
            for bound, count in zip((*bounds, "+Inf"), counts, strict=True):
                le = 'le="' + str(bound) + '"'
                out.append(f"{name}_bucket{_labels(s, style, le)} {float(count)}")
            out.append(f"{name}_count{_labels(s, style)} {float(counts[-1])}")
            out.append(f"{name}_sum{_labels(s, style)} 0.0")

    gauge("vllm:num_requests_running", "running")
    gauge("vllm:num_requests_waiting", "waiting")
    gauge("vllm:gpu_cache_usage_perc" if old else "vllm:kv_cache_usage_perc", "kv")
    prefix = "vllm:gpu_prefix_cache" if old else "vllm:prefix_cache"
    counter(f"{prefix}_queries", "queries")
    counter(f"{prefix}_hits", "hits")
    counter("vllm:num_preemptions", "preemptions")
    counter("vllm:prompt_tokens", "prompt")
    counter("vllm:generation_tokens", "generation")
    out.append("# HELP vllm:request_success help\n# TYPE vllm:request_success counter")
    for s in series:
        for reason, count in s.success.items():
            labels = _labels(s, style, f'finished_reason="{reason}"')
            out.append(f"vllm:request_success_total{labels} {float(count)}")
    histogram("vllm:time_to_first_token_seconds", "ttft", TTFT_BOUNDS)
    itl_name = "vllm:time_per_output_token_seconds" if old else "vllm:inter_token_latency_seconds"
    histogram(itl_name, "itl", ITL_BOUNDS)
    histogram("vllm:e2e_request_latency_seconds", "e2e", E2E_BOUNDS)
    return "\n".join(out) + "\n"
