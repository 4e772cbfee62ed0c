"""Entry point: ``kanoa-desktop`` / ``python -m kanoa_desktop``.

A known subcommand (``interpret``, ``metrics``, ``kb``...) runs the command line; anything
else starts the window, opening any files given.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from kanoa_desktop.cli import SUBCOMMANDS, run_cli

    if args and (args[0] in SUBCOMMANDS or args[0] in ("-h", "--help", "--version")):
        return run_cli(args)
    from kanoa_desktop.ui.app import run_app

    return run_app(args)


if __name__ == "__main__":
    sys.exit(main())
