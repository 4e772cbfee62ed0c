"""The command line and the entry point, as a user runs them (subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kanoa_desktop.ui.app import NO_DISPLAY_MESSAGE, display_problem
from tests.servers.llama import free_port
from tests.servers.vllm_server import VLLMTestServer


def _run(args, env=None, timeout=120):
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kanoa_desktop", *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=timeout,
    )


def test_window_without_a_display_ends_with_a_clear_sentence_not_a_qt_abort():
    out = _run([])
    assert out.returncode == 2
    assert "needs a display" in out.stderr and "QT_QPA_PLATFORM=offscreen" in out.stderr
    assert "xvfb-run" in out.stderr
    assert "Traceback" not in out.stderr and "qt.qpa" not in out.stderr


def test_display_problem_rules():
    assert display_problem({}, "linux") == NO_DISPLAY_MESSAGE
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert "no X server" in display_problem({"DISPLAY": ":97"}, "linux")
    assert display_problem({}, "darwin") is None


@pytest.mark.llama
def test_interpret_csv_streams_to_stdout_and_ends_with_usage(llama_server, tmp_path):
    csv = tmp_path / "data.csv"
    csv.write_text("x,y\n" + "\n".join(f"{i},{i * i}" for i in range(50)) + "\n")
    out = _run(["interpret", str(csv), "--api-base", llama_server.api_base, "--max-tokens", "40",
                "--context", "a quadratic"])  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) >= 2 and lines[-1].startswith("[usage] prompt ")
    assert "output" in lines[-1] and "time to first token" in lines[-1] and "tokens/s" in lines[-1]
    assert "(estimated)" not in lines[-1]  # llama.cpp reports usage
    assert "".join(lines[:-1]).strip()  # the answer itself


def test_interpret_a_figure_against_the_vllm_test_server_uses_the_first_model(tmp_path):
    from PIL import Image

    png = tmp_path / "plot.png"
    Image.new("RGB", (300, 200), "white").save(png)
    with VLLMTestServer(answer_tokens=20) as server:
        out = _run(["interpret", str(png), "--api-base", server.api_base, "--focus", "the peak"])
        body = server.received[-1].body
    assert out.returncode == 0, out.stderr
    assert body["model"] == "qwen2.5-vl-7b"
    assert body["messages"][-1]["content"][0]["type"] == "image_url"
    assert "the peak" in body["messages"][-1]["content"][-1]["text"]


@pytest.mark.parametrize(
    ("make_args", "needle"),
    [
        (
            lambda tmp: [
                "interpret",
                str(tmp / "missing.png"),
                "--api-base",
                "http://127.0.0.1:9/v1",
            ],
            "missing.png",
        ),
        (
            lambda tmp: [
                "interpret",
                str(tmp / "ok.csv"),
                "--api-base",
                f"http://127.0.0.1:{free_port()}/v1",
                "--model",
                "m",
            ],
            "Nothing is listening",
        ),
    ],
)
def test_interpret_errors_print_the_typed_message_and_exit_non_zero(tmp_path, make_args, needle):
    (tmp_path / "ok.csv").write_text("a,b\n1,2\n")
    out = _run(make_args(tmp_path))
    assert out.returncode == 1
    assert needle in out.stderr and "hint:" in out.stderr
    assert "Traceback" not in out.stderr


def test_interpret_with_a_wrong_key_never_prints_the_key(tmp_path):
    (tmp_path / "ok.csv").write_text("a,b\n1,2\n")
    with VLLMTestServer(api_key="sk-right") as server:
        out = _run(["interpret", str(tmp_path / "ok.csv"), "--api-base", server.api_base, "--model", "qwen2.5-vl-7b"],
                   env={"KANOA_API_KEY": "sk-wrong-secret-777"})  # fmt: skip
    assert out.returncode == 1
    assert "refused the API key" in out.stderr
    assert "sk-wrong-secret-777" not in out.stderr + out.stdout


def test_the_app_closes_cleanly_on_sigterm_with_a_request_running(tmp_path):
    """Start the real app offscreen, let it stream, send SIGTERM: it exits 0, the server
    sees the request aborted and the connection closed, and nothing is printed about
    leaked tasks, unclosed clients or ignored exceptions."""
    import signal
    import time

    with VLLMTestServer(tokens_per_second=20) as server:
        script = tmp_path / "drive.py"
        script.write_text(
            "import asyncio, sys\n"
            "from kanoa_desktop.ui import main_window as mw\n"
            "orig_show = mw.MainWindow.show\n"
            "def show(self):\n"
            "    orig_show(self)\n"
            "    p = self.store.active.with_user_values(api_base=sys.argv[1], model='qwen2.5-vl-7b')\n"
            "    self.store.update(p); self._on_profile_changed(self.store.active)\n"
            "    self.inputs.question.setPlainText('Tell me a long story.')\n"
            "    asyncio.get_running_loop().call_later(0.3, self.interpret)\n"
            "mw.MainWindow.show = show\n"
            "from kanoa_desktop.ui.app import run_app\n"
            "sys.exit(run_app([]))\n"
        )
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONWARNINGS": "always",
               "KANOA_DESKTOP_HOME": str(tmp_path / "home")}  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, str(script), server.api_base],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert server.wait_for(lambda s: s.running == 1, 30), "the app never started streaming"
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert server.wait_for(lambda s: s.aborted == 1 and s.open_connections == 0, 5)
    noise = [line for line in err.splitlines() if "propagateSizeHints" not in line and line.strip()]
    assert not any(
        word in line for line in noise
        for word in ("Task was destroyed", "Unclosed", "Exception ignored", "Traceback", "ResourceWarning", "never awaited")
    ), noise  # fmt: skip
    assert (tmp_path / "home" / "config" / "window.ini").exists()  # state saved on the way out


def test_a_second_launch_hands_its_files_to_the_running_window(tmp_path):
    import signal

    png = tmp_path / "second.png"
    from PIL import Image

    Image.new("RGB", (40, 30), "white").save(png)
    script = tmp_path / "first.py"
    script.write_text(
        "import sys\n"
        "from kanoa_desktop.ui import main_window as mw\n"
        "orig = mw.MainWindow.open_paths\n"
        "def open_paths(self, paths):\n"
        "    print('OPENED', *[str(p) for p in paths], flush=True)\n"
        "    orig(self, paths)\n"
        "mw.MainWindow.open_paths = open_paths\n"
        "orig_show = mw.MainWindow.show\n"
        "def show(self):\n"
        "    orig_show(self); print('SHOWN', flush=True)\n"
        "mw.MainWindow.show = show\n"
        "from kanoa_desktop.ui.app import run_app\n"
        "sys.exit(run_app([]))\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "KANOA_DESKTOP_HOME": str(tmp_path / "home"),
           "XDG_RUNTIME_DIR": str(tmp_path)}  # fmt: skip
    first = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)  # fmt: skip
    try:
        assert first.stdout.readline().strip() == "SHOWN"
        second = subprocess.run([sys.executable, "-m", "kanoa_desktop", str(png)], env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert second.returncode == 0, second.stderr
        assert first.stdout.readline().split() == ["OPENED", str(png)]
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
