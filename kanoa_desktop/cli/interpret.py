"""``kanoa-desktop interpret FILE...``: the window's ask pipeline from the command line.

The question runs through :class:`~kanoa_desktop.core.ask.pipeline.ConversationRunner`, as
in the window: a profile (``--profile NAME``, else the active one) gives the endpoint, the
model, the key (from the keychain), generation settings, prices, TLS options and the
knowledge-base folders; ``--kb FOLDER`` adds folders, indexed first (progress on stderr).
Options such as ``--api-base``, ``--model`` and ``--max-tokens`` override the profile for
this run only. The answer streams to stdout, followed by the sources it was given (those
it cited marked) and one usage line with the cost; notices, errors and where the turn was
saved go to stderr. The turn is recorded in the history unless ``--no-history``.

Until the first token, a terminal's stderr shows one line, rewritten in place, saying what
the server is doing (reading the prompt, the queue ahead, or the time waited); it is
erased when the answer starts. Piped, stderr gets nothing extra.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from kanoa_desktop.cli.output import echo, error, name
from kanoa_desktop.core.ask.outbox import Outbox
from kanoa_desktop.core.ask.pipeline import (
    AnswerDelta,
    Asked,
    ConversationRunner,
    Notice,
    Progress,
    ReasoningText,
    Sources,
    TurnEnded,
    profile_with,
)
from kanoa_desktop.core.ask.services import command_services
from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.core.config.secrets import KeyStore
from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import describe_payload
from kanoa_desktop.core.endpoint.stats import StreamStats
from kanoa_desktop.core.inputs.plan import MAX_IMAGES_PER_QUESTION, PlanOptions, take
from kanoa_desktop.core.inputs.tables import DEFAULT_TABLE_TOKEN_BUDGET


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "interpret",
        help="stream an interpretation of figures or a table to stdout",
        description=(
            "Stream an interpretation of figures (PNG, JPEG, SVG, ...), a table (CSV, TSV, "
            "Excel, Parquet), PDF pages or a notebook's figures, through the same pipeline "
            "as the window. Settings come from the profile; options override them."
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--profile", metavar="NAME", help="endpoint profile (default: the active one)")
    p.add_argument("--context", default="", help="what the figure is about (kanoa's context=)")
    p.add_argument("--focus", default="", help="what to look at (kanoa's focus=)")
    p.add_argument("--question", "-q", default="", help="the question (default: interpret)")
    p.add_argument(
        "--kb",
        action="append",
        default=[],
        metavar="FOLDER",
        help="ground the answer in this folder too (repeatable; the profile's folders are used)",
    )
    p.add_argument("--no-kb", action="store_true", help="ignore the profile's knowledge base")
    p.add_argument("--no-history", action="store_true", help="do not record the turn")
    p.add_argument(
        "--api-base",
        default=os.environ.get("KANOA_API_BASE") or None,
        metavar="URL",
        help="override the profile's endpoint (also $KANOA_API_BASE)",
    )
    p.add_argument("--model", default=None, help="override the profile's model")
    p.add_argument(
        "--api-key-env",
        default="KANOA_API_KEY",
        metavar="VAR",
        help="environment variable with an API key that overrides the keychain's "
        "(default KANOA_API_KEY; never pass keys as arguments)",
    )
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--long-side", type=int, default=None, help="downscale figures to this side")
    p.add_argument(
        "--table-budget",
        type=int,
        default=DEFAULT_TABLE_TOKEN_BUDGET,
        help=f"tokens for a table summary (default {DEFAULT_TABLE_TOKEN_BUDGET})",
    )
    add_input_options(p)
    p.add_argument("--system-prompt", default=None)
    defaults = Profile()
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help=f"one silent read, seconds (profile default {defaults.request_timeout_s:g})",
    )
    p.add_argument(
        "--first-token-timeout",
        type=float,
        default=None,
        metavar="S",
        help="from sending the question to the first token, seconds "
        f"(profile default {defaults.first_token_timeout_s:g})",
    )
    p.add_argument(
        "--progress-timeout",
        type=float,
        default=None,
        metavar="S",
        help="the longest wait between two tokens, seconds "
        f"(profile default {defaults.progress_timeout_s:g})",
    )
    p.add_argument(
        "--show-request", action="store_true", help="print the request (images elided) to stderr"
    )


INPUTS_HELP = (
    "What files become (the same in the window, interpret, compare and batch): a figure is "
    "one image; a table (CSV, TSV, Parquet) is sent as its summary; a workbook is one sheet "
    "(--sheet, else the first with data); a PDF is whole pages (--pages; a one-page PDF "
    "needs none, a longer one is refused without it); a notebook is every figure output "
    "with its cell's code as context; a folder is its figures, tables, PDFs and notebooks."
)
QUESTION_HELP = (
    " A question takes one table and at most the profile's images per prompt (else "
    f"{MAX_IMAGES_PER_QUESTION})."
)
BATCH_HELP = " A batch asks each page (all by default), notebook figure and sheet on its own."


def add_input_options(p: argparse.ArgumentParser, *, batch: bool = False) -> None:
    """--pages and --sheet, and what files become (core/inputs/plan.py), for each command."""
    p.epilog = INPUTS_HELP + (BATCH_HELP if batch else QUESTION_HELP)
    p.add_argument("--pages", default=None, metavar="PAGES", help="PDF pages, e.g. 1,3-4 or all")
    first = "each sheet with data" if batch else "the first with data"
    p.add_argument("--sheet", default=None, metavar="NAME", help=f"workbook sheet (default: {first})")


def _say(err: Any) -> int:
    return error(err.message, getattr(err, "hint", ""), lead="\n")


def load_inputs(args: argparse.Namespace, profile: Profile) -> Outbox:
    """What the question sends, from the files given by the one input plan (core/inputs/
    plan.py); its warnings go to stderr, never only into the prompt."""
    options = PlanOptions.for_profile(
        profile, pages=args.pages, sheet=args.sheet, table_budget=args.table_budget
    )
    return question_inputs(take(args.files, options), args.context, args.focus)


def question_inputs(taken: Any, context: str, focus: str) -> Outbox:
    """The :class:`Outbox` of what the plan took, its warnings told on stderr."""
    for warning in taken.warnings:
        echo(f"warning: {name(warning)}", err=True)
    return Outbox.taking(taken, context, focus)


def choose_profile(args: argparse.Namespace, keys: KeyStore) -> tuple[Profile, ProfileStore]:
    """The profile to ask with (``--profile`` or the active one), with this run's overrides."""
    store = ProfileStore(keys=keys)
    for problem in store.load():
        echo(f"warning: {name(problem.message)}", err=True)
    if args.profile:
        profile = store.get(args.profile)
        if profile is None:
            raise E.KanoaError(
                f"No profile named {args.profile!r}.",
                f"Profiles: {', '.join(store.names)}. Add one in the window's Settings.",
            )
    else:
        profile = store.active
    folders = [] if args.no_kb else list(profile.kb_folders)
    for folder in args.kb:
        if not Path(folder).is_dir():
            raise E.KanoaError(f"Not a folder: {folder}.", "Give --kb the path of a folder.")
        folders.append(str(Path(folder).resolve()))
    overrides: dict[str, Any] = dict(
        api_base=args.api_base,
        model=args.model,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        image_long_side=args.long_side,
        system_prompt=args.system_prompt,
        request_timeout_s=args.timeout,
        first_token_timeout_s=args.first_token_timeout,
        progress_timeout_s=args.progress_timeout,
        kb_folders=tuple(dict.fromkeys(folders)),
    )
    return profile_with(profile, **overrides), store


