"""What survives a session that did not end well: a crash record, and the draft.

A window session (:meth:`Session.start`, first thing the window's process does) keeps a
file in the log folder, ``sessions/session-<id>.txt``, locked while the process lives:

- ``faulthandler`` writes into it: a native crash (SIGSEGV, SIGABRT, SIGBUS, SIGFPE,
  SIGILL) leaves every thread's Python stack there;
- a watchdog (``faulthandler.dump_traceback_later``, a C thread that needs no GIL) writes
  every thread's stack there when the GUI thread has not called :meth:`Session.pet` for
  :data:`WATCHDOG_S` seconds; once it runs again the stall and the stacks go to the log;
- a clean end (:meth:`Session.end`) deletes it.

So a session file that nobody holds at the next start is a session that ended badly:
it is moved beside the log as ``crash-<date>-<time>.txt`` (the last :data:`KEEP_RECORDS`
kept) and :attr:`Session.previous` describes it (:class:`UncleanEnd`: when, how, one line
for the window, plain text for a problem report).

The draft (:class:`Draft`) is what the window was holding and had not saved anywhere:
the question, context, focus, system prompt and the Settings dialog's unapplied edits
(profiles hold no API key; a key typed in the dialog is never part of it). The window
saves it on change and regularly (:meth:`Session.save_draft`: atomic, bounded, skipped
when unchanged) in the data folder, and the next start after an unclean end gets it back
(:attr:`Session.previous_draft`). A clean end deletes it.

Qt-free: the window renders :class:`UncleanEnd` and feeds and restores the draft.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from kanoa_desktop import APP_NAME
from kanoa_desktop.core.config import paths
from kanoa_desktop.core.config.logs import log_dir
from kanoa_desktop.core.config.profiles import write_json_atomic

log = logging.getLogger(__name__)

WATCHDOG_S = 5.0  # the GUI thread stuck this long: every thread's stack is written
KEEP_RECORDS = 5  # crash records kept beside the log
TOUCH_EVERY_S = 60.0  # the session file's time says when it last lived, to the minute
MAX_TEXT = 100_000  # characters kept per draft text field
MAX_DRAFT_BYTES = 1_000_000  # a draft larger than this drops its settings part, then text
MAX_PROFILES = 200
EXCERPT_CHARS = 6_000

SESSIONS = "sessions"
DRAFT_VERSION = 1

CRASH = "crash"  # a fatal signal: faulthandler wrote the stacks
HANG = "hang"  # the watchdog wrote the stacks, and the process never ended cleanly
KILLED = "killed"  # nothing written: killed, power lost, or an exit without cleanup


# ------------------------------------------------------------------ the draft


@dataclass(frozen=True)
class Draft:
    """What the window holds that no file has yet. ``settings`` is the Settings dialog's
    unapplied state (see :func:`settings_snapshot`), or None."""

    question: str = ""
    context: str = ""
    focus: str = ""
    system_prompt: str = ""
    settings: dict[str, Any] | None = None
    saved_at: float = 0.0

    def is_empty(self) -> bool:
        return not (self.question or self.context or self.focus or self.system_prompt) and (
            not self.settings
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": DRAFT_VERSION,
            "saved_at": self.saved_at,
            "question": self.question[:MAX_TEXT],
            "context": self.context[:MAX_TEXT],
            "focus": self.focus[:MAX_TEXT],
            "system_prompt": self.system_prompt[:MAX_TEXT],
            "settings": self.settings,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Draft | None:
        """A draft from its file's content, None when it is not one. Tolerant: a field of
        the wrong type is left empty."""
        if not isinstance(data, dict) or data.get("version") != DRAFT_VERSION:
            return None

        def text(name: str) -> str:
            value = data.get(name)
            return value[:MAX_TEXT] if isinstance(value, str) else ""

        settings = data.get("settings")
        saved = data.get("saved_at")
        return cls(
            question=text("question"),
            context=text("context"),
            focus=text("focus"),
            system_prompt=text("system_prompt"),
            settings=settings if isinstance(settings, dict) else None,
            saved_at=float(saved) if isinstance(saved, int | float) else 0.0,
        )


def settings_snapshot(
    *,
    current: str,
    profiles: list[Any],
    deleted: list[str] | tuple[str, ...] = (),
    preferences: Any = None,
) -> dict[str, Any]:
    """The Settings dialog's unapplied edits as plain data: the profiles it edits
    (:class:`~kanoa_desktop.core.config.profiles.Profile`, which hold no key), the ones
    it deletes, its preferences. Keys typed in the dialog are not passed here."""
    from kanoa_desktop.core.config.profiles import preferences_to_dict, profile_to_dict

    return {
        "current": current,
        "profiles": [profile_to_dict(p) for p in profiles[:MAX_PROFILES]],
        "deleted": [d for d in deleted if isinstance(d, str)][:MAX_PROFILES],
        "preferences": preferences_to_dict(preferences) if preferences is not None else None,
    }


@dataclass(frozen=True)
class RestoredSettings:
    """A settings snapshot read back: profiles and preferences rebuilt tolerantly."""

    current: str
    profiles: list[Any]
    deleted: list[str]
    preferences: Any  # Preferences | None


def restore_settings(snapshot: Any) -> RestoredSettings | None:
    """The unapplied settings of a draft, or None when there are none (or they are not
    readable)."""
    from kanoa_desktop.core.config.profiles import preferences_from_dict, profile_from_dict

    if not isinstance(snapshot, dict):
        return None
    raw = snapshot.get("profiles")
    if not isinstance(raw, list) or not raw:
        return None
    profiles = [profile_from_dict(p)[0] for p in raw[:MAX_PROFILES] if isinstance(p, dict)]
    if not profiles:
        return None
    ids = {p.id for p in profiles}
    current = snapshot.get("current")
    deleted = [d for d in snapshot.get("deleted") or [] if isinstance(d, str)]
    prefs = snapshot.get("preferences")
    return RestoredSettings(
        current=current if current in ids else profiles[0].id,
        profiles=profiles,
        deleted=deleted,
        preferences=preferences_from_dict(prefs) if isinstance(prefs, dict) else None,
    )


def _draft_bytes(draft: Draft) -> bytes:
    data = draft.to_dict()
    blob = json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")
    if len(blob) > MAX_DRAFT_BYTES and data["settings"] is not None:
        data["settings"] = None  # the text matters more than a settings edit
        blob = json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")
    while len(blob) > MAX_DRAFT_BYTES:
        for name in ("context", "system_prompt", "question", "focus"):
            data[name] = data[name][: len(data[name]) // 2]
        blob = json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return blob


# ------------------------------------------------------------------ an unclean end


@dataclass(frozen=True)
class UncleanEnd:
    """How the previous session ended, from the file it left."""

    ended_at: float  # epoch seconds: the last time the session wrote its file
    kind: str  # CRASH, HANG or KILLED
    record: Path | None  # the crash record kept beside the log (None if it could not be)
    excerpt: str  # the start of what faulthandler wrote (plain text, bounded)

    def line(self, now: float | None = None) -> str:
        """The one line the window shows: "kanoa desktop closed unexpectedly at 14:02"
        (with the date when it was not today)."""
        when = datetime.fromtimestamp(self.ended_at)
        today = datetime.fromtimestamp(time.time() if now is None else now).date()
        at = when.strftime("%H:%M")
        if when.date() != today:
            at = f"{when:%Y-%m-%d} {at}"
        how = {HANG: " (it had stopped responding)"}.get(self.kind, "")
        return f"{APP_NAME} closed unexpectedly at {at}{how}"

    def diagnostics(self, base: str) -> str:
        """``base`` (logs.diagnostics_text) plus how the last session ended and the start
        of its record. Stacks name files and functions only: no question, no key."""
        lines = [
            base.rstrip("\n"),
            "",
            f"Last session: {self.line()} ({self.kind})",
            f"Crash record: {self.record or 'not kept'}",
        ]
        if self.excerpt:
            lines += ["", self.excerpt.rstrip("\n")]
        return "\n".join(lines) + "\n"


RESPONDING_AGAIN = "Responding again after"


def _classify(text: str) -> str:
    if "Fatal Python error" in text:
        return CRASH
    dump = text.rfind("Timeout (")
    if dump >= 0 and text.find(RESPONDING_AGAIN, dump) < 0:
        return HANG  # stuck when it ended: the last dump was never followed by a recovery
    return KILLED


def _excerpt(text: str) -> str:
    """The fatal error (or the last watchdog dump) and the stacks after it, bounded."""
    start = text.rfind("Fatal Python error")
    if start < 0:
        start = text.rfind("Timeout (")
    return text[max(start, 0) : max(start, 0) + EXCERPT_CHARS]


# ------------------------------------------------------------------ locking


def _try_lock(fd: int) -> bool:
    """An exclusive, non-blocking lock on the file: True when this process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        try:
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)  # every process locks the same first byte
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except (ImportError, OSError):
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ the session


