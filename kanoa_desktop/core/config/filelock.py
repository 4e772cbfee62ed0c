"""An advisory lock on a file, shared by this app's processes (the window, the command
line, a second window): ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows.

The operating system drops the lock when its process ends, however it ends (a crash, a
kill), so a lock that can be taken means nobody who took it is still running.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import TracebackType

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class FileLock:
    """An exclusive lock on ``path`` (created if missing, never written).

    ``with FileLock(p):`` waits up to ``timeout_s`` and raises :class:`TimeoutError` after;
    :meth:`acquire` with ``timeout_s=0`` only tries. Opening the lock file can raise
    OSError (a read-only or full folder): callers decide what that means.
    """

    def __init__(self, path: Path | str, timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout_s: float | None = None) -> bool:
        """Take the lock; False when another holder kept it for ``timeout_s``."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                os.close(fd)
                return False
            time.sleep(0.01)
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                _unlock(fd)
            finally:
                os.close(fd)

    def __enter__(self) -> FileLock:
        if not self.acquire():
            raise TimeoutError(f"{self.path} stayed locked for {self.timeout_s:.0f} s")
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def held_elsewhere(path: Path | str) -> bool | None:
    """True while another holder has the lock on ``path``; False when it is free (or the
    file does not exist: nobody holds it); None when that cannot be told (the file cannot
    be opened)."""
    if not Path(path).exists():
        return False
    probe = FileLock(path)
    try:
        if probe.acquire(timeout_s=0):
            probe.release()
            return False
    except OSError:
        return None
    return True
