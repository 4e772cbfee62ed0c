"""Run a real ``kanoa-desktop`` command as a user would: on a terminal (a pty, from
Python's pty module) or piped, and collect what it wrote."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Ran:
    status: int
    out: bytes  # on a terminal: stdout and stderr together
    err: bytes = b""


def _command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "kanoa_desktop", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": ROOT, "COLUMNS": "200"}


def on_terminal(args: list[str], timeout: float = 180.0) -> Ran:
    """``kanoa-desktop ARGS`` with stdin, stdout and stderr on one pseudo-terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(_command(args), stdin=slave, stdout=slave, stderr=slave,
                            env=_env(), cwd=ROOT, close_fds=True)  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the command closed the terminal's last writer
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(f"{args} did not end in {timeout} s: {b''.join(chunks)!r}")
    finally:
        os.close(master)
    return Ran(proc.wait(timeout=30), b"".join(chunks))


def piped(args: list[str], timeout: float = 180.0) -> Ran:
    """``kanoa-desktop ARGS`` with stdout and stderr to pipes (a script, ``| less``)."""
    done = subprocess.run(_command(args), capture_output=True, env=_env(), cwd=ROOT,
                          timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip
    return Ran(done.returncode, done.stdout, done.stderr)
