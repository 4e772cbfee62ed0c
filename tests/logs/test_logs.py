"""The log file: where it is, what lands in it (tracebacks), what never does (keys)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import keyring
import platformdirs
import pytest

from kanoa_desktop import __version__
from kanoa_desktop.core.config import logs

KEY = "sk-live-logs-0123456789abcdef"


@pytest.fixture
def logging_started():
    # setup_logging quiets httpx and httpcore and sets the root level: put them back, or a
    # later test that reads their DEBUG records (test_errors) sees none.
    touched = [logging.getLogger(n) for n in ("", "httpx", "httpcore")]
    levels = [lg.level for lg in touched]
    yield
    logs.stop_logging()
    for lg, level in zip(touched, levels, strict=True):
        lg.setLevel(level)


def _python(code: str, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, KANOA_DESKTOP_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_uncaught_exceptions_land_in_the_log_with_tracebacks_and_without_the_key(tmp_path):
    home = tmp_path / "home"
    out = _python(
        f"""
        import threading
        from kanoa_desktop.core.config.logs import setup_logging
        from kanoa_desktop.core.safety import remember_secret

        setup_logging()
        remember_secret({KEY!r})

        def worker():
            raise ValueError("server said: Authorization: Bearer tok-abcdef123456")

        t = threading.Thread(target=worker, name="embedder")
        t.start(); t.join()
        raise RuntimeError("boom with {KEY}")
        """,
        home,
    )
    assert out.returncode == 1
    assert "RuntimeError" in out.stderr  # the previous hook still prints it
    text = (home / "logs" / "kanoa-desktop.log").read_text(encoding="utf-8")
    assert "Unexpected exception in thread embedder" in text
    assert "ValueError: server said" in text
    assert "Unexpected exception\nTraceback (most recent call last):" in text
    assert "RuntimeError: boom with" in text
    assert KEY not in text
    assert "tok-abcdef123456" not in text
    assert f"kanoa desktop {__version__}" in text


def test_the_log_rotates_and_keeps_three_old_files(tmp_path, logging_started):
    path = logs.setup_logging(max_bytes=2_000, install_hooks=False)
    assert path == tmp_path / "kanoa-home" / "logs" / "kanoa-desktop.log"
    log = logging.getLogger("kanoa_desktop.test")
    for i in range(200):
        log.info("line %d %s", i, "x" * 50)
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == [
        "kanoa-desktop.log",
        "kanoa-desktop.log.1",
        "kanoa-desktop.log.2",
        "kanoa-desktop.log.3",
    ]
    assert all(p.stat().st_size <= 2_000 for p in path.parent.iterdir())
    assert "line 199 " in path.read_text(encoding="utf-8")


def test_a_second_setup_moves_the_log_with_kanoa_desktop_home(
    tmp_path, monkeypatch, logging_started
):
    first = logs.setup_logging(install_hooks=False)
    monkeypatch.setenv("KANOA_DESKTOP_HOME", str(tmp_path / "other"))
    second = logs.setup_logging(install_hooks=False)
    logging.getLogger("kanoa_desktop.test").warning("after the move")
    assert second == tmp_path / "other" / "logs" / "kanoa-desktop.log"
    assert "after the move" in second.read_text(encoding="utf-8")
    assert "after the move" not in first.read_text(encoding="utf-8")
    # Only one file handler and one stderr handler: the first pair was replaced.
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_kanoa_desktop_log", False)]
    assert len(ours) == 2


def test_without_kanoa_desktop_home_the_log_is_in_the_platform_log_folder(monkeypatch):
    monkeypatch.delenv("KANOA_DESKTOP_HOME")
    expected = Path(platformdirs.user_log_dir("kanoa-desktop", appauthor=False))
    assert logs.log_dir() == expected
    assert logs.log_path() == expected / "kanoa-desktop.log"
    assert str(logs.log_path()) in logs.report_hint()


def test_an_unwritable_log_folder_leaves_the_app_running_without_a_file(
    tmp_path, monkeypatch, logging_started
):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    monkeypatch.setenv("KANOA_DESKTOP_HOME", str(blocker))  # logs/ cannot be made under a file
    assert logs.setup_logging(install_hooks=False) is None


def test_diagnostics_name_versions_log_and_keychain_backend_never_a_key(monkeypatch):
    from kanoa_desktop.core.config.secrets import KeyStore
    from tests.profiles.conftest import MemoryKeyring

    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        assert KeyStore().set("profile-1", KEY) is None
        text = logs.diagnostics_text(qt_version="6.11.3")
    finally:
        keyring.set_keyring(previous)
    assert re.search(rf"^kanoa desktop:\s+{re.escape(__version__)}$", text, re.M)
    assert "6.11.3" in text
    assert str(logs.log_path()) in text
    assert "MemoryKeyring" in text
    assert sys.version.split()[0] in text
    assert KEY not in text


def test_the_entry_point_sets_up_the_log_and_refuses_an_unknown_command(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["KANOA_DESKTOP_HOME"] = str(home)
    out = subprocess.run(
        [sys.executable, "-m", "kanoa_desktop", "no-such-command"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2
    assert "unknown command 'no-such-command'" in out.stderr
    assert "interpret" in out.stderr and "history" in out.stderr
    assert "display" not in out.stderr
    assert (home / "logs" / "kanoa-desktop.log").is_file()


def test_an_unexpected_error_in_a_question_points_to_the_log_file():
    from kanoa_desktop.core.ask.pipeline import internal_error

    err = internal_error(RuntimeError("boom"))
    assert "RuntimeError: boom" in err.message
    assert str(logs.log_path()) in err.hint and "Help > Open log folder" in err.hint


def test_a_logged_error_is_one_line_on_stderr_and_its_traceback_goes_to_the_file(tmp_path):
    home = tmp_path / "home"
    out = _python(
        """
        import logging
        from kanoa_desktop.core.config.logs import setup_logging

        setup_logging()
        try:
            {}["missing"]
        except KeyError:
            logging.getLogger("kanoa_desktop.test").exception("could not read the thing")
        logging.getLogger("kanoa_desktop.test").info("only in the file")
        """,
        home,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == "could not read the thing\n"
    text = (home / "logs" / "kanoa-desktop.log").read_text(encoding="utf-8")
    assert "could not read the thing\nTraceback (most recent call last):" in text
    assert "KeyError: 'missing'" in text and "only in the file" in text


def test_a_pdf_export_leaves_no_font_library_lines_in_the_log(tmp_path):
    # fpdf2 subsets fonts with fontTools, which logs each step at INFO: a user's log
    # was mostly those lines. The export goes through the entry point, as a user's does.
    from kanoa_desktop.core.history.store import HistoryStore
    from tests.history.conftest import record

    store = HistoryStore()
    conv = record(store, "What does the growth curve show?", "Exponential growth, σ ≈ 0.3.")
    store.close()
    out = subprocess.run(
        [sys.executable, "-m", "kanoa_desktop", "history", "export", str(conv.conversation_id),
         "--format", "pdf", "-o", str(tmp_path / "c.pdf")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "c.pdf").read_bytes().startswith(b"%PDF")
    text = logs.log_path().read_text(encoding="utf-8")
    assert "kanoa desktop" in text.lower()  # the log was written at all
    assert "fontTools" not in text
