"""A second launch hands its files to the running window (kanoa_desktop.ui.single_instance).

The first instance listens in this process on pytest-qt's QApplication; the second launch
is a real subprocess, with no QApplication, as ``kanoa-desktop plot.png`` would be. Each
test uses its own app id, so a real kanoa desktop running on the machine is never touched.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kanoa_desktop.ui.single_instance import (
    SingleInstance,
    decode_message,
    encode_message,
    server_name,
)

ROOT = Path(__file__).resolve().parents[2]

SECOND_LAUNCH = """
import sys
from kanoa_desktop.ui.single_instance import SingleInstance
took = SingleInstance(sys.argv[1]).try_forward(sys.argv[2:])
sys.exit(0 if took else 3)
"""


@pytest.fixture
def app_id():
    return f"io.github.kanoa.Test{uuid.uuid4().hex[:10]}"


def launch_second(app_id: str, files: list[str], cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", SECOND_LAUNCH, app_id, *files], cwd=cwd, env=env)


def wait_exit(qtbot, proc: subprocess.Popen) -> int:
    # Keep the Qt loop turning while the child talks to the listener in this process.
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=20_000)
    return proc.returncode


def test_server_name_is_per_app_and_per_user():
    a = server_name("io.github.kanoa.Desktop", user="alice", runtime_dir="")
    b = server_name("io.github.kanoa.Desktop", user="bob", runtime_dir="")
    other = server_name("org.example.Other", user="alice", runtime_dir="")
    assert "io.github.kanoa.Desktop" in a and "alice" in a
    assert len({a, b, other}) == 3


def test_server_name_is_per_data_folder(tmp_path):
    """Another KANOA_DESKTOP_HOME (a portable install, a self-test, a test's throwaway
    home) is another app: its launches never hand their files to this one's window."""
    default = server_name("app", user="alice", runtime_dir="", home="")
    a = server_name("app", user="alice", runtime_dir="", home=str(tmp_path / "a"))
    b = server_name("app", user="alice", runtime_dir="", home=str(tmp_path / "b"))
    assert len({default, a, b}) == 3
    assert a == server_name("app", user="alice", runtime_dir="", home=str(tmp_path / "a"))


def test_a_launch_with_another_data_folder_is_not_taken(qtbot, app_id, tmp_path, monkeypatch):
    received: list[list[str]] = []
    monkeypatch.setenv("KANOA_DESKTOP_HOME", str(tmp_path / "first"))
    first = SingleInstance(app_id)
    assert first.listen(received.append)
    try:
        monkeypatch.setenv("KANOA_DESKTOP_HOME", str(tmp_path / "second"))
        assert wait_exit(qtbot, launch_second(app_id, ["a.png"], cwd=tmp_path)) == 3
        monkeypatch.setenv("KANOA_DESKTOP_HOME", str(tmp_path / "first"))
        assert wait_exit(qtbot, launch_second(app_id, ["b.png"], cwd=tmp_path)) == 0
        qtbot.waitUntil(lambda: bool(received), timeout=5_000)
    finally:
        first.close()
    assert received == [[str(tmp_path / "b.png")]]


def test_server_name_cleans_odd_user_names_without_collisions():
    a = server_name("app", user="DOMAIN\\alice", runtime_dir="")
    b = server_name("app", user="DOMAIN/alice", runtime_dir="")
    assert "\\" not in a and "/" not in b
    assert a != b


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_RUNTIME_DIR is Linux")
def test_server_name_uses_the_private_runtime_dir_on_linux(tmp_path):
    name = server_name("app", user="alice", runtime_dir=str(tmp_path))
    assert Path(name).parent == tmp_path


def test_a_long_runtime_dir_still_gives_a_socket_path_that_fits(tmp_path):
    for depth in (1, 20, 80):
        deep = tmp_path / ("d" * depth)
        deep.mkdir()
        args = ("io.github.kanoa.Desktop", "alice", str(deep))
        name, other = server_name(*args, home="/h"), server_name(*args, home="/i")
        assert len(name.encode()) <= 100, name
        assert name != other


def test_message_makes_relative_paths_absolute_against_the_senders_cwd(tmp_path):
    line = encode_message(["plot.png", "/data/t.csv"], cwd=str(tmp_path))
    assert line.endswith(b"\n")
    assert decode_message(line.strip()) == [str(tmp_path / "plot.png"), "/data/t.csv"]


@pytest.mark.parametrize(
    "line",
    [b"not json", b'{"v": 99, "files": []}', b'{"v": 1, "files": [1, 2]}', b"\xff\xfe", b"[]"],
)
def test_unknown_messages_are_rejected(line):
    assert decode_message(line) is None


