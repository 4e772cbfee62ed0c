"""Whether a turn still ``streaming`` in the history is being written by a live process.

Several processes share the history (the window, the command line, a second window), so
a streaming turn found on opening is not necessarily a crash's leftover. Each process
that records holds a lock on ``history.live/<token>.lock`` beside the history while it
runs; its turns carry the token (``owner``) and a heartbeat (``beat``, written with each
flush and every :data:`HEARTBEAT_S` while the answer stalls). A turn is live while its
owner's lock is held; where that cannot be told (no token, a folder where locks do not
work), while its heartbeat is younger than :data:`STALE_S`.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path

from kanoa_desktop.core.config.filelock import FileLock, held_elsewhere

log = logging.getLogger(__name__)

LIVE_DIR = "history.live"
HEARTBEAT_S = 5.0
STALE_S = 60.0

_TOKEN = re.compile(r"^[0-9]+-[0-9a-f]{8}$")


class Presence:
    """This process's mark beside the history; ``token`` is None when it cannot be made
    (a read-only or full folder: liveness falls back on the heartbeat)."""

    def __init__(self, folder: Path) -> None:
        self.token: str | None = None
        self._lock: FileLock | None = None
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        try:
            (folder / LIVE_DIR).mkdir(exist_ok=True)
            lock = FileLock(folder / LIVE_DIR / f"{token}.lock")
            if lock.acquire(timeout_s=0):
                self.token, self._lock = token, lock
        except OSError as exc:
            log.debug("no liveness lock for the history: %s", exc)

    def close(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()
            try:
                lock.path.unlink(missing_ok=True)
            except OSError:
                pass


def is_live(folder: Path, owner: str | None, beat: float | None, now: float) -> bool:
    """Whether the turn with this ``owner`` and last heartbeat ``beat`` is still written."""
    if owner and _TOKEN.match(owner):
        path = folder / LIVE_DIR / f"{owner}.lock"
        held = held_elsewhere(path)
        if held is not None:
            if not held:
                try:
                    path.unlink(missing_ok=True)  # its process is gone
                except OSError:
                    pass
            return held
    return beat is not None and now - beat < STALE_S


def sweep(folder: Path) -> None:
    """Remove the marks of processes that are gone (a crash leaves its lock file)."""
    try:
        marks = list((folder / LIVE_DIR).glob("*.lock"))
    except OSError:
        return
    for path in marks:
        if held_elsewhere(path) is False:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass
