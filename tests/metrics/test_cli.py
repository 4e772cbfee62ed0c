"""``kanoa-desktop metrics`` against the local test HTTP server."""

from __future__ import annotations

import json
import re
from pathlib import Path

from kanoa_desktop.cli import run_cli
from tests.metrics.bodies import Series, vllm_body

REFERENCE = (Path(__file__).parents[1] / "data" / "vllm-0.33-metrics.prom").read_text()


def test_once_json_prints_one_derived_snapshot(metrics_server, capsys):
    metrics_server.respond(200, REFERENCE)
    assert run_cli(["metrics", "--url", metrics_server.url, "--once", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["state"] == "live" and record["kind"] == "vllm"
    assert record["models"] == ["qwen2.5-vl-7b"]
    assert record["generation_tokens_per_s"] == 0.0  # two scrapes of an idle server
    assert metrics_server.hits == 2


def test_once_table_shows_units_and_dashes_for_unknown(metrics_server, capsys):
    metrics_server.respond(200, vllm_body(Series(kv=0.42, waiting=3)))
    assert run_cli(["metrics", "--url", metrics_server.url, "--once"]) == 0
    out = capsys.readouterr().out
    assert "KV cache" in out and "42.0 %" in out
    assert "waiting 3" in out
    assert re.search(r"^TTFT +p50 — +p95 —", out, re.M)  # no requests in the window: unknown
    assert "3 requests are waiting" in out


def test_unreachable_server_prints_a_plain_message_and_exits_1(refused_url, capsys):
    assert run_cli(["metrics", "--url", refused_url, "--once"]) == 1
    err = capsys.readouterr().err
    assert "connection refused" in err and "Traceback" not in err


def test_disabled_metrics_endpoint_says_how_to_enable_it(metrics_server, capsys):
    metrics_server.respond(501, "")
    assert run_cli(["metrics", "--url", metrics_server.url, "--once"]) == 1
    assert "--metrics" in capsys.readouterr().err
