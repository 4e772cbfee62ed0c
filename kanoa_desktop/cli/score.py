"""``kanoa-desktop score``: which model reads charts best, scored (core/score).

    kanoa-desktop score (--suite charts [-n N] [--seed S] | --key FILE.csv)
                        (--profile NAME ... | --api-base URL)
                        [--concurrency J] [--json] [--out FILE]

Every item is asked of every profile through the same question path as ``interpret``, and
kept in the history. Progress goes to stderr; the results (a table and the paired verdicts,
or one JSON object with ``--json``) to stdout; ``--out`` writes Markdown, HTML or CSV by its
suffix. Ctrl+C stops and keeps what was scored; running the same command again continues
an unfinished run (scored items are not asked again). Exit 0 when every item was scored, 1
when some were not (failures, a server that stopped), 2 for bad arguments, 130 when stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from kanoa_desktop.cli.output import echo, echo_json, error, name, table
from kanoa_desktop.core.ask.services import command_services
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.score import report
from kanoa_desktop.core.score.run import (
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    MAX_PROFILES,
    ItemFailed,
    ItemScored,
    RunNotice,
    ScoreRun,
    key_source,
    suite_source,
)
from kanoa_desktop.core.score.suite import MAX_ITEMS, SUITE_NAME

DEFAULT_N = 64
PROGRESS_EVERY_S = 1.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score chart-reading accuracy of 1 to 4 profiles (a chart suite or your key)",
        description=(
            "Ask 1 to 4 profiles the questions of the generated chart suite (seeded and "
            "versioned; the truth comes from the data that drew each chart) or of your own "
            "answer key (a CSV: file,question,answer[,tolerance], files relative to the "
            "CSV), and report accuracy with its Wilson 95 % interval, accuracy per question "
            "template, the share of answers that could not be read, the mean relative "
            "error, tokens/s and cost per correct answer. Two or more profiles are compared "
            "on the same items with McNemar's exact test. Running the same command again "
            "continues an unfinished run."
        ),
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--suite", choices=[SUITE_NAME], help="the generated chart suite")
    what.add_argument("--key", type=Path, metavar="FILE.csv", help="your answer key")
    p.add_argument("-n", type=int, default=DEFAULT_N, metavar="N",
                   help=f"suite items (1 to {MAX_ITEMS}, default {DEFAULT_N})")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, metavar="S", help="suite seed (default 0)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--profile", action="append", metavar="NAME",
                     help=f"a profile to score (repeat: 1 to {MAX_PROFILES})")  # fmt: skip
    who.add_argument("--api-base", metavar="URL",
                     help="a server to score without a profile (its first model, temperature 0)")  # fmt: skip
    p.add_argument("--concurrency", "-j", type=int, default=DEFAULT_CONCURRENCY, metavar="J",
                   help=f"questions at once per profile (1 to {MAX_CONCURRENCY}, "
                   f"default {DEFAULT_CONCURRENCY})")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--out", "-o", type=Path, default=None, metavar="FILE",
                   help="write a report: .md, .html or .csv")  # fmt: skip
    p.add_argument("--api-key-env", default="KANOA_API_KEY", metavar="VAR",
                   help="environment variable with an API key (default: the keychain)")  # fmt: skip


def _profiles(args: argparse.Namespace) -> list[Profile]:
    if args.api_base:
        return [Profile(name=args.api_base, api_base=args.api_base, model="", temperature=0.0)]
    store = ProfileStore()
    store.load()
    found = []
    for wanted in args.profile:
        profile = store.get(wanted)
        if profile is None:
            raise KanoaError(
                f"There is no profile named {wanted!r} (profiles: {', '.join(store.names)}).",
                "Create it in Settings, or check the spelling.",
            )
        found.append(profile)
    return found


class _Progress:
    """One stderr line per profile at most once a second, and at the end."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, ev) -> None:
        if isinstance(ev, RunNotice):
            echo(name(ev.message), err=True, flush=True)
        elif isinstance(ev, ItemFailed):
            echo(f"[{name(ev.run.labels[ev.profile])}] {name(ev.failure.item)} failed: "
                 f"{name(ev.failure.error)}", err=True, flush=True)  # fmt: skip
        elif isinstance(ev, ItemScored):
            now = time.monotonic()
            if now - self.last < PROGRESS_EVERY_S:
                return
            self.last = now
            self.print(ev.run)

    @staticmethod
    def print(run: ScoreRun) -> None:
        for s in run.summaries():
            acc = f"{s.accuracy * 100:.1f} %" if s.accuracy is not None else "–"
            echo(
                f"[{name(s.label)}] {s.n}/{s.total} scored, {s.correct} right "
                f"({acc}, 95 % CI {s.ci_low * 100:.1f}–{s.ci_high * 100:.1f} %)",
                err=True,
                flush=True,
            )


def results_text(run: ScoreRun, summaries, paired) -> str:
    """The results as the command prints them: the aligned table and the verdicts."""
    lines = [f"Score: {name(run.source.label)}",
             table(report.SUMMARY_HEADERS, report.summary_cells(summaries), "ll" + "r" * 9)]  # fmt: skip
    lines += [name(s.halted) for s in summaries if s.halted]
    lines += [name(p.verdict()) for p in paired]
    return "\n".join(lines)


async def _run(args: argparse.Namespace) -> int:
    profiles = _profiles(args)
    if args.key is not None:
        source = await asyncio.to_thread(key_source, args.key)
    else:
        source = suite_source(args.n, args.seed)
    from kanoa_desktop.core.config.secrets import KeyStore

    services = command_services(KeyStore(), api_key=os.environ.get(args.api_key_env) or None)
    progress = _Progress()
    run = ScoreRun(source, profiles, services, concurrency=args.concurrency, listener=progress)
    loop = asyncio.get_running_loop()
    try:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, run.stop)
            loop.add_signal_handler(signal.SIGTERM, run.stop)
        ended = await run.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await services.pool.aclose()
    try:
        progress.print(run)
        if args.json:
            echo_json(report.to_json(run, ended.summaries, ended.paired), indent=2, flush=True)
        else:
            echo(results_text(run, ended.summaries, ended.paired), flush=True)
        if args.out is not None:
            written = await asyncio.to_thread(report.write, run, args.out)
            echo(f"wrote {name(written)}", err=True)
    finally:
        services.history.close()
    if ended.state == "stopped":
        echo("Stopped: what was scored is kept; run the same command again to continue.",
             err=True)  # fmt: skip
        return 130
    if ended.state != "done":
        echo("Not every item was scored; run the same command again to continue.", err=True)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    if args.suite and not 1 <= args.n <= MAX_ITEMS:
        return error(f"-n takes 1 to {MAX_ITEMS:,} items.", status=2)
    if args.key is not None and args.n != DEFAULT_N:
        return error("-n sizes the suite; a key scores all its rows.", "Leave out -n.", status=2)
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        return error(f"--concurrency takes 1 to {MAX_CONCURRENCY}.", status=2)
    if args.profile and len(args.profile) > MAX_PROFILES:
        return error(f"A score run takes 1 to {MAX_PROFILES} profiles.", "Choose fewer.", status=2)
    try:
        if args.out is not None:
            report.check(args.out)
    except KanoaError as err:
        return error(err.message, err.hint, status=2)
    try:
        return asyncio.run(_run(args))
    except KanoaError as err:
        return error(err.message, err.hint)
