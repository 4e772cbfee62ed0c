"""Start the window on one qasync event loop, and shut it down cleanly.

Qt aborts the process when it cannot open a display; we check first and say what to do.
Nothing Qt is imported before that check.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from kanoa_desktop import APP_ID, APP_NAME, __version__

log = logging.getLogger(__name__)

HEADLESS_PLATFORMS = {
    "offscreen",
    "minimal",
    "minimalegl",
    "vnc",
    "eglfs",
    "linuxfb",
    "vkkhrdisplay",
}

NO_DISPLAY_MESSAGE = (
    "kanoa desktop needs a display and found none (neither DISPLAY nor WAYLAND_DISPLAY is set). "
    "Start it from a desktop session; on a machine without a screen run it offscreen with "
    "`QT_QPA_PLATFORM=offscreen kanoa-desktop --self-test`, or under a virtual display with "
    "`xvfb-run kanoa-desktop`. The command line works without a display: `kanoa-desktop --help`."
)


def display_problem(
    env: Mapping[str, str] | None = None, platform: str | None = None
) -> str | None:
    """A sentence saying why the window cannot open here, or None if it can."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None  # Windows and macOS always have a window server for a desktop user
    qpa = env.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0]
    if qpa in HEADLESS_PLATFORMS:
        return None
    if env.get("WAYLAND_DISPLAY"):
        return None
    display = env.get("DISPLAY", "")
    if not display:
        return NO_DISPLAY_MESSAGE
    if display.startswith(":"):
        # A local X display: its socket must exist, or Qt aborts with "could not connect".
        number = display[1:].split(".")[0]
        if number.isdigit() and not Path(f"/tmp/.X11-unix/X{number}").exists():
            return (
                f"kanoa desktop cannot open the display {display}: no X server is running there. "
                "Check DISPLAY, or run offscreen with `QT_QPA_PLATFORM=offscreen` or under "
                "`xvfb-run kanoa-desktop`."
            )
    return None


def create_application(argv: Sequence[str] = ()):
    """The QApplication, named so settings, the desktop file and the window manager agree."""
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(
        [sys.argv[0] if sys.argv else "kanoa-desktop", *argv]
    )
    QApplication.setApplicationName("kanoa-desktop")
    QApplication.setApplicationDisplayName(APP_NAME)
    QApplication.setOrganizationName("kanoa")
    QApplication.setApplicationVersion(__version__)
    QGuiApplication.setDesktopFileName(APP_ID)
    icon = Path(__file__).resolve().parent.parent / "resources" / "kanoa-desktop.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    return app


def run_app(argv: Sequence[str]) -> int:
    """Start the window with files to open; returns the process exit code."""
    import argparse

    parser = argparse.ArgumentParser(prog="kanoa-desktop", add_help=True)
    parser.add_argument("files", nargs="*", help="figures or tables to open")
    parser.add_argument("--profile", default=None, help="endpoint profile to start with")
    args, qt_args = parser.parse_known_args(list(argv))

    problem = display_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2

    import qasync

    app = create_application(qt_args)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(_exception_handler)

    from kanoa_desktop.ui.main_window import MainWindow

    window = MainWindow(profile_name=args.profile)
    window.show()
    if args.files:
        window.open_paths([Path(f) for f in args.files])

    closing = asyncio.Event()
    app.aboutToQuit.connect(closing.set)
    with loop:
        loop.run_until_complete(closing.wait())
        loop.run_until_complete(window.shutdown())
    return 0


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    # An exception escaping a task must not kill the window; log it for the user's report.
    exc = context.get("exception")
    log.error("Unhandled error in the event loop: %s", context.get("message"), exc_info=exc)
