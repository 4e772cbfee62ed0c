"""Start the window on one qasync event loop, and shut it down cleanly.

Qt aborts the process when it cannot open a display or load its platform plugin's system
libraries; we check both first and say what to do (one apt line for every missing library).
Nothing Qt is imported before those checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
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


# The Debian/Ubuntu package that ships each library Qt's platform plugins link (the sonames
# ldd prints). Anything not listed falls back to Debian's naming rule (libfoo.so.1 -> libfoo1).
DEBIAN_PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libGLX.so.0": "libglx0",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
    "libdecor-0.so.0": "libdecor-0-0",
}

# What a fresh Debian 12 desktop typically lacks for Qt 6's xcb plugin (seen: Qt blamed only
# libxcb-cursor0 while libxcb-icccm4 and libxcb-keysyms1 were missing too). README gives
# this line; the app prints the line for exactly what is missing on the machine.
XCB_APT_PACKAGES: tuple[str, ...] = (
    "libxcb-cursor0",
    "libxcb-icccm4",
    "libxcb-keysyms1",
    "libxcb-image0",
    "libxcb-render-util0",
    "libxkbcommon-x11-0",
)

# Qt platform name -> (plugin file name, the environment variable its display needs).
_PLATFORM_PLUGINS = {
    "xcb": ("libqxcb.so", "DISPLAY"),
    "wayland": ("libqwayland.so", "WAYLAND_DISPLAY"),
}


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships ``soname`` (``libxcb-icccm.so.4`` ->
    ``libxcb-icccm4``), by table, else by Debian's library naming rule."""
    if soname in DEBIAN_PACKAGES:
        return DEBIAN_PACKAGES[soname]
    name, _, version = soname.partition(".so.")
    version = version.split(".")[0]
    name = name.lower()
    if not version:
        return name
    return f"{name}-{version}" if name[-1:].isdigit() else f"{name}{version}"


def apt_install_line(packages: Sequence[str]) -> str:
    """One ``sudo apt install ...`` line, each package once, in the order given."""
    return "sudo apt install " + " ".join(dict.fromkeys(packages))


