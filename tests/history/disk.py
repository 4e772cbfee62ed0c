"""A real small disk for the tests of a full or read-only data folder (issue 23): a 4 MiB
tmpfs mounted under the test's temp folder when the tests run as root (they do, here and
in CI), taken down in a finalizer. Filling it writes a real file until the kernel says
ENOSPC; nothing in sqlite3 is mocked. Without root there is no mount: a read-only folder
is made with chmod, and a full disk cannot be made (those tests fail with a reason)."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
from pathlib import Path

import pytest

ROOT = os.geteuid() == 0


class Disk:
    """The mounted folder ``path``; ``fill``, ``free``, ``read_only`` and ``writable``."""

    def __init__(self, path: Path, mounted: bool) -> None:
        self.path = path
        self.mounted = mounted
        self._filler = path / "filler.bin"

    def fill(self) -> None:
        """Write until the disk is full (the kernel refuses with ENOSPC)."""
        if not self.mounted:
            pytest.fail("filling a disk needs root (a tmpfs mount)", pytrace=False)
        with open(self._filler, "ab", buffering=0) as f:
            block = b"\0" * 4096
            with contextlib.suppress(OSError):
                while True:
                    f.write(block)
        # The last partial blocks too, so even a one-page write fails.
        with contextlib.suppress(OSError), open(self.path / "filler-2.bin", "ab", buffering=0) as f:
            while True:
                f.write(b"\0")

    def free(self) -> None:
        for name in ("filler.bin", "filler-2.bin"):
            (self.path / name).unlink(missing_ok=True)

    def read_only(self) -> None:
        """No more writes to the folder: a read-only remount as root (every file in it
        must be closed), else chmod."""
        if self.mounted:
            gc.collect()  # connections a test dropped without closing
            _run("mount", "-o", "remount,ro", str(self.path))
        else:
            self.path.chmod(0o555)
            (self.path / "data").chmod(0o555)

    def writable(self) -> None:
        if self.mounted:
            _run("mount", "-o", "remount,rw", str(self.path))
        else:
            self.path.chmod(0o755)
            (self.path / "data").chmod(0o755)


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


@pytest.fixture
def disk(tmp_path):
    """A 4 MiB disk at ``disk.path`` (with a ``data`` folder), gone after the test."""
    path = tmp_path / "disk"
    path.mkdir()
    if ROOT:
        _run("mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(path))
    d = Disk(path, mounted=ROOT)
    (path / "data").mkdir()
    yield d
    gc.collect()
    if ROOT:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode:
            _run("umount", "-l", str(path))  # a file a test left open: detach it anyway
    else:
        d.writable()