@dataclass
class Session:
    """One window process's crash record, watchdog and draft; see the module docstring.

    Build it with :meth:`start`. ``previous``/``previous_draft`` say how the last
    session that nobody holds ended and what it held (None after a clean end)."""

    record_dir: Path
    draft_dir: Path
    sid: str
    file: TextIO | None = None
    previous: UncleanEnd | None = None
    previous_draft: Draft | None = None
    watchdog_s: float = WATCHDOG_S
    _last_pet: float = 0.0
    _last_touch: float = 0.0
    _dumped_to: int = 0
    _last_draft: bytes = b""
    stalls: list[float] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.record_dir / SESSIONS / f"session-{self.sid}.txt"

    @property
    def draft_path(self) -> Path:
        return self.draft_dir / SESSIONS / f"draft-{self.sid}.json"

    # -- start

    @classmethod
    def start(
        cls,
        *,
        record_dir: Path | None = None,
        draft_dir: Path | None = None,
        watchdog_s: float | None = None,
    ) -> Session:
        """Look for a session that ended badly, then begin this one: its file created
        and locked, faulthandler writing into it. Never raises: without a writable log
        folder the session records nothing (faulthandler writes to stderr if it can)."""
        session = cls(
            record_dir=record_dir or log_dir(),
            draft_dir=draft_dir or paths.data_dir(),
            sid=f"{os.getpid()}-{time.time_ns() // 1_000_000}",
            watchdog_s=watchdog_s or WATCHDOG_S,
        )
        try:
            session.previous, session.previous_draft = session.claim_unclean()
        except OSError as exc:
            log.warning("Could not read the previous session's record: %s", exc)
        try:
            session._open()
        except OSError as exc:
            log.warning("No crash record for this session (%s): %s", session.path, exc)
            session.file = None
            with contextlib.suppress(RuntimeError, ValueError, AttributeError):
                faulthandler.enable(all_threads=True)  # to stderr, when there is one
        return session

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8", errors="replace")  # noqa: SIM115 - lives with the process
        if not _try_lock(fh.fileno()):
            fh.close()
            raise OSError("the session file is locked by another process")
        started = datetime.now().isoformat(timespec="seconds")
        fh.write(
            f"{APP_NAME} session {self.sid}, started {started}, Python {sys.version.split()[0]}\n"
        )
        fh.flush()
        self.file = fh
        self._dumped_to = fh.tell()
        faulthandler.enable(file=fh, all_threads=True)
        self._last_pet = self._last_touch = time.monotonic()

    def claim_unclean(self) -> tuple[UncleanEnd | None, Draft | None]:
        """Move every session file nobody holds to a crash record; the newest one's end
        and draft are returned (older ones are kept as records only). :meth:`start` does
        this before the session opens its own file."""
        folder = self.record_dir / SESSIONS
        if not folder.is_dir():
            return None, None
        found: list[tuple[float, UncleanEnd, Draft | None]] = []
        for path in sorted(folder.glob("session-*.txt")):
            claimed = self._claim(path)
            if claimed is not None:
                found.append(claimed)
        self._prune_records()
        if not found:
            return None, None
        found.sort(key=lambda item: item[0])
        _, end, draft = found[-1]
        return end, draft

    def _claim(self, path: Path) -> tuple[float, UncleanEnd, Draft | None] | None:
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return None  # gone meanwhile (another instance claimed it)
        try:
            if not _try_lock(fd):
                return None  # a live session (another window)
            ended = os.fstat(fd).st_mtime
            with open(fd, "rb", closefd=False) as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 256_000))
                text = fh.read().decode("utf-8", errors="replace")
            stamp = datetime.fromtimestamp(ended).strftime("%Y%m%d-%H%M%S")
            sid = path.stem.removeprefix("session-")
            record: Path | None = self.record_dir / f"crash-{stamp}-{sid}.txt"
            try:
                os.replace(path, record)
            except OSError:
                record = None
        finally:
            os.close(fd)
        draft_file = self.draft_dir / SESSIONS / f"draft-{sid}.json"
        draft = None
        with contextlib.suppress(OSError, ValueError):
            draft = Draft.from_dict(json.loads(draft_file.read_text(encoding="utf-8")))
        with contextlib.suppress(OSError):
            draft_file.unlink()
        end = UncleanEnd(
            ended_at=ended, kind=_classify(text), record=record, excerpt=_excerpt(text)
        )
        log.warning("The previous session ended unexpectedly (%s); record: %s", end.kind, record)
        return ended, end, draft

    def _prune_records(self) -> None:
        records = sorted(self.record_dir.glob("crash-*.txt"), key=lambda p: p.name)
        for old in records[:-KEEP_RECORDS]:
            with contextlib.suppress(OSError):
                old.unlink()

    # -- while it runs

    def pet(self) -> float | None:
        """The GUI thread is alive: re-arm the watchdog. Returns how long the thread had
        been stuck when that was longer than the watchdog's limit (its stacks, written
        meanwhile, are then copied to the log), else None. Call it about once a second
        from the GUI thread."""
        if self.file is None:
            return None
        now = time.monotonic()
        stuck = now - self._last_pet
        self._last_pet = now
        faulthandler.dump_traceback_later(self.watchdog_s, repeat=False, file=self.file)
        if now - self._last_touch >= TOUCH_EVERY_S:
            self._last_touch = now
            with contextlib.suppress(OSError):
                os.utime(self.path)
        if stuck <= self.watchdog_s:
            return None
        self.stalls.append(stuck)
        dump = self._new_dump()
        with contextlib.suppress(OSError, ValueError):
            self.file.write(f"{RESPONDING_AGAIN} {stuck:.1f} s\n")  # not a hang at the end
            self.file.flush()
            self._dumped_to = self.file.tell()
        # One line on stderr; the stacks in the log file only.
        log.warning(
            "The window did not respond for %.1f s (the log has every thread's stack).", stuck
        )
        log.info("What every thread was doing after %.1f s:\n%s", self.watchdog_s, dump)
        return stuck

    def _new_dump(self) -> str:
        """What the watchdog wrote since the last look, bounded."""
        try:
            self.file.flush()
            with open(self.path, "rb") as fh:
                fh.seek(self._dumped_to)
                data = fh.read(64_000)
                self._dumped_to = fh.tell()
        except OSError as exc:
            return f"(could not read {self.path}: {exc})"
        return data.decode("utf-8", errors="replace")

    def stop_watchdog(self) -> None:
        faulthandler.cancel_dump_traceback_later()

    def save_draft(self, draft: Draft) -> bool:
        """Write the draft atomically, when it changed (an empty draft removes the file).
        True when the file now holds it."""
        if draft.is_empty():
            if self._last_draft:
                self._last_draft = b""
                with contextlib.suppress(OSError):
                    self.draft_path.unlink()
            return True
        blob = _draft_bytes(dataclasses.replace(draft, saved_at=0.0))
        if blob == self._last_draft:
            return True
        try:
            data = json.loads(blob)
            data["saved_at"] = time.time()
            write_json_atomic(self.draft_path, data)
        except OSError as exc:
            log.warning("Could not save the draft (%s): %s", self.draft_path, exc)
            return False
        self._last_draft = blob
        return True

    # -- the end

    def end(self) -> None:
        """A clean end: no crash record, no draft, faulthandler back to stderr."""
        self.stop_watchdog()
        with contextlib.suppress(OSError):
            self.draft_path.unlink()
        if self.file is None:
            return
        faulthandler.disable()  # never left writing to a closed file
        with contextlib.suppress(RuntimeError, ValueError, AttributeError):
            faulthandler.enable(all_threads=True)  # stderr again; raises without one
        fh, self.file = self.file, None
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            fh.close()
