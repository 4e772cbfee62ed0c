"""What a script reading the command line gets: headers on `history list`, and no
traceback when the reader closes the pipe early (`kanoa-desktop ... | head`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kanoa_desktop.cli import run_cli
from kanoa_desktop.core.history.store import HistoryStore
from tests.history.conftest import record


@pytest.fixture
def many_conversations():
    store = HistoryStore()
    for i in range(400):  # more than a pipe buffer of rows: the writer must meet EPIPE
        record(store, f"Question {i} about the growth curve?", f"Answer {i}.")
    store.close()


def test_history_list_has_a_header_over_aligned_columns(capsys):
    store = HistoryStore()
    record(store, "What does the growth curve show?", "Exponential growth.", model="qwen2.5-vl")
    record(store, "Title with \x1b]0;pwned\x07 escapes?", "Fine.", model="smollm2")
    store.close()
    assert run_cli(["history", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "UPDATED", "TURNS", "MODEL", "STATE", "TITLE"]
    model_at = lines[0].index("MODEL")
    title_at = lines[0].index("TITLE")
    assert [ln[model_at:].split()[0] for ln in lines[1:]] == ["smollm2", "qwen2.5-vl"]
    assert lines[2][title_at:].startswith("What does the growth curve show?")
    assert "\x1b" not in lines[1] and "\\x1b" in lines[1]


def _closed_pipe_run(args: list[str]) -> subprocess.CompletedProcess:
    """Run the command line with stdout a pipe whose reader has already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "kanoa_desktop", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [["--help"], ["history", "list"], ["history", "list", "--json"], ["fleet", "--help"]],
)
def test_a_closed_pipe_ends_quietly_with_status_141(args, many_conversations):
    done = _closed_pipe_run(args)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
    # argparse's help writer swallows the error itself (status 0); our own output ends 141.
    assert done.returncode == (0 if "--help" in args else 141)
