"""A process streaming into the history is killed with SIGKILL; the next open shows the
turn as interrupted with the text it had received up to about a second before the kill.
An open while it still streams (a window starting beside the command line) leaves its
turn alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kanoa_desktop.core.history.store import HistoryStore
from tests.servers.vllm_server import VLLMTestServer, generated_pieces

ROOT = Path(__file__).resolve().parents[2]
ANSWER_TOKENS = 1500  # 30 s at 50 tokens/s: the kill always comes mid-stream


@pytest.fixture
def slow_server():
    server = VLLMTestServer(tokens_per_second=50, answer_tokens=ANSWER_TOKENS)
    server.start()
    yield server
    server.stop()


@pytest.mark.timeout(60)
def test_sigkill_mid_stream_leaves_an_interrupted_turn_with_the_text_so_far(slow_server, tmp_path):
    db_path = tmp_path / "history.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.history.stream_child", slow_server.api_base,
         slow_server.model, str(db_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    flushes = threading.Semaphore(0)

    def read() -> None:
        for line in child.stdout:
            lines.append(line.strip())
            if line.startswith("FLUSH"):
                flushes.release()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        for _ in range(2):  # two writes have happened: the stream is well under way
            assert flushes.acquire(timeout=30), child.stderr.read() if child.poll() else lines
        # A window starting now (it recovers crashed turns) leaves the live one alone.
        beside = HistoryStore(db_path)
        assert beside.interrupted_on_open == 0
        (row,) = beside.list_conversations()
        assert row.last_state == "streaming" and not row.interrupted
        beside.close()
        time.sleep(0.6)  # kill between two writes, not just after one
        t_kill = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    reader.join(timeout=5)
    stderr = child.stderr.read()
    child.stdout.close()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert "DONE" not in lines, stderr

    store = HistoryStore(db_path)
    assert store.interrupted_on_open == 1
    turn = store.load_conversation(store.list_conversations()[0].id).turns[0]
    assert turn.state == "interrupted"

    full = "".join(generated_pieces(ANSWER_TOKENS)[1])
    assert turn.answer and full.startswith(turn.answer)
    deltas = [
        (float(t), int(n)) for _, t, n in (ln.split() for ln in lines if ln.startswith("DELTA"))
    ]
    # What the child had received one flush interval (plus scheduling slack on a busy
    # two-core machine) before the kill must all be in the database.
    received_before = max((n for t, n in deltas if t <= t_kill - 1.5), default=0)
    assert received_before > 0
    assert len(turn.answer) >= received_before
    assert len(turn.answer) <= deltas[-1][1]
    store.close()