def test_forward_without_a_running_instance_returns_false(app_id):
    assert SingleInstance(app_id).try_forward(["plot.png"], timeout_ms=500) is False


def test_second_launch_hands_its_files_to_the_first(qtbot, app_id, tmp_path):
    received: list[list[str]] = []
    first = SingleInstance(app_id)
    assert first.listen(received.append)
    try:
        proc = launch_second(app_id, ["plot.png", "sub/data.csv"], cwd=tmp_path)
        assert wait_exit(qtbot, proc) == 0  # the second launch was told the files are taken
        qtbot.waitUntil(lambda: bool(received), timeout=5_000)
        assert received == [[str(tmp_path / "plot.png"), str(tmp_path / "sub" / "data.csv")]]
    finally:
        first.close()


def test_second_launch_without_files_asks_the_first_to_come_forward(qtbot, app_id, tmp_path):
    received: list[list[str]] = []
    first = SingleInstance(app_id)
    assert first.listen(received.append)
    try:
        assert wait_exit(qtbot, launch_second(app_id, [], cwd=tmp_path)) == 0
        qtbot.waitUntil(lambda: bool(received), timeout=5_000)
        assert received == [[]]
    finally:
        first.close()


def test_after_the_first_quits_a_launch_starts_its_own_window(qtbot, app_id, tmp_path):
    first = SingleInstance(app_id)
    assert first.listen(lambda files: None)
    first.close()
    assert wait_exit(qtbot, launch_second(app_id, ["a.png"], cwd=tmp_path)) == 3


def test_a_failing_callback_still_acknowledges_and_keeps_listening(qtbot, app_id, tmp_path):
    calls: list[list[str]] = []

    def broken(files: list[str]) -> None:
        calls.append(files)
        raise RuntimeError("window gone")

    first = SingleInstance(app_id)
    assert first.listen(broken)
    try:
        assert wait_exit(qtbot, launch_second(app_id, ["a.png"], cwd=tmp_path)) == 0
        assert wait_exit(qtbot, launch_second(app_id, ["b.png"], cwd=tmp_path)) == 0
        qtbot.waitUntil(lambda: len(calls) == 2, timeout=5_000)
    finally:
        first.close()


@pytest.mark.skipif(sys.platform == "win32", reason="named pipes leave no file behind")
def test_stale_socket_of_a_crashed_instance_is_replaced(qtbot, tmp_path):
    # A crashed instance leaves its socket file; nobody accepts on it.
    path = tmp_path / "crashed.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    assert path.exists()
    assert SingleInstance("x", name=str(path)).try_forward(["a.png"], timeout_ms=500) is False

    received: list[list[str]] = []
    first = SingleInstance("x", name=str(path))
    assert first.listen(received.append)
    try:
        assert first.listening
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        code = (
            "import sys\nfrom kanoa_desktop.ui.single_instance import SingleInstance\n"
            f"sys.exit(0 if SingleInstance('x', name={str(path)!r}).try_forward(['c.png'])"
            " else 3)"
        )
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env)
        assert wait_exit(qtbot, proc) == 0
        qtbot.waitUntil(lambda: bool(received), timeout=5_000)
        assert received == [[str(tmp_path / "c.png")]]
    finally:
        first.close()


def test_garbage_on_the_socket_is_ignored_and_the_guard_keeps_working(qtbot, app_id, tmp_path):
    from PySide6.QtNetwork import QLocalSocket

    received: list[list[str]] = []
    first = SingleInstance(app_id)
    assert first.listen(received.append)
    try:
        junk = QLocalSocket()
        junk.connectToServer(first.name)
        assert junk.waitForConnected(2000)
        junk.write(b"GET / HTTP/1.1\r\n\r\n")
        junk.flush()
        qtbot.waitUntil(
            lambda: junk.state() == QLocalSocket.LocalSocketState.UnconnectedState,
            timeout=5_000,
        )
        assert received == []
        assert wait_exit(qtbot, launch_second(app_id, ["ok.png"], cwd=tmp_path)) == 0
        qtbot.waitUntil(lambda: bool(received), timeout=5_000)
        assert received == [[str(tmp_path / "ok.png")]]
    finally:
        first.close()


def test_macos_file_open_events_reach_the_same_callback(qapp):
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QFileOpenEvent

    from kanoa_desktop.ui.single_instance import FileOpenHandler

    received: list[list[str]] = []
    handler = FileOpenHandler(received.append)
    qapp.installEventFilter(handler)
    try:
        QCoreApplication.sendEvent(qapp, QFileOpenEvent("/Users/ada/plot.png"))
    finally:
        qapp.removeEventFilter(handler)
    assert received == [["/Users/ada/plot.png"]]
