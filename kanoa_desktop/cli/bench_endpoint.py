"""``kanoa-desktop bench-endpoint``: kanoa's endpoint benchmark from the command line.

Runs the suite of :mod:`kanoa_desktop.core.bench.speed` against a profile's server (or
``--api-base``/``--model``), prints one line per run and the Markdown table, then the
chart-reading accuracy pass (:mod:`kanoa_desktop.core.bench.accuracy`: ``--accuracy-items``
items of the chart suite, 16 by default, 0 to skip; kept in the history), and writes the
table and the accuracy line to ``--markdown FILE`` when asked. Exit status 0 when every
task that ran has a result and the accuracy pass scored every item (or was skipped), 1 on
a bad profile, an unreachable server or failed runs, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import httpx

from kanoa_desktop.cli.output import echo, error, name
from kanoa_desktop.core.bench.accuracy import ACCURACY_ITEMS, AccuracyPass
from kanoa_desktop.core.bench.speed import (
    DEFAULT_RUNS,
    EndpointBenchmark,
    Progress,
    export_benchmark,
    scraping_reader,
    to_markdown,
)
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.client import ChatClient, Timeouts


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "bench-endpoint",
        help="benchmark a model server: tokens/s and TTFT over vision and text tasks",
        description="Run kanoa's endpoint benchmark (N runs per task) and print the table.",
    )
    parser.add_argument("--profile", default=None, help="profile name (default: the active one)")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="runs per task (3)")
    parser.add_argument("--api-base", default=None, help="override the profile's API base URL")
    parser.add_argument("--model", default=None, help="override the profile's model")
    parser.add_argument("--markdown", type=Path, default=None, metavar="FILE",
                        help="also write the Markdown table to FILE")  # fmt: skip
    parser.add_argument("--hardware", default="", help="hardware named in the table's title")
    parser.add_argument("--no-metrics", action="store_true", help="do not scrape /metrics")
    parser.add_argument("--accuracy-items", type=int, default=ACCURACY_ITEMS, metavar="N",
                        help=f"chart-suite items of the accuracy pass after the speed suite "
                        f"(default {ACCURACY_ITEMS}; 0 skips it)")  # fmt: skip
    parser.set_defaults(command="bench-endpoint")
    return parser


def _profile(args: argparse.Namespace) -> tuple[Profile | None, str]:
    store = ProfileStore()
    store.load()
    if args.profile is None:
        return store.active, ""
    profile = store.get(args.profile)
    if profile is None:
        names = ", ".join(store.names) or "none"
        return None, (
            f"There is no profile named {args.profile!r} (profiles: {names}). "
            "Create it in Settings, or pass --api-base and --model."
        )
    return profile, ""


def _api_key(profile: Profile) -> str | None:
    try:
        from kanoa_desktop.core.config.secrets import KeyStore

        secret = KeyStore().get(profile.id)
    except Exception:  # noqa: BLE001 - no keychain: run without a key, the server will say
        return None
    return secret.reveal() if secret else None


def _print_progress(p: Progress) -> None:
    r = p.record
    if r is None:
        echo(f"[{p.done}/{p.total}] {p.task.task.label}: {name(p.task.skipped)}", flush=True)
    elif r.error:
        echo(f"[{p.done}/{p.total}] {p.task.task.label} run {r.index + 1}: {name(r.error)}",
             flush=True)  # fmt: skip
    else:
        ttft = f"{r.ttft_s:.2f}" if r.ttft_s is not None else "—"
        echo(
            f"[{p.done}/{p.total}] {p.task.task.label} run {r.index + 1}: "
            f"{r.tokens_per_s:.1f} tok/s, TTFT {ttft} s, {r.output_tokens} tokens",
            flush=True,
        )


async def _run(args: argparse.Namespace, profile: Profile) -> int:
    api_base = args.api_base or profile.api_base
    timeouts = Timeouts(read=profile.request_timeout_s)
    async with ChatClient(api_base, api_key=_api_key(profile), timeouts=timeouts) as client:
        model = args.model or profile.model
        if not model:
            try:
                models = await client.models()
            except E.KanoaError as exc:
                return error(exc.message, exc.hint)
            if not models:
                return error("the server lists no models; pass --model.")
            model = models[0].id
        vision = {"yes": True, "no": False}.get(profile.vision)
        metrics_url = profile.effective_metrics_url if not args.api_base else None
        if metrics_url is None:
            from kanoa_desktop.core.config.profiles import derive_metrics_url

            metrics_url = derive_metrics_url(api_base)
        async with httpx.AsyncClient() as http:
            bench = EndpointBenchmark(
                client,
                model,
                runs=args.runs,
                vision=vision,
                metrics=None if args.no_metrics else scraping_reader(metrics_url, http),
                on_progress=_print_progress,
                temperature=profile.temperature,
                image_long_side=profile.image_long_side,
            )
            try:
                result = await bench.run()
            except asyncio.CancelledError:
                bench.cancel()
                raise
    echo()
    accuracy = None
    if args.accuracy_items > 0 and not result.cancelled and not result.error:
        accuracy = await _accuracy(args, profile, model, vision, result)
    line = accuracy.line() if accuracy is not None else ""
    echo(to_markdown(result, hardware=args.hardware, accuracy=line))
    if args.markdown is not None:
        try:
            written = export_benchmark(result, args.markdown, hardware=args.hardware,
                                       accuracy=line)  # fmt: skip
        except E.KanoaError as exc:
            return error(exc.message, exc.hint)
        echo(f"Table written to {name(written)}.")
    if result.error:
        return error(name(result.error))
    ran = [t for t in result.tasks if not t.skipped]
    if accuracy is not None and accuracy.state not in ("done", "skipped"):
        return 1
    return 0 if all(t.summary is not None for t in ran) else 1


async def _accuracy(args: argparse.Namespace, profile: Profile, model: str, vision, speed):
    """The accuracy pass on the benchmarked server and model (a one-line progress)."""
    import dataclasses

    from kanoa_desktop.core.ask.services import command_services
    from kanoa_desktop.core.score.run import ItemFailed, ItemScored

    target = dataclasses.replace(profile, api_base=args.api_base or profile.api_base,
                                 model=model)  # fmt: skip
    services = command_services(api_key=_api_key(profile))

    def progress(ev) -> None:
        if isinstance(ev, ItemScored | ItemFailed):
            done = len(ev.run.scores) + len(ev.run.failures)
            echo(f"[chart reading {done}/{len(ev.run.items)}]", flush=True)

    try:
        acc = AccuracyPass(target, services, items=args.accuracy_items, vision=vision,
                           listener=progress)  # fmt: skip
        return await acc.after(speed)
    finally:
        await services.aclose()


def run(args: argparse.Namespace) -> int:
    if args.runs < 1:
        return error("--runs must be at least 1.", status=2)
    from kanoa_desktop.core.score.suite import MAX_ITEMS

    if not 0 <= args.accuracy_items <= MAX_ITEMS:
        return error(f"--accuracy-items takes 0 to {MAX_ITEMS:,}.", status=2)
    profile, problem = _profile(args)
    if profile is None:
        return error(problem)
    return asyncio.run(_run(args, profile))
