"""core/config/recovery.py without the window: the session file, the watchdog, the draft.

Whatever enables faulthandler or the watchdog runs in a child process (they are global
to a process); claiming, drafts and records run here on folders of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest

from kanoa_desktop.core.config import recovery as R
from kanoa_desktop.core.config.profiles import Preferences, Profile

ROOT = Path(__file__).resolve().parents[2]


def _session(tmp_path: Path, sid: str = "test") -> R.Session:
    return R.Session(record_dir=tmp_path / "logs", draft_dir=tmp_path / "data", sid=sid)


def _child(code: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


_START = """
    import logging, sys, time
    from pathlib import Path
    from kanoa_desktop.core.config.recovery import Session, Draft
    tmp = Path(sys.argv[1])
    logging.basicConfig(level=logging.INFO, filename=tmp / "child.log")
    s = Session.start(record_dir=tmp / "logs", draft_dir=tmp / "data", watchdog_s=0.5)
    print("SESSION", s.path, flush=True)
"""


def test_a_child_that_segfaults_leaves_a_record_the_next_start_claims(tmp_path):
    out = _child(
        _START
        + """
    s.save_draft(Draft(question="Why does B plateau?", context="OD600"))
    import ctypes
    ctypes.string_at(0)
    """,
        tmp_path,
    )
    assert out.returncode < 0, out.stderr
    session = _session(tmp_path)
    end, draft = session.claim_unclean()
    assert end is not None and end.kind == R.CRASH
    assert "Fatal Python error: Segmentation fault" in end.excerpt
    assert "string_at" in end.excerpt
    assert end.record is not None and end.record.name.startswith("crash-")
    assert draft is not None and (draft.question, draft.context) == ("Why does B plateau?", "OD600")
    assert not list((tmp_path / "logs" / "sessions").iterdir())  # claimed
    assert not list((tmp_path / "data" / "sessions").iterdir())  # its draft too
    assert session.claim_unclean() == (None, None)  # only once


def test_a_live_session_is_not_claimed(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_START + "\n    time.sleep(60)\n"), str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout.readline().startswith("SESSION")
        assert _session(tmp_path).claim_unclean() == (None, None)  # it holds its lock
        assert len(list((tmp_path / "logs" / "sessions").iterdir())) == 1
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    end, _ = _session(tmp_path).claim_unclean()  # killed: nothing written, still unclean
    assert end is not None and end.kind == R.KILLED


def test_a_clean_end_leaves_nothing(tmp_path):
    out = _child(_START + "\n    s.save_draft(Draft(question='q'))\n    s.end()\n", tmp_path)
    assert out.returncode == 0, out.stderr
    assert not list((tmp_path / "logs" / "sessions").iterdir())
    assert not list((tmp_path / "data" / "sessions").iterdir())
    assert _session(tmp_path).claim_unclean() == (None, None)


def test_the_watchdog_dumps_a_stuck_thread_and_the_log_gets_it_once_it_runs_again(tmp_path):
    out = _child(
        _START
        + """
    s.pet()
    def stuck_in_a_slot():
        time.sleep(1.5)  # the GUI thread busy three times the watchdog's limit
    stuck_in_a_slot()
    print("STUCK", s.pet(), flush=True)
    import os, signal
    os.kill(os.getpid(), signal.SIGKILL)  # later killed, while it responds
    """,
        tmp_path,
    )
    assert out.returncode == -9, out.stderr
    stuck = float(out.stdout.split("STUCK ")[1])
    assert stuck >= 1.4
    log = (tmp_path / "child.log").read_text("utf-8")
    assert "The window did not respond for" in log
    assert "Timeout (0:00:00.500000)!" in log and "in stuck_in_a_slot" in log
    # It had recovered: killed later, not "stopped responding".
    end, _ = _session(tmp_path).claim_unclean()
    assert end is not None and end.kind == R.KILLED
    assert "Responding again after" in end.record.read_text("utf-8")


def test_records_are_kept_five_at_most(tmp_path):
    logs = tmp_path / "logs"
    (logs / "sessions").mkdir(parents=True)
    for i in range(8):
        (logs / f"crash-2025010{i}-000000-{i}.txt").write_text("old")
    (logs / "sessions" / "session-9.txt").write_text("Fatal Python error: Aborted\n")
    end, _ = _session(tmp_path).claim_unclean()
    assert end is not None and end.kind == R.CRASH
    kept = sorted(p.name for p in logs.glob("crash-*.txt"))
    assert len(kept) == R.KEEP_RECORDS
    assert end.record.name in kept  # the newest stays


def test_the_line_says_when_with_the_date_when_it_was_not_today():
    noon = datetime(2025, 3, 4, 14, 2).timestamp()
    end = R.UncleanEnd(ended_at=noon, kind=R.CRASH, record=None, excerpt="")
    assert end.line(now=noon + 60) == "kanoa desktop closed unexpectedly at 14:02"
    assert end.line(now=noon + 86_400) == "kanoa desktop closed unexpectedly at 2025-03-04 14:02"
    hang = R.UncleanEnd(ended_at=noon, kind=R.HANG, record=None, excerpt="")
    assert hang.line(now=noon).endswith("at 14:02 (it had stopped responding)")


def test_a_draft_is_written_atomically_only_when_it_changed(tmp_path):
    session = _session(tmp_path)
    assert session.save_draft(R.Draft(question="q1"))
    first = session.draft_path.stat().st_mtime_ns
    time.sleep(0.02)
    assert session.save_draft(R.Draft(question="q1"))  # unchanged: not written again
    assert session.draft_path.stat().st_mtime_ns == first
    assert session.save_draft(R.Draft(question="q2"))
    assert json.loads(session.draft_path.read_text("utf-8"))["question"] == "q2"
    leftovers = [p.name for p in session.draft_path.parent.iterdir()]
    assert leftovers == [session.draft_path.name]  # no temp file left beside it
    assert session.save_draft(R.Draft())  # emptied: the file goes
    assert not session.draft_path.exists()


def test_a_draft_is_bounded(tmp_path):
    session = _session(tmp_path)
    huge = "x" * (5 * R.MAX_TEXT)
    profiles = [Profile(name=f"p{i}", system_prompt="y" * 20_000) for i in range(150)]
    settings = R.settings_snapshot(current=profiles[0].id, profiles=profiles)
    assert session.save_draft(R.Draft(question=huge, context=huge, focus=huge, settings=settings))
    size = session.draft_path.stat().st_size
    assert size <= R.MAX_DRAFT_BYTES
    back = R.Draft.from_dict(json.loads(session.draft_path.read_text("utf-8")))
    assert back.question == "x" * R.MAX_TEXT  # the text kept; the settings dropped first
    assert back.settings is None


def test_unapplied_settings_round_trip_without_a_key(tmp_path):
    edited = Profile(name="Lab (not applied)", temperature=0.7)
    other = Profile(name="Other")
    snap = R.settings_snapshot(
        current=edited.id,
        profiles=[edited, other],
        deleted=[other.id],
        preferences=Preferences(theme="dark"),
    )
    assert "key" not in json.dumps(snap).lower().replace("kb_", "")
    back = R.restore_settings(json.loads(json.dumps(snap)))
    assert back.current == edited.id
    assert [p.name for p in back.profiles] == ["Lab (not applied)", "Other"]
    assert back.profiles[0].temperature == 0.7
    assert back.deleted == [other.id]
    assert back.preferences.theme == "dark"


@pytest.mark.parametrize(
    "bad", [None, [], {"profiles": []}, {"profiles": "x"}, {"profiles": [1, "a"]}]
)
def test_unreadable_settings_restore_nothing(bad):
    assert R.restore_settings(bad) is None


def test_a_draft_file_that_is_not_one_is_ignored():
    assert R.Draft.from_dict({"version": 99, "question": "q"}) is None
    assert R.Draft.from_dict(["q"]) is None
    d = R.Draft.from_dict({"version": 1, "question": 5, "context": "c", "settings": "x"})
    assert (d.question, d.context, d.settings) == ("", "c", None)
