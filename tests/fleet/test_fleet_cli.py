"""``kanoa-desktop fleet`` with bad input: a sentence and a status, never a traceback."""

from __future__ import annotations

import socket

from kanoa_desktop.cli import run_cli


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_prometheus_not_running_is_one_sentence_and_status_1(capsys):
    url = closed_url()
    assert run_cli(["fleet", "--prometheus", url, "--once"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot ask Prometheus: nothing is listening at 127.0.0.1:")
    assert err.count("\n") == 1 and "?." not in err
    assert "Traceback" not in err


def test_a_non_positive_interval_or_window_is_refused(capsys):
    assert run_cli(["fleet", "--prometheus", closed_url(), "--interval", "0"]) == 2
    assert "--interval must be a positive number" in capsys.readouterr().err
    assert run_cli(["fleet", "--prometheus", closed_url(), "--window", "-5"]) == 2
    assert "--window must be a positive number" in capsys.readouterr().err
