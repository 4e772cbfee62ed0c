"""``kanoa-desktop batch --state`` on a real full disk (tests/history/disk.py, a tmpfs the
test mounts): a disk that fills mid-run keeps every answer in the report and says which
were not kept for a rerun; a full disk at the start is a sentence, never a traceback."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

from tests.batch.conftest import png_bytes
from tests.batch.test_batch_cli import _add_profile, _cli
from tests.history.disk import disk  # noqa: F401 - the fixture
from tests.servers.vllm_server import VLLMTestServer

pytestmark = pytest.mark.vllm

ROOT = Path(__file__).resolve().parents[2]
ITEMS = 4


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "figs"
    folder.mkdir()
    for i in range(ITEMS):
        (folder / f"f{i}.png").write_bytes(png_bytes(colour=(60 * i, 30, 30)))
    return folder


def test_a_disk_that_fills_mid_batch_keeps_every_answer_in_the_report_and_says_what_was_not_kept(
    disk,  # noqa: F811
    tmp_path,
):
    folder = _folder(tmp_path)
    state = disk.path / "data" / "batches.sqlite3"
    report = tmp_path / "report.csv"  # on another disk
    with VLLMTestServer(tokens_per_second=30, answer_tokens=40) as server:
        _add_profile(server)
        cmd = _cli(str(folder), "--profile", "lab vllm", "--concurrency", "1",
                   "--state", str(state), "--out", str(report))  # fmt: skip
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=os.environ.copy(),
        )  # fmt: skip
        first_done = threading.Event()
        err: list[str] = []

        def read() -> None:
            for line in proc.stderr:
                err.append(line)
                if re.search(r"\[1/\d\] .*: done", line):
                    first_done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert first_done.wait(60), "".join(err)
        disk.fill()  # the next answers cannot be kept
        proc.wait(120)
        reader.join(10)
        proc.stdout.close()
        proc.stderr.close()
        stderr = "".join(err)
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr
        assert "note: Answers not kept for a rerun: The disk that holds the batch state" in stderr
        assert "Free some space on that disk." in stderr
        with report.open(newline="") as fh:  # every answer is in the report
            assert [r["state"] for r in csv.DictReader(fh)] == ["done"] * ITEMS

        disk.free()
        again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    plan = re.search(rf"{ITEMS} items: (\d+) kept, (\d+) new", again.stderr)
    assert plan and 1 <= int(plan[1]) < ITEMS, again.stderr  # the first answer was kept
    assert "not kept" not in again.stderr


def test_a_full_disk_at_the_start_of_a_batch_is_a_sentence(
    disk,  # noqa: F811
    tmp_path,
):
    folder = _folder(tmp_path)
    disk.fill()
    with VLLMTestServer(answer_tokens=5) as server:
        _add_profile(server)
        done = subprocess.run(
            _cli(str(folder), "--profile", "lab vllm",
                 "--state", str(disk.path / "data" / "batches.sqlite3")),
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "The disk that holds the batch state" in done.stderr
    assert "Free some space on that disk. Or give --state another file." in done.stderr