def open_knowledge_base(folders: tuple[str, ...], *, follow_links_outside: bool = False):
    """The knowledge base over ``folders``, indexed now (progress on stderr), or None."""
    if not folders:
        return None
    from kanoa_desktop.cli.kb import _print_report, _run_index
    from kanoa_desktop.core.kb.index import KnowledgeBase

    present = [f for f in folders if Path(f).is_dir()]
    for missing in sorted(set(folders) - set(present)):
        echo(f"warning: knowledge-base folder {name(missing)} is missing; left out.", err=True)
    if not present:
        return None
    kb = KnowledgeBase(present, follow_links_outside=follow_links_outside)
    try:
        report = _run_index(kb, show_progress=True)
    except BaseException:
        kb.close()
        raise
    if report.problems:
        _print_report(report)
    return kb


def usage_line(stats: StreamStats | None, cost: float, model: str) -> str:
    if stats is None or not stats.served:  # refused, or failed before an answer: nothing
        return f"[usage] prompt 0 tokens, output 0 tokens, cost {format_cost(0)}, model {model}"
    est = " (estimated)" if stats.estimated else ""
    ttft = f"{stats.ttft_s:.2f} s" if stats.ttft_s is not None else "n/a"
    tps = stats.tokens_per_s()
    speed = f"{tps:.1f} tokens/s" if tps is not None else "n/a tokens/s"
    return (
        f"[usage] prompt {stats.prompt_tokens} tokens, output {stats.output_tokens} tokens{est}, "
        f"time to first token {ttft}, {speed}, cost {format_cost(cost, stats.estimated)}, "
        f"model {model}"
    )


def sources_text(grounding: Any, answer: str) -> str:
    """The passages the answer was given, ``*`` on those it cited."""
    cited = {p.number for p in grounding.cited(answer)}
    lines = ["Sources (* cited):"]
    for p in grounding.passages:
        lines.append(f"  [{p.number}]{'*' if p.number in cited else ' '} {name(p.source.label())}")
    return "\n".join(lines)


def _is_tty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(callable(isatty) and isatty())
    except ValueError:  # a closed stream
        return False


