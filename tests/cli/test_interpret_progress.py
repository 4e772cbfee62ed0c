"""`interpret` on a terminal shows what the server is doing before the answer (stderr, one
line rewritten in place, erased when the answer starts); piped, nothing extra."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from tests.servers.vllm_server import VLLMTestServer

QUESTION = "Summarise: " + "growth curve of strain B in LB at 37 degrees. " * 400


def _interpret(server, tmp_path, *, stderr_tty: bool) -> tuple[str, str, int]:
    csv = tmp_path / "od.csv"
    csv.write_text("hour,od600\n0,0.05\n1,0.09\n2,0.17\n")
    args = [sys.executable, "-m", "kanoa_desktop", "interpret", str(csv), "--api-base",
            server.api_base, "--model", server.model, "-q", QUESTION, "--max-tokens", "8",
            "--no-history"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    if not stderr_tty:
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        return done.stdout, done.stderr, done.returncode
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=follower, env=env)
        os.close(follower)
        err = bytearray()
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal (EIO)
                break
            if not chunk:
                break
            err += chunk
        out = proc.stdout.read().decode()
        proc.stdout.close()
        proc.wait(timeout=300)
    finally:
        os.close(leader)
    return out, err.decode(errors="replace"), proc.returncode


def test_a_terminal_sees_the_wait_and_a_pipe_sees_nothing_extra(tmp_path):
    # A slow prefill: the server reads the long question for a few seconds.
    with VLLMTestServer(prefill_tokens_per_second=1500, answer_tokens=6) as server:
        out, err, code = _interpret(server, tmp_path, stderr_tty=True)
        assert code == 0, err
        assert "\rWaiting for the first token · " in err.replace("\x1b[K", "")
        assert "\r\x1b[K" in err  # the line is erased when the answer starts
        assert "[usage]" in out and "Waiting" not in out
        out, err, code = _interpret(server, tmp_path, stderr_tty=False)
    assert code == 0, err
    assert "Waiting for the first token" not in err and "\r" not in err and "\x1b" not in err
    assert "[usage]" in out
