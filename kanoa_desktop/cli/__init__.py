"""Command line over the same core as the window.

Each subcommand lives in its own module exposing ``add_parser(subparsers)`` and
``run(args) -> int``. ``kanoa-desktop`` with no subcommand (or with only files) starts
the window.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from kanoa_desktop import __version__

# subcommand name -> module under kanoa_desktop.cli
SUBCOMMANDS: dict[str, str] = {
    "interpret": "interpret",
    "metrics": "metrics",
    "kb": "kb",
    "bench-endpoint": "bench_endpoint",
    "fleet": "fleet",
    "history": "history",
    "compare": "compare",
    "batch": "batch",
    "score": "score",
}


def _load(name: str):
    return importlib.import_module(f"kanoa_desktop.cli.{SUBCOMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kanoa-desktop",
        description="Interpret scientific figures and tables with local multimodal models.",
        epilog=(
            "Without a command, kanoa-desktop starts the window: "
            "kanoa-desktop [FILE ...] [--profile NAME] [--new-instance] "
            "[--self-test [--server URL]]. Files open in the running window if there is one."
        ),
    )
    parser.add_argument("--version", action="version", version=f"kanoa-desktop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = _load(name)
        except ModuleNotFoundError:
            continue  # subcommand not built yet
        module.add_parser(sub)
    return parser


def run_cli(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    module = _load(args.command)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        from kanoa_desktop.cli.output import echo

        echo("Interrupted.", err=True)
        return 130
