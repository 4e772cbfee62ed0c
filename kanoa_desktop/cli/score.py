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
import sys
import time
from pathlib import Path

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


def _fail(message: str, hint: str = "", code: int = 1) -> int:
    print(f"error: {report.safe_text(message, 'terminal')}", file=sys.stderr)
    if hint:
        print(f"hint: {report.safe_text(hint, 'terminal')}", file=sys.stderr)
    return code


def _profiles(args: argparse.Namespace) -> list[Profile]:
    if args.api_base:
        return [Profile(name=args.api_base, api_base=args.api_base, model="", temperature=0.0)]
    store = ProfileStore()
    store.load()
    found = []
    for name in args.profile:
        profile = store.get(name)
        if profile is None:
            raise KanoaError(
                f"There is no profile named {name!r} (profiles: {', '.join(store.names)}).",
                "Create it in Settings, or check the spelling.",
            )
        found.append(profile)
    return found


class _Progress:
    """One stderr line per profile at most once a second, and at the end."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, ev) -> None:
        t = report.safe_text
        if isinstance(ev, RunNotice):
            print(t(ev.message, "terminal"), file=sys.stderr, flush=True)
        elif isinstance(ev, ItemFailed):
            run = ev.run
            print(f"[{t(run.labels[ev.profile], 'terminal')}] {t(ev.failure.item, 'terminal')}"
                  f" failed: {t(ev.failure.error, 'terminal')}", file=sys.stderr, flush=True)  # fmt: skip
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
            print(
                f"[{report.safe_text(s.label, 'terminal')}] {s.n}/{s.total} scored, "
                f"{s.correct} right ({acc}, 95 % CI {s.ci_low * 100:.1f}–{s.ci_high * 100:.1f} %)",
                file=sys.stderr,
                flush=True,
            )


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
        out = sys.stdout
        if args.json:
            out.write(report.json_text(run, ended.summaries, ended.paired) + "\n")
        else:
            out.write(report.terminal_text(run, ended.summaries, ended.paired))
        out.flush()
        if args.out is not None:
            written = await asyncio.to_thread(report.write, run, args.out)
            print(f"wrote {report.safe_text(written, 'terminal')}", file=sys.stderr)
    finally:
        services.history.close()
    if ended.state == "stopped":
        print("Stopped: what was scored is kept; run the same command again to continue.",
              file=sys.stderr)  # fmt: skip
        return 130
    if ended.state != "done":
        print("Not every item was scored; run the same command again to continue.",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    if args.suite and not 1 <= args.n <= MAX_ITEMS:
        return _fail(f"-n takes 1 to {MAX_ITEMS:,} items.", code=2)
    if args.key is not None and args.n != DEFAULT_N:
        return _fail("-n sizes the suite; a key scores all its rows.", "Leave out -n.", code=2)
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        return _fail(f"--concurrency takes 1 to {MAX_CONCURRENCY}.", code=2)
    if args.profile and len(args.profile) > MAX_PROFILES:
        return _fail(f"A score run takes 1 to {MAX_PROFILES} profiles.", "Choose fewer.", code=2)
    if args.out is not None and args.out.suffix.lower() not in report.FORMATS:
        return _fail(
            f"{args.out.name}: a score report is Markdown (.md), HTML (.html) or CSV (.csv).",
            "Name the report file with one of these extensions.",
            code=2,
        )
    try:
        return asyncio.run(_run(args))
    except KanoaError as err:
        return _fail(err.message, err.hint)
