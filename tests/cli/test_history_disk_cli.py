"""The command line on a full disk and a read-only data folder (issue 23), on a real small
disk (tests/history/disk.py) and the vLLM test server: the history file is kept and
listed, what happened is said on stderr with what to do, and "Saved in history" is
printed only for a turn that reached the file."""

from __future__ import annotations

import subprocess
import sys
import threading

from kanoa_desktop.core.history.store import HistoryStore
from tests.history.conftest import record
from tests.history.disk import disk  # noqa: F401 - the fixture
from tests.servers.vllm_server import VLLMTestServer
from tests.test_cli import _run


def _setup(disk, home, tmp_path):  # noqa: F811
    """The data folder on the small disk, with one earlier conversation; a table to ask
    about."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "data").symlink_to(disk.path / "data")
    store = HistoryStore(disk.path / "data" / "history.sqlite3")
    record(store, "Earlier question", "earlier answer")
    store.close()
    table = tmp_path / "co2.csv"
    table.write_text("month,ppm\n" + "".join(f"{m},{410 + m % 6}\n" for m in range(1, 25)))
    return table


def _listed(home) -> subprocess.CompletedProcess:
    return _run(["history", "list"], env={"KANOA_DESKTOP_HOME": str(home)})


def test_interpret_on_a_disk_that_fills_mid_answer_says_the_answer_was_not_saved(
    disk,  # noqa: F811
    _isolated_home,
    tmp_path,
):
    table = _setup(disk, _isolated_home, tmp_path)
    with VLLMTestServer(tokens_per_second=40, answer_tokens=400) as server:
        child = subprocess.Popen(
            [sys.executable, "-m", "kanoa_desktop", "interpret", str(table),
             "--api-base", server.api_base, "--model", server.model],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**_env(), "KANOA_DESKTOP_HOME": str(_isolated_home)},
        )  # fmt: skip
        streaming = threading.Event()
        out: list[str] = []

        def read() -> None:
            for line in iter(lambda: child.stdout.read(64), ""):
                out.append(line)
                if len("".join(out).split()) > 20:
                    streaming.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert streaming.wait(60), child.stderr.read() if child.poll() is not None else out
        disk.fill()  # mid-answer
        err = child.stderr.read()
        child.wait(60)
        reader.join(10)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == 0, err
    assert "Traceback" not in err and "Saved in history" not in err
    assert "Not saved in history: The disk that holds the history" in err
    assert "is full. Free some space on that disk." in err
    assert not list((disk.path / "data").glob("*.damaged-*"))

    still_full = _listed(_isolated_home)
    assert still_full.returncode == 0 and "Earlier question" in still_full.stdout
    disk.free()
    listed = _listed(_isolated_home)
    assert listed.returncode == 0, listed.stderr
    assert "Earlier question" in listed.stdout and "co2.csv" in listed.stdout
    assert "No conversations" not in listed.stderr and "warning" not in listed.stderr


def test_a_read_only_data_folder_lists_the_history_and_interpret_does_not_claim_a_save(
    disk,  # noqa: F811
    _isolated_home,
    tmp_path,
):
    table = _setup(disk, _isolated_home, tmp_path)
    disk.read_only()
    listed = _listed(_isolated_home)
    assert listed.returncode == 0, listed.stderr
    assert "Earlier question" in listed.stdout
    assert "cannot be written (it is read-only)" in listed.stderr
    assert "Make the folder writable" in listed.stderr
    for wrong in ("damaged", "moved to", "None", "No conversations", "Traceback"):
        assert wrong not in listed.stderr
    with VLLMTestServer(answer_tokens=12) as server:
        asked = _run(
            ["interpret", str(table), "--api-base", server.api_base, "--model", server.model],
            env={"KANOA_DESKTOP_HOME": str(_isolated_home)},
        )
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip()  # the answer itself
    assert "Saved in history" not in asked.stderr and "Traceback" not in asked.stderr
    assert "Not saved in history: The history folder" in asked.stderr
    disk.writable()
    assert "co2.csv" not in _listed(_isolated_home).stdout  # truly not saved, as it said


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
