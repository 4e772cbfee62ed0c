"""One window per user: a second launch hands its files to the running one and exits.

The first instance listens on a local socket (``QLocalServer``: a Unix socket, a named pipe
on Windows) whose name comes from the app id and the user, so two users on one machine each
get their own window. A later launch connects, sends its files as one line of JSON, waits
for ``ok`` and exits; the first instance opens the files (an empty list means: come to the
front).

Usage in ``run_app``, before the window is built::

    instance = SingleInstance(APP_ID)
    if instance.try_forward(args.files):
        return 0                                  # the running window took them
    ...
    instance.listen(lambda files: window.open_files_from_launch(files))

On macOS, Finder opens files in a running app with a ``QFileOpenEvent`` on the application,
not through argv: :class:`FileOpenHandler` turns those into the same callback.

``try_forward`` needs no QApplication (it uses blocking socket calls), so a second launch
never builds any GUI. ``listen`` needs a running Qt event loop to serve connections.

Message (one line of UTF-8 JSON, at most ``MAX_MESSAGE_BYTES``)::

    {"v": 1, "files": ["/abs/path/plot.png", ...]}

Paths are made absolute in the sender, whose working directory may differ.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QObject
from PySide6.QtNetwork import QAbstractSocket, QLocalServer, QLocalSocket

from kanoa_desktop.ui.qt_guard import guarded

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 1024 * 1024
ACK = b"ok\n"
DEFAULT_TIMEOUT_MS = 2000


def _user() -> str:
    try:
        name = getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (some containers)
        name = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return name


def server_name(app_id: str, user: str | None = None, runtime_dir: str | None = None) -> str:
    """The local server name for ``app_id`` and ``user`` (default: the current user).

    On Linux with ``XDG_RUNTIME_DIR`` (a private per-user folder) it is a socket path
    there; elsewhere a plain name, which Qt places in the temp folder (Unix) or the
    named-pipe namespace (Windows), with the user in it so users never share a window.
    """
    user = _user() if user is None else user
    # Socket names must be portable file / pipe names; keep a hash so distinct odd user
    # names never collide after cleaning.
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", user)
    if clean != user:
        clean += "-" + hashlib.sha256(user.encode()).hexdigest()[:8]
    name = f"{app_id}-{clean}"
    runtime = os.environ.get("XDG_RUNTIME_DIR") if runtime_dir is None else runtime_dir
    if sys.platform.startswith("linux") and runtime and Path(runtime).is_dir():
        return str(Path(runtime) / f"{name}.sock")
    return name


def encode_message(paths: Sequence[str | os.PathLike[str]], cwd: str | None = None) -> bytes:
    """The line a second launch sends: its paths made absolute against ``cwd``."""
    base = Path(cwd or os.getcwd())
    files = [str((base / Path(p)).absolute()) for p in paths]
    return json.dumps({"v": PROTOCOL_VERSION, "files": files}).encode() + b"\n"


def decode_message(line: bytes) -> list[str] | None:
    """The files in one message, or None if it is not a message this version understands."""
    try:
        doc = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("v") != PROTOCOL_VERSION:
        return None
    files = doc.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return files


class SingleInstance(QObject):
    """The single-instance guard for one app id. Keep the object alive while listening."""

    def __init__(self, app_id: str, parent: QObject | None = None, *, name: str | None = None):
        super().__init__(parent)
        self.app_id = app_id
        self.name = name or server_name(app_id)
        self._server: QLocalServer | None = None
        self._on_files: Callable[[list[str]], None] | None = None
        self._buffers: dict[QLocalSocket, bytearray] = {}

    # -- second launch -------------------------------------------------------------------

    def try_forward(
        self, paths: Sequence[str | os.PathLike[str]], timeout_ms: int = DEFAULT_TIMEOUT_MS
    ) -> bool:
        """Hand ``paths`` to a running instance. True: it took them, so exit with 0.

        False when no instance is listening (or a stale socket is left behind, or the
        running one did not answer within ``timeout_ms``): start normally and ``listen``.
        Blocking, and needs no QApplication.
        """
        message = encode_message(paths)
        sock = QLocalSocket()
        try:
            sock.connectToServer(self.name)
            if not sock.waitForConnected(timeout_ms):
                return False
            sock.write(message)
            if not sock.waitForBytesWritten(timeout_ms):
                return False
            reply = bytearray()
            while len(reply) < len(ACK):
                if not sock.bytesAvailable() and not sock.waitForReadyRead(timeout_ms):
                    return False
                reply += bytes(sock.readAll().data())
            return bytes(reply[: len(ACK)]) == ACK
        finally:
            sock.abort()
            sock.deleteLater()

    # -- first launch --------------------------------------------------------------------

    def listen(self, on_files: Callable[[list[str]], None]) -> bool:
        """Serve later launches: ``on_files`` gets each launch's files (absolute paths;
        ``[]`` when it gave none: bring the window to the front).

        A socket left by a crashed instance is removed first. Returns False (and the app
        goes on without the guard) if the name cannot be taken.
        """
        self._on_files = on_files
        server = QLocalServer(self)
        # Only this user may connect: another user's launch must not open files here.
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        server.newConnection.connect(self._accept)
        if not server.listen(self.name):
            if server.serverError() == QAbstractSocket.SocketError.AddressInUseError:
                # Nobody answered try_forward, so the socket file is a crashed
                # instance's leftover. (With UserAccessOption Qt 6 binds in a private
                # folder and renames over the old file, so this path is rarely taken.)
                QLocalServer.removeServer(self.name)
                ok = server.listen(self.name)
            else:
                ok = False
            if not ok:
                log.warning(
                    "Single-instance guard off: cannot listen on %s (%s)",
                    self.name,
                    server.errorString(),
                )
                server.deleteLater()
                return False
        self._server = server
        return True

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.isListening()

    def close(self) -> None:
        """Stop listening and drop open connections (call on quit)."""
        for sock in list(self._buffers):
            sock.abort()
        self._buffers.clear()
        if self._server is not None:
            self._server.close()
            self._server.deleteLater()
            self._server = None

    def _accept(self) -> None:
        assert self._server is not None
        while self._server.hasPendingConnections():
            sock = self._server.nextPendingConnection()
            self._buffers[sock] = bytearray()
            sock.readyRead.connect(lambda s=sock: self._read(s))
            sock.disconnected.connect(lambda s=sock: self._drop(s))
            self._read(sock)  # data may have arrived with the connection

    def _drop(self, sock: QLocalSocket) -> None:
        self._buffers.pop(sock, None)
        sock.deleteLater()

    def _read(self, sock: QLocalSocket) -> None:
        buf = self._buffers.get(sock)
        if buf is None:
            return
        buf += bytes(sock.readAll().data())
        if b"\n" not in buf:
            if len(buf) > MAX_MESSAGE_BYTES:
                log.warning("Single-instance: dropped an oversized message")
                sock.abort()
            return
        line = bytes(buf[: buf.index(b"\n")])
        self._buffers[sock] = bytearray()
        files = decode_message(line)
        if files is None:
            log.warning("Single-instance: ignored a message it does not understand")
            sock.abort()
            return
        # Acknowledge first: the launching process exits as it reads "ok", and
        # opening files (or a failure in doing so) is the window's business, not its.
        sock.write(ACK)
        sock.flush()
        if self._on_files is not None:
            try:
                self._on_files(files)
            except Exception:  # a failing callback must not take the guard down with it
                log.exception("Single-instance: opening forwarded files failed")


class FileOpenHandler(QObject):
    """Hands ``QFileOpenEvent`` files (macOS Finder: "Open With", a drop on the Dock icon)
    to ``on_files``, one list per event. Install with ``app.installEventFilter(handler)``
    and keep a reference; elsewhere the event never comes, so it costs nothing."""

    def __init__(self, on_files: Callable[[list[str]], None], parent: QObject | None = None):
        super().__init__(parent)
        self._on_files = on_files

    @guarded(fallback=False)
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.FileOpen:
            path = event.file() or event.url().toLocalFile()
            if path:
                try:
                    self._on_files([path])
                except Exception:
                    log.exception("Opening a file from the system failed")
            return True
        return False
