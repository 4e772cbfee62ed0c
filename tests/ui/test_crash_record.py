"""A session that ends badly is recorded, and the next start says so and gives back what
the window held (issue 25). For real: the app (``kanoa_desktop.__main__.main``) runs in a
child process (tests/ui/crash_driver.py) that segfaults, aborts or has its GUI thread
stuck and is killed; then the app starts again in the same KANOA_DESKTOP_HOME.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.ui import crash_driver as D

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "tests" / "ui" / "crash_driver.py"
LINE = re.compile(
    r"^kanoa desktop closed unexpectedly at \d\d:\d\d( \(it had stopped responding\))? —$"
)


def _env(home: Path) -> dict:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "KANOA_DESKTOP_HOME": str(home)}


def _run(mode: str, home: Path, out: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DRIVER), mode, str(out)],
        env=_env(home), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _restart(home: Path, out: Path) -> dict:
    done = _run("restart", home, out)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "restart.json").read_text("utf-8"))


def _leftovers(home: Path) -> list[str]:
    """Session files and drafts still on disk (none after a clean end)."""
    return sorted(
        str(p.relative_to(home))
        for folder in (home / "logs" / "sessions", home / "data" / "sessions")
        if folder.is_dir()
        for p in folder.iterdir()
    )


def _records(home: Path) -> list[Path]:
    return sorted((home / "logs").glob("crash-*.txt"))


def test_a_segfault_is_recorded_and_the_next_start_says_so_and_gives_back_the_draft(tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    crashed = _run("crash", home, out)
    assert crashed.returncode == -signal.SIGSEGV, (crashed.returncode, crashed.stderr[-2000:])
    assert "DRAFT SAVED" in crashed.stdout
    session_file = Path(crashed.stdout.split("SESSION FILE ")[1].split()[0])
    text = session_file.read_text("utf-8")
    assert "Fatal Python error: Segmentation fault" in text
    assert "in string_at" in text and "in wait_for_draft" in text  # the crashing stack
    drafts = list((home / "data" / "sessions").glob("draft-*.json"))
    assert len(drafts) == 1
    draft = drafts[0].read_text("utf-8")
    assert D.QUESTION in draft and D.PROFILE_NAME in draft
    assert D.SECRET not in draft  # a key typed in Settings is never in the draft

    shown = _restart(home, out)
    assert LINE.match(shown["notice"]), shown["notice"]
    assert shown["notice_visible"] and shown["buttons"] == ["Open log", "Copy diagnostics"]
    assert shown["kind"] == "crash"
    assert (shown["question"], shown["context"], shown["focus"]) == (D.QUESTION, D.CONTEXT, D.FOCUS)
    # Settings opened with the edits still unapplied: the saved profile is unchanged.
    assert shown["settings_open"]
    assert shown["settings_name"] == D.PROFILE_NAME
    assert shown["settings_temperature"] == 0.7
    assert shown["saved_profile_name"] != D.PROFILE_NAME
    assert "had not applied" in shown["settings_status"]
    # Copy diagnostics: versions, how it ended and the crashing stack; never the
    # question or a key.
    diagnostics = shown["diagnostics"]
    assert "Fatal Python error: Segmentation fault" in diagnostics and "in string_at" in diagnostics
    assert D.QUESTION not in diagnostics and D.SECRET not in diagnostics
    records = _records(home)
    assert [str(r) for r in records] == [shown["record"]]
    assert "Fatal Python error: Segmentation fault" in records[0].read_text("utf-8")
    assert D.SECRET not in records[0].read_text("utf-8")
    # That start ended cleanly: nothing left, and the one after says nothing.
    assert _leftovers(home) == []
    again = _restart(home, tmp_path / "out2")
    assert again["notice"] is None and again["question"] == ""
    assert len(_records(home)) == 1


def test_an_abort_is_recorded_as_a_crash(tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    aborted = _run("abort", home, out)
    assert aborted.returncode == -signal.SIGABRT, aborted.stderr[-2000:]
    shown = _restart(home, out)
    assert LINE.match(shown["notice"]) and shown["kind"] == "crash"
    assert "Fatal Python error: Aborted" in shown["diagnostics"]
    assert shown["question"] == D.QUESTION


def test_a_stuck_gui_thread_leaves_every_threads_stack_and_the_next_start_says_so(tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    with subprocess.Popen(
        [sys.executable, str(DRIVER), "hang", str(out)],
        env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as proc:  # fmt: skip
        dumps = _wait_for_hang(proc)
    assert "Thread 0x" in dumps[-1] and "(most recent call first)" in dumps[-1]
    shown = _restart(home, out)
    assert shown["notice"].endswith("(it had stopped responding) —"), shown["notice"]
    assert LINE.match(shown["notice"])
    assert shown["kind"] == "hang"
    assert "in wait_for_draft" in shown["diagnostics"]
    assert shown["question"] == D.QUESTION


def _wait_for_hang(proc: subprocess.Popen) -> list[str]:
    """Until the watchdog has dumped the stuck thread's stack; then kill the app, as a
    user does with a window that no longer answers. The dumps, split."""
    try:
        lines = []
        while not lines or lines[-1] != "HANGING":
            line = proc.stdout.readline()
            assert line, f"the app ended before it hung: {lines}"
            lines.append(line.strip())
        session_file = Path(next(x for x in lines if x.startswith("SESSION FILE"))[13:])
        # The watchdog's dump of the stuck thread: its stack is in the sleeping function.
        deadline = time.monotonic() + 120
        while True:
            text = session_file.read_text("utf-8")
            dumps = text.split("Timeout (")
            if len(dumps) > 1 and "in wait_for_draft" in dumps[-1]:
                break
            assert time.monotonic() < deadline, text[-3000:]
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    return dumps


def test_a_clean_quit_leaves_no_record_and_no_draft(tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    quit_ = _run("quit", home, out)
    assert quit_.returncode == 0, quit_.stderr[-3000:]
    assert "DRAFT SAVED" in quit_.stdout  # it had one while it ran
    assert _leftovers(home) == []
    assert _records(home) == []
    shown = _restart(home, out)
    assert shown["notice"] is None and shown["question"] == ""


def test_the_settings_dialog_reports_unapplied_edits_only_when_there_are_some(qtbot):
    """An open dialog nobody edited adds nothing to the draft (a crash then would reopen
    Settings for nothing); an edit does, until it is applied."""
    from kanoa_desktop.core.config.profiles import ProfileStore
    from kanoa_desktop.core.config.recovery import restore_settings
    from kanoa_desktop.core.config.secrets import KeyStore
    from kanoa_desktop.ui.settings import SettingsDialog

    store = ProfileStore()
    store.load()
    dlg = SettingsDialog(store, KeyStore())
    qtbot.addWidget(dlg)
    dlg.open()
    assert dlg.unapplied() is None
    dlg.endpoint.name_edit.setText("Renamed, not applied")
    dlg.pages["appearance"].font_spin.setValue(15)
    snapshot = dlg.unapplied()
    assert snapshot is not None
    assert [p["name"] for p in snapshot["profiles"]] == ["Renamed, not applied"]
    assert snapshot["preferences"]["font_size_pt"] == 15
    assert store.active.name != "Renamed, not applied"  # nothing applied by looking

    fresh = SettingsDialog(store, KeyStore())
    qtbot.addWidget(fresh)
    fresh.restore_unapplied(restore_settings(snapshot))
    assert fresh.endpoint.name_edit.text() == "Renamed, not applied"
    assert fresh.pages["appearance"].font_spin.value() == 15
    assert fresh.unapplied() is not None  # still unapplied: OK or Apply saves them
    assert fresh.apply()
    assert store.active.name == "Renamed, not applied"
    assert fresh.unapplied() is None