def qt_plugins_dir() -> Path | None:
    """PySide6's Qt plugin folder, found without importing PySide6 (so without loading Qt)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "Qt" / "plugins"
        if folder.is_dir():
            return folder
    return None


def missing_libraries(library: Path) -> list[str]:
    """Sonames the dynamic loader cannot find for ``library`` or anything it links, in the
    order ldd reports them (each once). Empty when all resolve, or when ``ldd`` is not
    available to tell (Qt then reports the failure itself)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        out = subprocess.run(
            [ldd, str(library)], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    missing: dict[str, None] = {}
    for line in out.splitlines():
        name, sep, where = line.strip().partition("=>")
        if sep and where.strip() == "not found":
            missing[name.strip()] = None
    return list(missing)


def _platform_candidates(env: Mapping[str, str]) -> list[str]:
    """The platforms Qt will try, in order (QT_QPA_PLATFORM may list several: "wayland;xcb")."""
    wanted = env.get("QT_QPA_PLATFORM", "")
    if wanted:
        return [p.split(":")[0] for p in wanted.split(";") if p.split(":")[0]]
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
        return ["wayland", "xcb"]  # Qt 6 prefers Wayland in a Wayland session
    return ["xcb"]


def platform_library_problem(
    env: Mapping[str, str] | None = None,
    platform: str | None = None,
    plugins_dir: Path | None = None,
) -> str | None:
    """A message naming the system libraries Qt's platform plugin needs and cannot find,
    with one ``apt install`` line for all of them; None when a platform Qt will try has
    every library (or on a headless platform, or outside Linux).

    Checked before Qt loads: a missing library makes Qt abort, and its own message names
    only the first library it tripped on (often not the only one missing).
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    plugins_dir = plugins_dir or qt_plugins_dir()
    if plugins_dir is None:
        return None
    missing: dict[str, None] = {}
    tried: list[str] = []
    for name in _platform_candidates(env):
        if name in HEADLESS_PLATFORMS:
            return None
        if name not in _PLATFORM_PLUGINS:
            return None  # a platform we do not know how to check: let Qt decide
        plugin_file, display_var = _PLATFORM_PLUGINS[name]
        plugin = plugins_dir / "platforms" / plugin_file
        if not env.get(display_var) or not plugin.is_file():
            continue
        lacking = missing_libraries(plugin)
        if not lacking:
            return None  # Qt can start this platform
        tried.append(name)
        missing.update(dict.fromkeys(lacking))
    if not missing:
        return None
    names = {"xcb": "X11 (xcb)", "wayland": "Wayland"}
    plugins = " and ".join(names[n] for n in tried)
    plural = "s need" if len(tried) > 1 else " needs"
    return (
        f"kanoa desktop cannot open its window: Qt's {plugins} platform plugin{plural} "
        f"libraries that are not installed ({', '.join(missing)}). On Debian or Ubuntu "
        "install them with:\n\n    "
        + apt_install_line([debian_package(s) for s in missing])
        + "\n\nthen start kanoa desktop again. The command line works without them: "
        "`kanoa-desktop --help`."
    )


def create_application(argv: Sequence[str] = ()):
    """The QApplication, named so settings, the desktop file and the window manager agree."""
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    from kanoa_desktop.ui.pyside_hook import lighten

    lighten()  # PySide reads the source of every module imported after it: not any more
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


def create_event_loop(app, *, already_running: bool = False):
    """The one qasync loop of the app, with asyncio's async-generator hooks installed.

    qasync 0.28 on Unix replaces ``run_forever`` without installing the hooks that
    ``BaseEventLoop.run_forever`` sets, so an async generator left half-iterated (httpx's
    byte iterators after an early exit) would be finalised by the garbage collector outside
    any task, and anyio raises "exit cancel scope in a different task". With the hooks the
    loop closes such generators in a task of its own, and ``shutdown_asyncgens`` works.
    Returns the loop; ``restore_asyncgen_hooks`` puts the previous hooks back.
    """
    import qasync

    loop = qasync.QEventLoop(app, already_running=already_running)
    # qasync's own default executor starts ten QThreads at once on the first
    # run_in_executor(None) (anyio's getaddrinfo for the first connection, to_thread):
    # 50-70 ms on the GUI thread while the window was showing (issue 18). A standard pool
    # starts a thread per job as needed, and reuses idle ones.
    from concurrent.futures import ThreadPoolExecutor

    loop.set_default_executor(ThreadPoolExecutor(max_workers=8, thread_name_prefix="kanoa-io"))
    loop._kanoa_old_agen_hooks = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(
        firstiter=loop._asyncgen_firstiter_hook, finalizer=loop._asyncgen_finalizer_hook
    )
    return loop


def restore_asyncgen_hooks(loop) -> None:
    old = getattr(loop, "_kanoa_old_agen_hooks", None)
    if old is not None:
        sys.set_asyncgen_hooks(*old)


# Closed loops are parked here for the life of the process (see close_event_loop).
_CLOSED_LOOPS: list = []


def close_event_loop(loop) -> None:
    """Close a qasync loop safely on the GUI thread.

    qasync's close() only flags its timer object as stopped; Qt timers it started stay
    registered until they fire. If the garbage collector later destroyed that QObject on
    another thread (a worker can trigger a collection), its timers could not be killed and
    the next one to fire would call into freed memory (a segfault inside
    QTimerInfoList::activateTimers). So: kill the timers here, and keep the closed loop
    referenced so it is never destroyed off the GUI thread.
    """
    restore_asyncgen_hooks(loop)
    if not loop.is_closed():
        loop.close()
    timer = getattr(loop, "_timer", None)
    callbacks = getattr(timer, "_SimpleTimer__callbacks", None)
    if timer is not None and callbacks:
        for timer_id in list(callbacks):
            timer.killTimer(timer_id)
        callbacks.clear()
    _CLOSED_LOOPS.append(loop)


def run_app(argv: Sequence[str], *, session=None) -> int:
    """Start the window with files to open; returns the process exit code. ``session``
    (core/config/recovery.Session) gets the window's heartbeat and draft, and the window
    shows how the previous session ended when it ended badly."""
    import argparse

    parser = argparse.ArgumentParser(prog="kanoa-desktop", add_help=True)
    parser.add_argument("files", nargs="*", help="figures or tables to open")
    parser.add_argument("--profile", default=None, help="endpoint profile to start with")
    parser.add_argument(
        "--new-instance",
        action="store_true",
        help="open another window even if kanoa desktop is already running",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check the window, images, plots, keychain and certificates (and stream from "
        "--server URL if given), print a report, exit 0 or 1",
    )
    args, qt_args = parser.parse_known_args(list(argv))

    problem = display_problem() or platform_library_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2

    from kanoa_desktop.ui.single_instance import FileOpenHandler, SingleInstance

    # A second launch (a double-click on another file) hands its files to the running
    # window and exits, instead of opening a second window.
    instance = SingleInstance(APP_ID)
    if not args.new_instance and instance.try_forward(args.files):
        return 0

    app = create_application(qt_args)
    loop = create_event_loop(app)
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(_exception_handler)

    from kanoa_desktop.ui.main_window import MainWindow

    # The loop must outlive the window: closing it starts an async shutdown (cancel the
    # stream, close connections) that needs the loop. So Qt does not quit on the last
    # window; main() returns once the shutdown is done.
    app.setQuitOnLastWindowClosed(False)
    closing = asyncio.Event()
    app.aboutToQuit.connect(closing.set)  # a session manager ending the session
    window_box: list = []

    async def main() -> None:
        # Built inside the running loop, so widgets that start tasks when shown (the GPU
        # panel's poller) find the loop, and every task belongs to it.
        window = MainWindow(profile_name=args.profile)
        window_box.append(window)
        from kanoa_desktop.ui.recovery import attach

        attach(window, session)
        window.closed.connect(closing.set)
        if not args.new_instance:
            instance.listen(window.open_forwarded)
        app.installEventFilter(FileOpenHandler(window.open_forwarded, app))  # macOS Finder
        window.show()
        # Ctrl+C in a terminal, or a session manager's SIGTERM: close like the window's X
        # (state saved, requests cancelled, connections closed), not a hard kill.
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(sig, window.close)
        if args.files:
            window.open_paths([Path(f) for f in args.files])
        await closing.wait()
        await _shutdown(window)

    async def _shutdown(window) -> None:
        instance.close()
        await window.shutdown()
        # Close async generators abandoned mid-iteration (httpx byte iterators) on this
        # loop, so nothing is left for the garbage collector after the loop is gone.
        await asyncio.get_running_loop().shutdown_asyncgens()

    try:
        try:
            loop.run_until_complete(main())
        except RuntimeError:
            # Qt quit underneath the loop (the session ended): run the shutdown now.
            if not window_box:
                raise
            loop.run_until_complete(_shutdown(window_box[0]))
    finally:
        close_event_loop(loop)
    return 0


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    # An exception escaping a task must not kill the window; log it for the user's report.
    exc = context.get("exception")
    log.error("Unhandled error in the event loop: %s", context.get("message"), exc_info=exc)
