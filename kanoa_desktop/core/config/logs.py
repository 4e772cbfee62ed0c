"""The log file: what a user attaches to a problem report.

:func:`setup_logging` (called first thing by the entry point, for the window and the
command line alike) sends every log record to a rotating file (1 MB, three old files kept)
in the platform's log folder, or in ``$KANOA_DESKTOP_HOME/logs`` when that is set, and logs
unexpected exceptions with their tracebacks: ``sys.excepthook`` (the main thread),
``threading.excepthook`` (worker threads); the window's event loop logs the exceptions that
escape its tasks itself (``ui/app.py``). Every record goes through
:class:`~kanoa_desktop.core.safety.ScrubbingFilter`, so API keys the process knows,
``Bearer ...`` credentials and ``Authorization:`` headers never reach the file.

Warnings and errors still reach stderr, one line each (their tracebacks only go to the
file), as Python's last-resort handler printed them when no handler was installed.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import platform
import sys
import threading
from pathlib import Path

import platformdirs

from kanoa_desktop import APP_NAME, __version__
from kanoa_desktop.core.config.paths import APP_DIR_NAME, HOME_ENV
from kanoa_desktop.core.safety import ScrubbingFilter, escape_control

LOG_FILE_NAME = "kanoa-desktop.log"
MAX_BYTES = 1_000_000
BACKUP_COUNT = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"

# Marks the handlers this module installed, so a second setup replaces them.
_MARK = "_kanoa_desktop_log"
_hooks_installed = False


def log_dir() -> Path:
    """The folder of the log files: ``$KANOA_DESKTOP_HOME/logs`` when set, else the
    platform's user log folder. Not created here."""
    root = os.environ.get(HOME_ENV)
    if root:
        return Path(root).expanduser() / "logs"
    return Path(platformdirs.user_log_dir(APP_DIR_NAME, appauthor=False))


def log_path() -> Path:
    """The current log file (older ones sit beside it as ``.1``, ``.2``, ``.3``)."""
    return log_dir() / LOG_FILE_NAME


def report_hint() -> str:
    """The sentence an unexpected-error message ends with: where the log is."""
    return f"Please report this with the log: {log_path()} (Help > Open log folder)."


class _MessageOnly(logging.Formatter):
    """One line per record on stderr: the traceback goes to the log file, not the terminal;
    control characters a server or a file put in the message are shown escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_control(record.getMessage(), keep="\t")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests and the window swap it)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.setLevel(level)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        if sys.stderr is not None:  # pythonw and frozen GUI apps have no stderr
            super().emit(record)


#: Libraries whose INFO records would drown the app's own: kept at WARNING and above.
NOISY_LOGGERS = ("httpx", "httpcore", "fontTools")


class _LogFile(logging.handlers.RotatingFileHandler):
    """The rotating log file; a record it cannot write (a full or read-only disk) is
    dropped, and stderr gets one line saying so instead of logging's traceback per record."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if not self.failed and sys.stderr is not None:
            self.failed = True
            exc = sys.exc_info()[1]
            print(
                f"note: the log file {self.baseFilename} cannot be written ({exc}).",
                file=sys.stderr,
            )


def setup_logging(
    *,
    level: int = logging.INFO,
    max_bytes: int = MAX_BYTES,
    backup_count: int = BACKUP_COUNT,
    install_hooks: bool = True,
) -> Path | None:
    """Start logging to :func:`log_path` (rotating) and to stderr for warnings.

    Safe to call again: the handlers of an earlier call are closed and replaced (so a new
    ``KANOA_DESKTOP_HOME`` takes effect). Returns the log file, or None when its folder
    cannot be written (then only stderr gets warnings; the app still runs).
    """
    stop_logging()
    root = logging.getLogger()
    scrub = ScrubbingFilter()

    console = _StderrHandler(logging.WARNING)
    console.setFormatter(_MessageOnly())
    console.addFilter(scrub)
    setattr(console, _MARK, True)
    root.addHandler(console)

    path: Path | None = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _LogFile(path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
    except OSError as exc:
        logging.getLogger(__name__).warning("No log file (%s): %s", path, exc)
        path = None
    else:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(scrub)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    if root.getEffectiveLevel() > level:
        root.setLevel(level)
    # httpx logs every request at INFO: the metrics poller alone would fill the file; fontTools
    # logs each font subset a PDF export makes (dozens of INFO lines per export).
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, level))
    if install_hooks:
        _install_exception_hooks()
    if path is not None:
        logging.getLogger(__name__).info(
            "%s %s, Python %s, %s", APP_NAME, __version__, platform.python_version(), sys.platform
        )
    return path


def stop_logging() -> None:
    """Close and remove the handlers :func:`setup_logging` installed (the hooks stay)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
        handler.close()


def _install_exception_hooks() -> None:
    """Log exceptions nobody caught, then let the previous hooks do what they did."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous_sys = sys.excepthook
    previous_thread = threading.excepthook
    log = logging.getLogger("kanoa_desktop.unexpected")

    def sys_hook(exc_type, exc, tb) -> None:
        if not issubclass(exc_type, KeyboardInterrupt):
            log.critical("Unexpected exception", exc_info=(exc_type, exc, tb))
        previous_sys(exc_type, exc, tb)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            name = args.thread.name if args.thread is not None else "?"
            log.critical(
                "Unexpected exception in thread %s",
                name,
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            )
        previous_thread(args)

    sys.excepthook = sys_hook
    threading.excepthook = thread_hook


def keychain_backend_name() -> str:
    """The keyring backend's name (never a key), or why there is none."""
    try:
        from kanoa_desktop.core.config.secrets import KeyStore

        return KeyStore().status().backend
    except Exception as exc:  # noqa: BLE001 - diagnostics must not fail
        return f"unknown ({type(exc).__name__})"


def diagnostics_text(*, qt_version: str | None = None, extra: dict[str, str] | None = None) -> str:
    """Plain text to paste into a problem report: versions, platform, log file, keychain
    backend. Holds no key, no prompt, no answer. ``qt_version`` comes from the caller
    (core does not import Qt); ``extra`` adds lines (e.g. the server's kind and version)."""
    lines = {
        APP_NAME: __version__,
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "Qt": qt_version or "not loaded",
        "Platform": f"{platform.platform()} ({platform.machine()})",
        "Frozen bundle": "yes" if getattr(sys, "frozen", False) else "no",
        "Log file": str(log_path()),
        "Keychain backend": keychain_backend_name(),
    }
    lines.update(extra or {})
    width = max(len(k) for k in lines)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in lines.items()) + "\n"
