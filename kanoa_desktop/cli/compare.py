"""``kanoa-desktop compare FILE... --profile A --profile B``: several models, same inputs.

Every pane's answer streams concurrently (core/ask/compare.py); each answer is printed when
it ends, in pane order, then the comparison table. The comparison is saved in the history
as one entry (``--no-history`` to skip) and written with ``--markdown``/``--html``/``--pdf``.
Progress goes to stderr. Exit 0 when every pane answered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from kanoa_desktop.cli.interpret import add_input_options, question_inputs
from kanoa_desktop.cli.output import echo, name
from kanoa_desktop.cli.output import error as fail
from kanoa_desktop.core.ask.compare import (
    MAX_PANES,
    Comparison,
    ComparisonError,
    profiles_for_models,
)
from kanoa_desktop.core.ask.outbox import Outbox
from kanoa_desktop.core.ask.pipeline import AnswerDelta, StateChanged, TurnEnded
from kanoa_desktop.core.ask.services import command_services
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.history.endings import label as ending_label
from kanoa_desktop.core.inputs.plan import PlanOptions, take


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="ask 2 to 4 profiles (or models) the same question, side by side",
        description=(
            "Send the same figures, table, context, focus and question to 2 to 4 profiles "
            "(or to several models of one profile's server) at once, print each answer and "
            "a table comparing time to first token, tokens/s, output tokens, cost, energy "
            "and finish reason. Saved in the history as one entry."
        ),
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="figures, tables, notebooks, PDFs")
    p.add_argument("--profile", action="append", default=[], metavar="NAME",
                   help="a profile to compare (repeat: 2 to 4)")  # fmt: skip
    p.add_argument("--model", action="append", default=[], metavar="MODEL",
                   help="with one --profile: compare these models of its server (repeat)")  # fmt: skip
    p.add_argument("--context", default="", help="what the figure is about (kanoa's context=)")
    p.add_argument("--focus", default="", help="what to look at (kanoa's focus=)")
    p.add_argument("--question", "-q", default="", help="the question (default: interpret)")
    p.add_argument("--markdown", type=Path, default=None, metavar="OUT",
                   help="write the comparison as Markdown (figures beside it)")  # fmt: skip
    p.add_argument("--html", type=Path, default=None, metavar="OUT", help="write it as HTML")
    p.add_argument("--pdf", type=Path, default=None, metavar="OUT", help="write it as PDF")
    p.add_argument("--no-history", action="store_true", help="do not save it in the history")
    add_input_options(p)


def _profiles(args: argparse.Namespace) -> list[Profile]:
    store = ProfileStore()
    store.load()
    names = args.profile or ([store.active.name] if args.model else [])
    found = []
    for wanted in names:
        profile = store.get(wanted)
        if profile is None:
            raise ComparisonError(
                f"There is no profile named {wanted!r} (profiles: {', '.join(store.names)}).",
                "Create it in Settings, or check the spelling.",
            )
        found.append(profile)
    if args.model:
        if len(found) != 1:
            raise ComparisonError(
                "--model compares models of one server: give exactly one --profile with it.",
                "Or compare profiles with --profile A --profile B.",
            )
        return profiles_for_models(found[0], args.model)
    return found


def load_inputs(args: argparse.Namespace, profiles: list[Profile]) -> Outbox:
    """One question's inputs for every pane, by the one input plan (core/inputs/plan.py):
    the largest long side of the profiles, the smallest images-per-prompt they know."""
    limits = [p.max_images for p in profiles if p.max_images]
    options = PlanOptions(
        pages=args.pages,
        sheet=args.sheet,
        long_side=max((p.image_long_side for p in profiles), default=1024),
        max_images=min(limits, default=None),
    )
    if not args.files:
        return Outbox(context=args.context, focus=args.focus)
    return question_inputs(take(args.files, options), args.context, args.focus)


async def _run(args: argparse.Namespace) -> int:
    profiles = _profiles(args)
    from kanoa_desktop.core.config.secrets import KeyStore

    services = command_services(KeyStore(), history=not args.no_history)
    inputs = await asyncio.to_thread(load_inputs, args, profiles)

    def on_event(ev) -> None:
        if isinstance(ev, StateChanged | TurnEnded | AnswerDelta):
            pane = comparison.pane_of(ev.runner)
            if pane is None:
                return
            label = name(comparison.panes[pane].label)
            if isinstance(ev, StateChanged) and ev.state in ("waiting", "streaming"):
                echo(f"[{label}] {ev.state}", err=True, flush=True)
            elif isinstance(ev, TurnEnded):
                ending = ending_label(ev.state, ev.finish_reason, ev.error.title if ev.error else "")
                echo(f"[{label}] {name(ending)}", err=True, flush=True)

    comparison = Comparison(profiles, services, listener=on_event, outbox=inputs)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, comparison.stop_all, "Ctrl+C")
    try:
        ended = await comparison.ask(args.question)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        await services.pool.aclose()
    for pane, end in zip(comparison.panes, ended, strict=True):
        model = pane.runner.model or pane.profile.model
        echo(f"\n## {name(pane.label)} ({name(model)})\n")
        echo(end.answer.strip() or "(no text)")
        if end.note:
            echo(f"\n*{name(end.note)}*")
        if end.error is not None:
            echo(f"\nerror: {name(end.error.message)}")
            if end.error.hint:
                echo(f"hint: {name(end.error.hint)}")
    echo("\n" + comparison.table_markdown(), flush=True)
    status = 0 if all(e.state == "done" for e in ended) else 1
    exports = [(args.markdown, "markdown"), (args.html, "html"), (args.pdf, "pdf")]
    if any(path for path, _ in exports):
        stored = comparison.load()
        if stored is None:
            status = fail(
                "nothing was recorded to export (no pane reached a server, or --no-history "
                "was given)."
            )
        else:
            from kanoa_desktop.core.ask.compare_report import export_comparison

            for path, fmt in exports:
                if path is not None:
                    written = export_comparison(stored, path, fmt)
                    echo(f"wrote {name(written)}", err=True)
    if services.history is not None:
        services.history.close()
    return status


def run(args: argparse.Namespace) -> int:
    if len(args.profile) > MAX_PANES or len(args.model) > MAX_PANES:
        return fail(f"A comparison takes at most {MAX_PANES} panes.", "Choose fewer.")
    try:
        return asyncio.run(_run(args))
    except KanoaError as err:
        return fail(err.message, err.hint)
