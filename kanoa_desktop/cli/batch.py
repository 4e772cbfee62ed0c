"""``kanoa-desktop batch FOLDER|FILE... --profile P --out report.md``: a whole folder.

Runs core/batch/runner.py: the same template over every figure, table (workbook sheet),
notebook figure and PDF page, ``--concurrency`` at a time. Progress goes to stderr, one
line per finished item. Resumable by content: the same command again keeps the answers
of unchanged items, asks only new and changed ones (after Ctrl+C, a crash or a kill too)
and says what it did ("3 kept, 1 new, 1 changed; asked 2"); ``--retry-failed`` asks the
failed items again. Exit 0 when every item succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from pathlib import Path

from kanoa_desktop.cli.interpret import add_input_options
from kanoa_desktop.cli.output import echo, name
from kanoa_desktop.cli.output import error as fail
from kanoa_desktop.core.ask.services import command_services
from kanoa_desktop.core.batch.plan import Template
from kanoa_desktop.core.batch.report import REPORT_SUFFIXES, write_report
from kanoa_desktop.core.batch.runner import (
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    Batch,
    BatchEnded,
    ItemFinished,
    format_duration,
)
from kanoa_desktop.core.batch.store import BatchStore
from kanoa_desktop.core.config.profiles import ProfileStore
from kanoa_desktop.core.endpoint.errors import KanoaError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="interpret every figure and table of a folder, resumably",
        description=(
            "Ask one profile the same question about every figure, table, notebook figure "
            "and PDF page of a folder (or of the files given). Templates may use {name}, "
            "{stem}, {folder} and {item}. Running the same command again keeps the answers "
            "of unchanged items and asks only new and changed ones."
        ),
    )
    p.add_argument("sources", nargs="+", metavar="FOLDER_OR_FILE")
    p.add_argument("--profile", default=None, metavar="NAME", help="default: the active one")
    p.add_argument("--concurrency", "-j", type=int, default=DEFAULT_CONCURRENCY,
                   help=f"items asked at once (1 to {MAX_CONCURRENCY}, default 2)")  # fmt: skip
    p.add_argument("--out", "-o", type=Path, action="append", default=[], metavar="REPORT",
                   help="report file: .md, .html or .csv (repeat for several)")  # fmt: skip
    p.add_argument("--context", default="", help="context template, e.g. 'Run {stem}'")
    p.add_argument("--focus", default="", help="focus template")
    p.add_argument("--question", "-q", default="", help="question template")
    p.add_argument("--retry-failed", action="store_true", help="ask the failed items again")
    p.add_argument("--state", type=Path, default=None, metavar="FILE",
                   help="where results are kept (default: the data folder's batches.sqlite3)")  # fmt: skip
    p.add_argument("--api-key-env", default="KANOA_API_KEY", metavar="VAR",
                   help="environment variable with an API key (default: the keychain)")  # fmt: skip
    add_input_options(p, batch=True)


def _on_event(ev) -> None:
    if isinstance(ev, ItemFinished):
        p = ev.batch.progress()
        r = ev.result
        for warning in filter(None, r.warnings.split("\n")):
            echo(f"warning: {name(r.label)}: {name(warning)}", err=True)
        what = f"done ({r.duration_s:.1f} s)" if r.ok else f"failed: {name(r.error)}"
        left = (
            f" (about {format_duration(p.eta_s)} left)"
            if p.eta_s is not None and p.remaining
            else ""
        )
        echo(f"[{p.finished}/{p.total}] {name(r.label)}: {what}{left}", err=True, flush=True)
    elif isinstance(ev, BatchEnded):
        echo(f"{ev.progress.line()} ({ev.line()})", err=True, flush=True)


async def _run(args: argparse.Namespace) -> int:
    store = ProfileStore()
    store.load()
    profile = store.active if args.profile is None else store.get(args.profile)
    if profile is None:
        return fail(
            f"There is no profile named {args.profile!r} (profiles: {', '.join(store.names)}).",
            "Create it in Settings, or check the spelling.",
        )
    from kanoa_desktop.core.config.secrets import KeyStore

    results = BatchStore(args.state)  # a clear BatchError when it cannot be opened
    services = command_services(KeyStore(), api_key=os.environ.get(args.api_key_env) or None,
                                history=False, vision=store)  # fmt: skip
    batch = Batch(
        args.sources,
        profile,
        Template(args.context, args.focus, args.question),
        services,
        store=results,
        concurrency=args.concurrency,
        listener=_on_event,
        pages=args.pages,
        sheet=args.sheet,
    )
    loop = asyncio.get_running_loop()
    try:
        await batch.prepare()
        for warning in batch.warnings:
            echo(f"warning: {name(warning)}", err=True)
        echo(f"{len(batch.items)} items: {batch.rerun.line()}.", err=True, flush=True)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, batch.cancel)
            loop.add_signal_handler(signal.SIGTERM, batch.cancel)
        ended = await (batch.retry_failed() if args.retry_failed else batch.run())
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await services.aclose()
        results.close()
    if (unsaved := results.unsaved_note()) is not None:
        echo(f"note: {name(unsaved)}", err=True)
    for path in args.out:
        echo(f"wrote {name(write_report(batch, path))}", err=True)
    if ended.state == "cancelled":
        echo("Cancelled: run the same command again to continue.", err=True)
        return 1
    for r in batch.failures:
        echo(f"failed: {name(r.label)}: {name(r.error)}", err=True)
    return 0 if not batch.failures else 1


def run(args: argparse.Namespace) -> int:
    bad = [p for p in args.out if p.suffix.lower() not in REPORT_SUFFIXES]
    if bad:
        return fail(
            f"{name(bad[0].name)}: a report is Markdown (.md), HTML (.html), PDF (.pdf) or "
            "CSV (.csv).",
            "Name the report file with one of these extensions.",
        )
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        return fail(f"--concurrency takes 1 to {MAX_CONCURRENCY}.")
    try:
        return asyncio.run(_run(args))
    except KanoaError as err:
        return fail(err.message, err.hint)
