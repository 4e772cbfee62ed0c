"""``kanoa-desktop fleet``: a lab's model servers, router and GPUs, read from Prometheus.

The same rows as the window's Fleet view: one per scraped instance (up or down, running
and waiting requests, KV cache, generation and prompt tokens/s, TTFT and inter-token
p50/p95, preemptions), router rows (retries, errors, open circuits, healthy workers), GPU
rows from a DCGM exporter, and the warnings. ``--router URL`` adds the router's own list
of servers with their health and load. ``--json`` prints one JSON object per instance per
line (its ``instance`` label, ``up``, ``kind`` and the figures).

``--prometheus`` defaults to the address set in the window (Settings > GPU panel: the
app's, or the active profile's own). ``--once`` prints one snapshot and exits;
``--interval S`` prints one every S seconds until interrupted. Exit status
(:data:`EXIT_STATUS`), so a script can act on it: 0 all instances up, 3 an instance (or a
server behind ``--router``) is down, 1 Prometheus did not answer (or answered what a
Prometheus server does not: one ``error:`` sentence on stderr), 2 a bad argument or no
Prometheus address. ``--interval`` ends with the status of its last snapshot.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from kanoa_desktop.cli.output import echo, echo_json, error, name, table
from kanoa_desktop.core.config.profiles import ProfileStore, fleet_prometheus_url
from kanoa_desktop.core.monitor.fleet import FleetReader, FleetRow, FleetSnapshot, PrometheusError

EXIT_OK = 0
EXIT_NO_PROMETHEUS = 1
EXIT_USAGE = 2
EXIT_DOWN = 3
#: What each exit status means (also printed by ``fleet --help``).
EXIT_STATUS = {
    EXIT_OK: "every instance is up",
    EXIT_NO_PROMETHEUS: "Prometheus did not answer",
    EXIT_USAGE: "a bad argument, or no Prometheus address",
    EXIT_DOWN: "an instance (or a server behind --router) is down",
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "fleet",
        help="print every model server, router and GPU a Prometheus server scrapes",
        description=(
            "Read a lab's fleet from Prometheus (rates and latency quantiles computed by "
            "Prometheus) and print one row per instance."
        ),
        epilog="exit status: "
        + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_STATUS.items())
        + ". With --interval, the status of the last snapshot.",
    )
    parser.add_argument(
        "--prometheus",
        default=None,
        metavar="URL",
        help="Prometheus server, e.g. http://prom:9090 (default: the one set in Settings > "
        "GPU panel, or the active profile's own)",
    )
    parser.add_argument(
        "--router", default=None, metavar="URL", help="a vLLM router: also list its servers"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="print one snapshot and exit")
    mode.add_argument(
        "--interval", type=float, default=None, metavar="S", help="seconds between prints (5)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per instance")
    parser.add_argument(
        "--window",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds of history behind rates and quantiles (60)",
    )
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S", help=argparse.SUPPRESS)
    parser.set_defaults(command="fleet")
    return parser


def _n(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def _up(row: FleetRow) -> str:
    return {True: "up", False: "DOWN", None: "?"}[row.up]


def format_fleet(snapshot: FleetSnapshot) -> str:
    """The human tables ``fleet`` prints ("—" where Prometheus has no value)."""
    parts: list[str] = []
    servers = [r for r in snapshot.rows if r.kind not in ("router", "dcgm")]
    if servers:
        parts.append(
            table(
                [
                    "instance",
                    "kind",
                    "state",
                    "run",
                    "wait",
                    "KV",
                    "gen tok/s",
                    "prompt tok/s",
                    "TTFT p50/p95",
                    "ITL p50/p95",
                    "preempt/min",
                    "models",
                ],
                [
                    [
                        r.instance,
                        r.kind,
                        _up(r),
                        _n(r.requests_running, 0),
                        _n(r.requests_waiting, 0),
                        _pct(r.kv_cache_usage),
                        _n(r.generation_tokens_per_s),
                        _n(r.prompt_tokens_per_s),
                        f"{_ms(r.ttft_p50_s)}/{_ms(r.ttft_p95_s)}",
                        f"{_ms(r.itl_p50_s)}/{_ms(r.itl_p95_s)}",
                        _n(r.preemptions_per_min),
                        ", ".join(r.models) or "—",
                    ]
                    for r in servers
                ],
            )  # fmt: skip
        )
    routers = [r for r in snapshot.rows if r.kind == "router"]
    if routers:
        parts.append(
            table(
                [
                    "router",
                    "state",
                    "req/s",
                    "retries/min",
                    "errors/min",
                    "healthy",
                    "open circuits",
                ],
                [
                    [
                        r.instance,
                        _up(r),
                        _n(r.router_requests_per_s, 2),
                        _n(r.router_retries_per_min),
                        _n(r.router_errors_per_min),
                        f"{_n(r.router_workers_healthy, 0)}/{_n(r.router_workers_total, 0)}",
                        ", ".join(r.open_circuits) or "none",
                    ]
                    for r in routers
                ],
            )  # fmt: skip
        )
    if snapshot.gpus:
        parts.append(
            table(
                ["GPU", "host", "name", "util", "memory", "temp", "power"],
                [
                    [
                        g.gpu.gpu,
                        g.hostname or g.instance,
                        g.gpu.name or "—",
                        f"{_n(g.gpu.utilization_pct, 0)}%",
                        _pct(g.gpu.fb_used_fraction),
                        f"{_n(g.gpu.temperature_c, 0)}°C",
                        f"{_n(g.gpu.power_w, 0)}W",
                    ]
                    for g in snapshot.gpus
                ],
            )  # fmt: skip
        )
    if snapshot.router is not None:
        parts.append(
            name(snapshot.router.summary())
            + "\n"
            + table(
                ["server behind the router", "model", "health", "load"],
                [
                    [
                        w.url,
                        w.model or "—",
                        "healthy" if w.healthy else "DOWN",
                        "—" if w.load is None else str(w.load),
                    ]
                    for w in snapshot.router.workers
                ],
            )  # fmt: skip
        )
    if snapshot.warnings:
        parts.append("\n".join(f"warning: {name(w)}" for w in snapshot.warnings))
    return "\n\n".join(parts) if parts else "Prometheus has no targets."


def exit_status(snapshot: FleetSnapshot) -> int:
    """:data:`EXIT_DOWN` when Prometheus sees an instance down, or the router a server
    down; else :data:`EXIT_OK`."""
    router_down = snapshot.router is not None and any(
        not w.healthy for w in snapshot.router.workers
    )
    return EXIT_DOWN if snapshot.down or router_down else EXIT_OK


def _print(snapshot: FleetSnapshot, as_json: bool) -> None:
    if as_json:
        for obj in snapshot.to_dicts():
            echo_json(obj, flush=True)
        return
    echo(format_fleet(snapshot) + "\n", flush=True)


async def _main(args: argparse.Namespace) -> int:
    reader = FleetReader(
        args.prometheus,
        router_url=args.router,
        rate_window_s=args.window,
        timeout_s=args.timeout,
    )
    interval = args.interval if args.interval is not None else 5.0
    status = EXIT_OK
    try:
        while True:
            try:
                snapshot = await reader.snapshot()
            except PrometheusError as err:
                echo(f"error: {name(err)}", err=True, flush=True)
                status = EXIT_NO_PROMETHEUS
            else:
                _print(snapshot, args.json)
                status = exit_status(snapshot)
            if args.once or args.interval is None:
                return status
            await asyncio.sleep(interval)
    finally:
        await reader.aclose()


def run(args: argparse.Namespace) -> int:
    """Entry point for ``kanoa-desktop fleet``; returns the exit status."""
    if args.interval is not None and args.interval <= 0:
        return error("--interval must be a positive number of seconds.", status=EXIT_USAGE)
    if args.window <= 0:
        return error("--window must be a positive number of seconds.", status=EXIT_USAGE)
    if args.prometheus is None:
        store = ProfileStore()
        store.load()
        args.prometheus = fleet_prometheus_url(store.active, store.preferences)
        if not args.prometheus:
            return error(
                "no Prometheus server: pass --prometheus URL, or set one in the window's "
                "Settings > GPU panel.",
                status=EXIT_USAGE,
            )
    return asyncio.run(_main(args))