class _Printer:
    """Renders the runner's events: the answer on stdout, the rest on stderr."""

    def __init__(self, show_request: bool) -> None:
        self.show_request = show_request
        self.in_reasoning = False
        self.sources: Sources | None = None
        self.status_line = False  # a progress line is on the terminal, to erase
        self.answering = False
        self.stdout_closed = False  # the reader of stdout went away (| head)
        self.on_stdout_closed: Any = None

    def _erase_status(self) -> None:
        if self.status_line:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.status_line = False

    def _progress(self, ev: Progress) -> None:
        # Only on a terminal, and only before the answer: a line rewritten in place would
        # tear the answer's own line, and a pipe or a log file wants no such noise.
        if self.answering or ev.activity.phase in ("streaming", "silent"):
            return
        if not _is_tty(sys.stderr):
            return
        sys.stderr.write("\r\x1b[K" + ev.activity.text())
        sys.stderr.flush()
        self.status_line = True

    def __call__(self, ev: Any) -> None:
        try:
            self._render(ev)
        except BrokenPipeError:
            # Nobody reads the answer any more: stop it (the server stops generating).
            self.stdout_closed = True
            if self.on_stdout_closed is not None:
                self.on_stdout_closed()

    def _render(self, ev: Any) -> None:
        if isinstance(ev, Progress):
            self._progress(ev)
            return
        if isinstance(ev, AnswerDelta | ReasoningText | TurnEnded):
            self.answering = True
            self._erase_status()
        if self.stdout_closed:
            return
        if isinstance(ev, AnswerDelta):
            if self.in_reasoning:
                echo(err=True)
                self.in_reasoning = False
            echo(ev.text, end="", flush=True)
        elif isinstance(ev, ReasoningText):
            self.in_reasoning = True
            echo(ev.text, err=True, end="", flush=True)
        elif isinstance(ev, Notice):
            hint = f" ({ev.hint})" if ev.hint else ""
            echo(f"note: {ev.title}: {ev.message}{hint}", err=True)
        elif isinstance(ev, Asked) and self.show_request:
            echo(describe_payload(ev.payload), err=True)
        elif isinstance(ev, Sources):
            self.sources = ev


async def _ask(
    args, profile: Profile, store: ProfileStore, keys: KeyStore, inputs: Outbox, kb
) -> int:
    api_key = os.environ.get(args.api_key_env) or None
    services = command_services(keys, api_key=api_key, history=not args.no_history,
                                vision=store, knowledge_base=lambda: kb)  # fmt: skip
    if services.history is not None and services.history.problem is not None:
        echo(f"warning: {name(services.history.problem.brief)}", err=True)
    printer = _Printer(args.show_request)
    runner = ConversationRunner(profile, services, listener=printer, outbox=inputs)
    printer.on_stdout_closed = lambda: runner.stop("Stopped: the output was closed.")
    try:
        ended: TurnEnded = await runner.ask(args.question)
    finally:
        await services.aclose()
    if printer.stdout_closed:
        raise BrokenPipeError  # the entry point ends quietly (status 141)
    echo()
    if ended.note:
        echo(ended.note, err=True)
    if printer.sources is not None:
        grounding = printer.sources.grounding
        if grounding.passages:
            echo("\n" + sources_text(grounding, ended.answer))
        elif grounding.notice:
            echo(f"note: {grounding.notice}", err=True)
    if ended.stats is not None:
        echo(usage_line(ended.stats, ended.cost, name(runner.model)), flush=True)
    if services.history is not None and ended.turn_id is not None:
        echo(_saved_line(services.history, runner.conversation_id), err=True)
    if isinstance(ended.error, E.VisionUnsupported) and not store.read_only:
        # Remembered (only this key: a Settings change saved meanwhile stays), so next
        # time figures are not sent to this model.
        if (problem := store.save()) is not None:
            echo(f"warning: {name(problem.message)}", err=True)
    if ended.error is not None:
        return _say(ended.error)
    return 0


def _saved_line(history, conversation_id: int | None) -> str:
    """Whether the answer reached the history file (the store is closed: nothing more
    will be written), in the words the user needs."""
    cid = history.real_id(conversation_id)
    if history.pending or cid is None:
        why = history.problem.brief if history.problem else "the history could not be written."
        return f"Not saved in history: {why}"
    return f"Saved in history: kanoa-desktop history show {cid}"


def run(args: argparse.Namespace) -> int:
    kb = None
    try:
        keys = KeyStore()
        profile, store = choose_profile(args, keys)
        inputs = load_inputs(args, profile)
        kb = open_knowledge_base(profile.kb_folders, follow_links_outside=profile.kb_follow_links)
        return asyncio.run(_ask(args, profile, store, keys, inputs, kb))
    except E.KanoaError as err:
        return _say(err)
    except KeyboardInterrupt:
        echo("\n[stopped]", err=True)
        return 130
    finally:
        if kb is not None:
            kb.close()
