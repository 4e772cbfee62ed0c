"""``kanoa-desktop interpret FILE``: stream an interpretation to stdout."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from kanoa_desktop.core.ask.interpret import (
    GenerationParams,
    Inputs,
    build_turn,
    load_input,
    summarise,
)
from kanoa_desktop.core.ask.prompts import DEFAULT_SYSTEM_PROMPT
from kanoa_desktop.core.ask.stats import StreamStats
from kanoa_desktop.core.ask.tokens import estimate_message_tokens
from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import Conversation, describe_payload
from kanoa_desktop.core.endpoint.client import DEFAULT_API_BASE, ChatClient, Timeouts
from kanoa_desktop.core.endpoint.events import ReasoningDelta, TextDelta
from kanoa_desktop.core.inputs.figures import FigureError, PreparedFigure
from kanoa_desktop.core.inputs.tables import LoadedTable, TableError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "interpret",
        help="stream an interpretation of a figure or a table to stdout",
        description="Stream an interpretation of figures (PNG, JPEG, SVG, ...) or a CSV/TSV table.",
    )
    p.add_argument("files", nargs="+", metavar="IMAGE_OR_CSV")
    p.add_argument("--context", default="", help="what the figure is about (kanoa's context=)")
    p.add_argument("--focus", default="", help="what to look at (kanoa's focus=)")
    p.add_argument("--question", "-q", default="", help="the question (default: interpret)")
    p.add_argument("--api-base", default=os.environ.get("KANOA_API_BASE", DEFAULT_API_BASE))
    p.add_argument("--model", default=None, help="default: the first model the server lists")
    p.add_argument(
        "--api-key-env",
        default="KANOA_API_KEY",
        metavar="VAR",
        help="environment variable holding the API key (never pass keys as arguments)",
    )
    p.add_argument("--max-tokens", type=int, default=1024)
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument(
        "--long-side", type=int, default=1024, help="downscale figures to this long side"
    )
    p.add_argument("--table-budget", type=int, default=1500, help="tokens for a table summary")
    p.add_argument("--system-prompt", default=DEFAULT_SYSTEM_PROMPT)
    p.add_argument("--timeout", type=float, default=180.0, help="read timeout in seconds")
    p.add_argument(
        "--show-request", action="store_true", help="print the request (images elided) to stderr"
    )


def _fail(err: E.KanoaError | FigureError | TableError) -> int:
    print(f"\nerror: {err.message}", file=sys.stderr)
    if err.hint:
        print(f"hint: {err.hint}", file=sys.stderr)
    return 1


async def _run(args: argparse.Namespace) -> int:
    inputs = Inputs(context=args.context, focus=args.focus, question=args.question)
    loop = asyncio.get_running_loop()
    for f in args.files:
        item = await loop.run_in_executor(None, lambda f=f: load_input(f, long_side=args.long_side))
        if isinstance(item, LoadedTable):
            inputs.table = item
            inputs.table_summary = summarise(item, args.table_budget)
        elif isinstance(item, PreparedFigure):
            inputs.figures.append(item)
    api_key = os.environ.get(args.api_key_env) or None
    async with ChatClient(
        args.api_base, api_key=api_key, timeouts=Timeouts(read=args.timeout)
    ) as client:
        model = args.model
        if not model:
            models = await client.models()
            if not models:
                print("error: the server lists no model; pass --model.", file=sys.stderr)
                return 1
            model = models[0].id
        request, _ = build_turn(
            Conversation(system_prompt=args.system_prompt),
            inputs,
            GenerationParams(model, args.temperature, args.max_tokens, args.top_p),
        )
        if args.show_request:
            print(describe_payload(request.payload()), file=sys.stderr)
        stats = StreamStats(prompt_estimate=estimate_message_tokens(request.messages))
        out = sys.stdout
        in_reasoning = False
        async for ev in client.stream_chat(request):
            stats.feed(ev)
            if isinstance(ev, ReasoningDelta):
                in_reasoning = True
                sys.stderr.write(ev.text)
                sys.stderr.flush()
            elif isinstance(ev, TextDelta):
                if in_reasoning:
                    sys.stderr.write("\n")
                    in_reasoning = False
                out.write(ev.text)
                out.flush()
        out.write("\n" + usage_line(stats) + "\n")
        out.flush()
    return 0


def usage_line(stats: StreamStats) -> str:
    est = " (estimated)" if stats.estimated else ""
    ttft = f"{stats.ttft_s:.2f} s" if stats.ttft_s is not None else "n/a"
    tps = stats.tokens_per_s()
    speed = f"{tps:.1f} tokens/s" if tps is not None else "n/a tokens/s"
    return (
        f"[usage] prompt {stats.prompt_tokens} tokens, output {stats.output_tokens} tokens{est}, "
        f"time to first token {ttft}, {speed}"
    )


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except (E.KanoaError, FigureError, TableError) as err:
        return _fail(err)
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            sys.stdout.write("\n[stopped]\n")
        return 130
