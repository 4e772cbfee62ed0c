"""Entry point: ``kanoa-desktop`` / ``python -m kanoa_desktop``.

A known subcommand (``interpret``, ``metrics``, ``kb``...) runs the command line; a first
word that is neither a subcommand nor an existing file is refused with the list of
commands; anything else starts the window, opening any files given. The log file
(core/config/logs.py) is set up first, for the window and the command line alike.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

# A command name, not a file name: no dot, no slash, no option dash.
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def unknown_command(args: Sequence[str], commands: Sequence[str]) -> str | None:
    """The message for a first argument that looks like a command but is none, else None."""
    if not args:
        return None
    first = args[0]
    if first in commands or not _WORD.fullmatch(first) or Path(first).exists():
        return None
    return (
        f"kanoa-desktop: unknown command {first!r}. Commands: {', '.join(commands)}. "
        "To open files in the window, name files that exist; see kanoa-desktop --help."
    )


#: The status of a command whose output was cut off by a closed pipe (``| head``): what a
#: shell reports for a process ended by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


def quiet_broken_pipe() -> int:
    """After ``BrokenPipeError`` on stdout: point stdout at /dev/null so the interpreter's
    last flush cannot raise again (that would print "Exception ignored ... BrokenPipeError"),
    and return :data:`EXIT_BROKEN_PIPE`."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (a test's capture): nothing to quiet
        pass
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line or the window. A reader that stops reading (``fleet --json |
    head``) ends any command quietly with status 141, here, once for every command."""
    try:
        status = _main(argv)
        if sys.stdout is not None:
            sys.stdout.flush()  # here, not in the interpreter's exit, where it cannot be caught
        return status
    except BrokenPipeError:
        return quiet_broken_pipe()


def _main(argv: Sequence[str] | None) -> int:
    _fault_handler_on_stderr()  # a native crash while starting still says where
    args = list(sys.argv[1:] if argv is None else argv)
    from kanoa_desktop.cli import SUBCOMMANDS, run_cli
    from kanoa_desktop.core.config.logs import setup_logging

    setup_logging()
    if "--self-test" in args:
        # The self-test drives the window itself; dispatched here so ui.app never
        # imports it (no import cycle between the self-test and the window).
        from kanoa_desktop.selftest import main as self_test

        return self_test(args)
    if args and (args[0] in SUBCOMMANDS or args[0] in ("-h", "--help", "--version")):
        return run_cli(args)
    problem = unknown_command(args, list(SUBCOMMANDS))
    if problem:
        from kanoa_desktop.cli.output import echo

        echo(problem, err=True)
        return 2
    # The window's session: faulthandler and a watchdog write into a crash record in
    # the log folder, and the draft is kept (core/config/recovery.py). Deleted at a clean
    # end only: an exception out of the window leaves it for the next start to report.
    from kanoa_desktop.core.config.recovery import Session

    session = Session.start()
    from kanoa_desktop.ui.app import run_app

    code = run_app(args, session=session)
    session.end()
    return code


def _fault_handler_on_stderr() -> None:
    import faulthandler

    if faulthandler.is_enabled():  # -X faulthandler, or a test runner's
        return
    try:
        faulthandler.enable(all_threads=True)
    except Exception:  # noqa: BLE001 - no usable stderr (pythonw, a frozen GUI app)
        pass  # the window's session file takes over


if __name__ == "__main__":
    sys.exit(main())
