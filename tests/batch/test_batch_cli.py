"""``kanoa-desktop batch`` in a real subprocess: killed with SIGKILL mid-way, the same
command continues without asking the server twice for a finished item."""

from __future__ import annotations

import csv
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from tests.batch.conftest import MIXED_ITEMS, png_bytes
from tests.batch.test_batch import asked_items
from tests.servers.vllm_server import VLLMTestServer

pytestmark = pytest.mark.vllm

ROOT = Path(__file__).resolve().parents[2]


def _add_profile(server, name: str = "lab vllm") -> None:
    store = ProfileStore()
    store.load()
    store.add(Profile(name=name, api_base=server.api_base, max_tokens=20, temperature=0.0))
    assert store.save() is None


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "kanoa_desktop", "batch", *args]


def _done_items(state: Path) -> set[str]:
    if not state.exists():
        return set()
    try:
        db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1.0)
        try:
            rows = db.execute("SELECT label FROM answers WHERE state = 'done'").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return set()  # created but no table yet
    return {r[0] for r in rows}


def test_sigkill_mid_batch_then_the_same_command_finishes_without_repeating_items(
    mixed_folder, tmp_path
):
    state = tmp_path / "state.sqlite3"
    report = tmp_path / "report.md"
    with VLLMTestServer(tokens_per_second=25, answer_tokens=15) as server:
        _add_profile(server)
        cmd = _cli(str(mixed_folder), "--profile", "lab vllm", "--concurrency", "1",
                   "--question", "Describe {item}.", "--state", str(state),
                   "--out", str(report), "--out", str(tmp_path / "report.csv"))  # fmt: skip
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy()
        )
        try:
            deadline = time.monotonic() + 120
            while len(_done_items(state)) < 3:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the batch never finished 3 items"
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            _, err_killed = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        finished_before = _done_items(state)
        asked_before = asked_items(server)
        assert not report.exists()  # killed: no report was written
        assert len(finished_before) < MIXED_ITEMS - 1, "killed too late to prove anything"

        again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)
        asked_after = asked_items(server)[len(asked_before) :]

    assert again.returncode == 1, again.stderr  # the corrupt file failed
    plan = re.search(rf"{MIXED_ITEMS} items: (\d+) kept, (\d+) new\.", again.stderr)
    assert plan and int(plan[1]) >= len(finished_before), again.stderr
    assert int(plan[1]) + int(plan[2]) == MIXED_ITEMS
    assert f"; asked {len(asked_after)})" in again.stderr
    assert not finished_before & set(asked_after), "a finished item was asked again"
    assert "broken.png" not in asked_before + asked_after
    every = set(asked_before) | set(asked_after)
    assert len(every) == MIXED_ITEMS - 1
    assert len(_done_items(state)) == MIXED_ITEMS - 1
    assert "failed: broken.png: broken.png is not an image" in again.stderr
    text = report.read_text()
    assert "## Failures" in text and "**broken.png**" in text
    assert f"({MIXED_ITEMS - 1} done, 1 failed)" in text
    with (tmp_path / "report.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == MIXED_ITEMS
    assert sorted(r["state"] for r in rows) == ["done"] * (MIXED_ITEMS - 1) + ["error"]


def test_exit_0_when_every_item_succeeded_and_progress_on_stderr(tmp_path):
    folder = tmp_path / "figs"
    folder.mkdir()
    for i in range(2):
        (folder / f"f{i}.png").write_bytes(png_bytes(colour=(90 * i, 30, 30)))
    with VLLMTestServer(tokens_per_second=400, answer_tokens=5) as server:
        _add_profile(server)
        out = tmp_path / "r.html"
        done = subprocess.run(
            _cli(str(folder), "--profile", "lab vllm", "--out", str(out)),
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "[1/2]" in done.stderr and "[2/2]" in done.stderr
    assert re.search(r"\[1/2\] f\d\.png: done \([0-9.]+ s\) \(about \d+ s left\)", done.stderr)
    assert "2/2 finished" in done.stderr
    assert out.read_text().count("data:image/png;base64,") == 2


def test_bad_arguments_get_a_message_and_exit_1(tmp_path):
    bad_out = subprocess.run(
        _cli(str(tmp_path), "--out", str(tmp_path / "r.docx")),
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad_out.returncode == 1 and ".md" in bad_out.stderr
    missing = subprocess.run(
        _cli(str(tmp_path / "nowhere"), "--profile", "nobody"),
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1 and "no profile named 'nobody'" in missing.stderr
    (tmp_path / "afile").write_text("x")
    state = tmp_path / "afile" / "state.sqlite3"
    under_a_file = subprocess.run(
        _cli(str(tmp_path), "--state", str(state)),
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert under_a_file.returncode == 1 and "Traceback" not in under_a_file.stderr
    assert f"error: The batch state {state} cannot be opened" in under_a_file.stderr
