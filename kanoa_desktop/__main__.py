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

    if "--self-test" in args:
        # The self-test drives the window itself; dispatched here so ui.app never
        # imports it (no import cycle between the self-test and the window).
        from kanoa_desktop.selftest import main as self_test

        return self_test(args)
    if args and (args[0] in SUBCOMMANDS or args[0] in ("-h", "--help", "--version")):
        return run_cli(args)
    from kanoa_desktop.ui.app import run_app

    return run_app(args)


if __name__ == "__main__":
    sys.exit(main())
