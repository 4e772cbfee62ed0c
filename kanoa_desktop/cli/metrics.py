"""``kanoa-desktop metrics``: the GPU panel's server numbers in a terminal.

``--once`` scrapes twice, one interval apart (so rates have two points), prints one
snapshot and exits; otherwise it prints one snapshot per interval until interrupted.
``--json`` prints one JSON object per line instead of a table. A server that cannot be
scraped gives a plain message on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from typing import Any

from kanoa_desktop.cli.output import echo, echo_json, error, name
from kanoa_desktop.core.monitor.metrics import MetricsDeriver, ServerMetrics
from kanoa_desktop.core.monitor.poller import MetricsPoller, MetricsUpdate, PollState


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "metrics",
        help="print a model server's live metrics (vLLM, llama.cpp, DCGM)",
        description="Scrape a Prometheus /metrics URL and print the derived values.",
    )
    parser.add_argument(
        "--url", required=True, help="metrics URL, e.g. http://localhost:8000/metrics"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="print one snapshot and exit")
    mode.add_argument(
        "--interval", type=float, default=None, metavar="S", help="seconds between prints (1)"
    )
    parser.add_argument("--model", default=None, help="one served model name (default: all summed)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--timeout", type=float, default=2.0, metavar="S", help=argparse.SUPPRESS)
    parser.set_defaults(command="metrics")
    return parser


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}{(' ' + unit) if unit else ''}"


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value * 100:.1f} %"


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as None, so the line is valid JSON (no bare
    NaN); :func:`~kanoa_desktop.cli.output.echo_json` escapes what a terminal acts on."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def format_table(snapshot: ServerMetrics) -> str:
    """The human table ``metrics`` prints for one snapshot ("—" where a value is unknown)."""
    models = ", ".join(name(m) for m in snapshot.models) or "—"
    rows = [
        (
            "server",
            f"{snapshot.kind}  (models: {models}; showing: {name(snapshot.model or 'all')})",
        ),
        (
            "requests",
            f"running {_fmt(snapshot.requests_running, digits=0)}  "
            f"waiting {_fmt(snapshot.requests_waiting, digits=0)}",
        ),
        ("KV cache", _pct(snapshot.kv_cache_usage)),
        ("prompt", _fmt(snapshot.prompt_tokens_per_s, "tok/s")),
        ("generation", _fmt(snapshot.generation_tokens_per_s, "tok/s")),
    ]
    if snapshot.prompt_speed_tok_s is not None or snapshot.generation_speed_tok_s is not None:
        rows.append(
            (
                "busy speed",
                f"prompt {_fmt(snapshot.prompt_speed_tok_s, 'tok/s')}  "
                f"generation {_fmt(snapshot.generation_speed_tok_s, 'tok/s')}",
            )
        )
    for label, p50, p95 in (
        ("TTFT", snapshot.ttft_p50_s, snapshot.ttft_p95_s),
        ("inter-token", snapshot.itl_p50_s, snapshot.itl_p95_s),
        ("end-to-end", snapshot.e2e_p50_s, snapshot.e2e_p95_s),
    ):
        rows.append((label, f"p50 {_fmt(p50, 's', 3)}  p95 {_fmt(p95, 's', 3)}  (last minute)"))
    rows.append(("preemptions", _fmt(snapshot.preemptions_per_min, "/min")))
    rows.append(
        (
            "prefix cache",
            f"hit rate {_pct(snapshot.prefix_cache_hit_rate)} last minute, "
            f"{_pct(snapshot.prefix_cache_hit_rate_lifetime)} overall",
        )
    )
    if snapshot.finished_reasons:
        reasons = "  ".join(f"{name(k)} {v}" for k, v in sorted(snapshot.finished_reasons.items()))
        rows.append(("finished", reasons))
    for gpu in snapshot.gpus:
        rows.append(
            (
                f"GPU {name(gpu.gpu)}",
                f"{name(gpu.name or '')} util {_fmt(gpu.utilization_pct, '%', 0)}  "
                f"FB used {_fmt(gpu.fb_used_mib, 'MiB', 0)} free {_fmt(gpu.fb_free_mib, 'MiB', 0)}"
                f"  {_fmt(gpu.temperature_c, '°C', 0)}  {_fmt(gpu.power_w, 'W', 0)}",
            )
        )
    for warning in snapshot.warnings:
        rows.append(("warning", name(warning)))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _print(update: MetricsUpdate, as_json: bool) -> None:
    if as_json:
        record: dict[str, Any] = {"state": str(update.state), "message": update.message}
        if update.snapshot is not None:
            record.update(update.snapshot.to_dict())
        echo_json(_json_safe(record), allow_nan=False, flush=True)
        return
    if update.state is not PollState.LIVE:
        echo(name(update.message), flush=True)
    if update.snapshot is not None:
        echo(format_table(update.snapshot) + "\n", flush=True)


async def _main(args: argparse.Namespace) -> int:
    interval = args.interval if args.interval is not None else 1.0
    poller = MetricsPoller(
        args.url,
        interval_s=interval,
        timeout_s=args.timeout,
        deriver=MetricsDeriver(model=args.model),
    )
    try:
        first = await poller.poll_once()
        if first.state is not PollState.LIVE:
            echo(f"Cannot read metrics from {name(args.url)}: {name(first.message)}", err=True)
            return 1
        if args.once:
            await asyncio.sleep(interval)
            second = await poller.poll_once()
            _print(second if second.state is PollState.LIVE else first, args.json)
            return 0
        _print(first, args.json)
        while True:
            await asyncio.sleep(poller.next_delay_s())
            _print(await poller.poll_once(), args.json)
    finally:
        await poller.aclose()


def run(args: argparse.Namespace) -> int:
    """Entry point for ``kanoa-desktop metrics``; returns the exit status."""
    if args.interval is not None and args.interval <= 0:
        return error("--interval must be a positive number of seconds.", status=2)
    return asyncio.run(_main(args))
