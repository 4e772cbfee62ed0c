"""``kanoa-desktop --self-test``: one line per check, exit 0 only when everything works.

In-process against the vLLM test server, and as a subprocess through the frozen build's
entry script (packaging/launcher.py) with no display at all, as a user's report would be.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kanoa_desktop import selftest

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ("window", "image", "svg", "pdf", "plot", "keyring", "certificates")


def lines_by_check(report: str) -> dict[str, str]:
    out = {}
    for line in report.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("OK", "FAIL"):
            out[parts[1]] = line
    return out


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_all_checks_pass_and_stream_from_a_server(qapp, vllm_server):
    out = io.StringIO()
    code = selftest.run_self_test(vllm_server.api_base, timeout=30, out=out)
    report = out.getvalue()
    assert code == 0, report
    checks = lines_by_check(report)
    assert set(checks) == {*CHECKS, "server"}
    assert all(line.startswith("OK") for line in checks.values()), report
    # The first model the server lists streamed, within the token cap.
    model = vllm_server.model
    assert model in checks["server"]
    assert f"{selftest.STREAM_MAX_TOKENS} tokens" in checks["server"]
    assert report.rstrip().endswith(f"PASSED: all {len(CHECKS) + 1} checks")
    from kanoa_desktop.core.config.logs import log_path

    assert f"Log file: {log_path()}" in report.splitlines()[1]  # for a problem report


def test_a_servers_model_name_cannot_send_escapes_to_the_terminal(qapp):
    # The report names the model the server listed: outside text, shown escaped.
    from tests.servers.vllm_server import VLLMTestServer

    hostile = "qwen\x1b]0;pwned\x07\x1b[2J\u202e"
    out = io.StringIO()
    with VLLMTestServer(model=hostile) as server:
        code = selftest.run_self_test(server.api_base, timeout=30, out=out)
    report = out.getvalue()
    assert code == 0, report
    assert not any(c in report for c in "\x1b\x07\u202e")
    assert "qwen\\x1b]0;pwned\\x07\\x1b[2J\\u202e" in lines_by_check(report)["server"]


def test_an_unreachable_server_fails_the_run_in_plain_words_and_the_rest_still_runs(qapp):
    out = io.StringIO()
    api = f"http://127.0.0.1:{closed_port()}/v1"
    code = selftest.run_self_test(api, timeout=10, out=out)
    report = out.getvalue()
    assert code == 1
    checks = lines_by_check(report)
    assert checks["server"].startswith("FAIL")
    assert "Traceback" not in report
    assert all(checks[name].startswith("OK") for name in CHECKS), report
    assert "FAILED: 1 of 8 checks (server)" in report


def test_a_bundle_without_the_native_keyring_backend_fails_the_keyring_check(monkeypatch):
    # What a PyInstaller build that lost the keyring.backends hidden imports looks like.
    monkeypatch.setitem(selftest.NATIVE_KEYRING, sys.platform, "keyring.backends.NotBundled")
    result = selftest._run("keyring", selftest.check_keyring)
    assert not result.ok
    assert "keyring.backends.NotBundled" in result.detail
    assert "cannot be imported" in result.detail


def test_a_check_that_raises_becomes_a_fail_line_not_a_traceback():
    def broken() -> str:
        raise OSError("libpdfium.so: cannot open shared object file")

    result = selftest._run("pdf", broken)
    assert not result.ok
    assert result.line().startswith("FAIL  pdf")
    assert "OSError: libpdfium.so" in result.line()


def test_the_window_check_leaves_the_users_settings_alone(qapp, _isolated_home):
    before = sorted(p.relative_to(_isolated_home) for p in _isolated_home.rglob("*"))
    result = selftest._run("window", selftest.check_window)
    assert result.ok, result.detail
    after = sorted(p.relative_to(_isolated_home) for p in _isolated_home.rglob("*"))
    assert after == before
    assert os.environ["KANOA_DESKTOP_HOME"] == str(_isolated_home)


@pytest.mark.parametrize("with_server", [False, True])
def test_entry_script_runs_the_self_test_without_any_display(vllm_server, tmp_path, with_server):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env["PYTHONPATH"] = str(ROOT)
    args = [sys.executable, str(ROOT / "packaging" / "launcher.py"), "--self-test"]
    if with_server:
        args += ["--server", vllm_server.api_base, "--timeout", "30"]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = lines_by_check(proc.stdout)
    assert "offscreen" in checks["window"]
    assert ("server" in checks) is with_server


def test_entry_script_exits_1_when_a_check_fails(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
    api = f"http://127.0.0.1:{closed_port()}/v1"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "packaging" / "launcher.py"),
            "--self-test",
            "--server",
            api,
            "--timeout",
            "10",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 1
    assert lines_by_check(proc.stdout)["server"].startswith("FAIL")


def test_app_entry_point_runs_the_self_test(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-m", "kanoa_desktop", "--self-test"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout
