"""The client, the metrics poller and the CLI against servers that misbehave on purpose.

Memory and time: the endless and dripping cases run in a fresh process (``child.py``) so
its peak resident size is the client's own; each must end with a clear typed error (or a
finished answer with a notice) and the process must stay under a few hundred MB, while the
server would have sent 600 MB. Wall time is bounded generously (no timing assertions).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.core.endpoint.client import ChatClient, Timeouts, collect
from kanoa_desktop.core.endpoint.events import Finished, TextDelta, Usage
from kanoa_desktop.core.monitor.metrics import MetricsDeriver
from kanoa_desktop.core.monitor.poller import MetricsPoller, PollState
from tests.hostile.server import HostileServer

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-hostile-test-key-0123456789abcdef"
PEAK_MB = 350  # the child's whole peak RSS (Python + httpx + kanoa core is ~60-90 MB)


@pytest.fixture(scope="module")
def server():
    with HostileServer() as s:
        yield s


def _req(max_tokens: int = 50) -> ChatRequest:
    return ChatRequest("m", [user_message("Describe the plot.")], max_tokens=max_tokens)


def _client(server: HostileServer, scenario: str, **kw) -> ChatClient:
    timeouts = Timeouts(read=30.0, first_token=5.0, progress=5.0, reply=5.0)
    return ChatClient(server.api_base(scenario), timeouts=timeouts, **kw)


# --- memory and time: a fresh process per batch ---------------------------------------------

CASES = {
    # case: (expected outcome, expected error class or finish notice)
    "ratelimit:chat": ("error", "RateLimited"),  # first: the baseline peak
    "endless-json:models": ("error", "BodyTooLarge"),
    "endless-json:embeddings": ("error", "BodyTooLarge"),
    "endless-json:chat": ("error", "BodyTooLarge"),  # a non-streamed reply without end
    "endless-error:chat": ("error", "ServerError"),
    "endless-error:models": ("error", "ServerError"),
    "endless-line:chat": ("error", "BodyTooLarge"),
    "endless-metrics:metrics": ("bad_body", None),
    "runaway:chat": ("ok", "max_tokens_ignored"),
    "huge-chunks:chat": ("ok", "max_tokens_ignored"),
    "keepalive:chat": ("error", "FirstTokenTimeout"),
    "keepalive-after-token:chat": ("error", "ProgressTimeout"),
    "drip:chat": ("error", "ProgressTimeout"),
    "drip:models": ("error", "ReadTimeout"),
    "drip:metrics": ("unreachable", None),
    "silent-headers:chat": ("error", "FirstTokenTimeout"),
    "silent-headers:models": ("error", "ReadTimeout"),
    "endless-json:router": ("ok", None),  # a router's /workers without end: "not a router"
    "endless-json:prometheus": ("error", "PrometheusError"),
    "drip:prometheus": ("error", "PrometheusError"),
    "endless-json:discover": ("ok", None),  # local-server discovery probing such a port
}


@pytest.fixture(scope="module")
def child_results(server):
    with HostileServer(default="endless-json") as endless:
        return _run_child(server, endless)


def _run_child(server: HostileServer, endless: HostileServer) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HOSTILE_DEFAULT_PORT=str(endless.port))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.hostile.child", str(server.port), *CASES],
        capture_output=True,
        text=True,
        timeout=600,  # generous: a hang fails here instead of blocking the suite
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {r["case"]: r for r in results}


@pytest.mark.parametrize("case", list(CASES))
def test_each_hostile_case_ends_with_a_clear_outcome_in_bounded_memory(child_results, case):
    r = child_results[case]
    outcome, what = CASES[case]
    assert r["outcome"] == outcome, r
    if outcome == "error":
        assert r["error"] == what, r
        assert r["message"] and "Traceback" not in r["message"]
    elif outcome == "ok" and what is not None:
        assert what in r["notices"] and r["finish_reason"] == "length", r
    elif outcome == "ok":
        assert r.get("result") in ("None", "[]"), r
    assert r["maxrss_mb"] < PEAK_MB, r


def test_memory_grows_by_far_less_than_the_servers_send(child_results):
    baseline = child_results["ratelimit:chat"]["maxrss_mb"]
    peak = max(r["maxrss_mb"] for r in child_results.values())
    # The server pushes up to 600 MB per endless case; the caps keep reads under ~70 MB.
    assert peak - baseline < 200, child_results


def test_a_stream_cut_at_a_line_cap_keeps_the_text_before_it(child_results):
    assert child_results["endless-line:chat"]["text_chars"] == len("Hello")
    assert child_results["keepalive-after-token:chat"]["text_chars"] == len("The first words")


def test_an_endless_metrics_page_says_it_is_too_large(child_results):
    assert "larger than" in child_results["endless-metrics:metrics"]["message"]


def test_a_runaway_stream_stops_a_little_past_max_tokens(child_results):
    # max_tokens=50 -> stop past 71 chunks of "tok " (4 characters each).
    assert 50 * 4 <= child_results["runaway:chat"]["text_chars"] <= 80 * 4


# --- clear messages -----------------------------------------------------------------------


async def test_429_says_busy_and_when_to_retry(server):
    async with _client(server, "ratelimit") as client:
        with pytest.raises(E.RateLimited) as info:
            await collect(client, _req())
    err = info.value
    assert err.retry_after_s == 7 and err.retryable
    assert "busy" in err.message and "7 s" in err.hint


async def test_503_with_an_http_date_retry_after_gives_seconds(server):
    async with _client(server, "busy-date") as client:
        with pytest.raises(E.ServerBusy) as info:
            await client.models()
    assert 20 <= info.value.retry_after_s <= 31


async def test_a_redirect_to_https_is_reported_not_followed(server):
    before = len(server.seen.requests)
    async with _client(server, "to-https") as client:
        with pytest.raises(E.Redirected) as info:
            await collect(client, _req())
        with pytest.raises(E.Redirected):
            await client.models()
    err = info.value
    assert err.location.startswith("https://") and "HTTPS" in err.hint
    assert err.location in err.message
    # One POST and one GET reached the server: nothing was re-sent to the new address.
    assert len(server.seen.requests) - before == 2


async def test_a_redirect_into_v1_says_the_base_lacks_v1(server):
    base = server.url("to-v1")  # no /v1
    async with ChatClient(base) as client:
        with pytest.raises(E.Redirected) as info:
            await collect(client, _req())
    assert "/v1" in info.value.hint and info.value.location.endswith("/v1/chat/completions")


async def test_a_health_check_names_the_redirect(server):
    async with _client(server, "to-https") as client:
        health = await client.health()
    assert health.state == "down" and "https://" in health.detail


@pytest.mark.parametrize("scenario", ["echo-key", "echo-key-500"])
async def test_a_key_echoed_by_the_server_is_scrubbed_from_the_error(server, scenario):
    async with _client(server, scenario, api_key=KEY) as client:
        with pytest.raises(E.KanoaError) as info:
            await collect(client, _req())
    err = info.value
    shown = " ".join([err.message, err.hint, err.detail, str(err), repr(err)])
    assert "received header" in shown.lower() or "upstream failed" in shown
    assert KEY not in shown and KEY[8:20] not in shown
    assert "•••" in shown


async def test_a_lone_surrogate_in_a_delta_becomes_a_replacement_character(server):
    async with _client(server, "surrogate") as client:
        events = await collect(client, _req())
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.text == "Plot \ufffd of growth"
    for ev in events:
        if isinstance(ev, TextDelta):
            ev.text.encode("utf-8")  # never raises
    fin.text.encode("utf-8")


@pytest.mark.parametrize("scenario", ["nan-usage", "absurd-usage", "huge-usage-int"])
async def test_implausible_usage_is_estimated_instead(server, scenario):
    async with _client(server, scenario) as client:
        events = await collect(client, _req())
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.estimated
    assert 0 < usage.prompt_tokens < 1000 and 0 < usage.completion_tokens < 1000
    assert json.dumps(usage.total_tokens)  # a plain, finite integer


async def test_an_answer_of_only_reasoning_says_so(server):
    async with _client(server, "reasoning-only") as client:
        events = await collect(client, _req())
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.text == ""
    assert fin.reasoning.startswith("Let me think")
    assert [n.kind for n in fin.notices] == ["reasoning_only"]
    assert "max tokens" in fin.notices[0].message.lower()


async def test_chunks_of_unexpected_shapes_are_skipped_not_fatal(server):
    async with _client(server, "odd-shapes") as client:
        events = await collect(client, _req())
    assert events[-1].text == "Fine."


async def test_nan_inf_and_negative_metrics_are_unknown_and_the_json_is_valid(server, capsys):
    from kanoa_desktop.cli.metrics import _print, format_table

    poller = MetricsPoller(server.url("metrics-nan", "/metrics"), deriver=MetricsDeriver())
    try:
        update = await poller.poll_once()
    finally:
        await poller.aclose()
    assert update.state is PollState.LIVE, update.message
    snap = update.snapshot
    assert snap.kv_cache_usage is None
    assert snap.requests_running is None and snap.requests_waiting is None
    assert dict(snap.finished_reasons) == {"length": 4}
    table = format_table(snap).lower()
    assert "inf" not in table and "nan" not in table
    _print(update, as_json=True)
    line = capsys.readouterr().out.strip()

    def refuse(name):
        raise AssertionError(f"bare {name} in --json output")

    record = json.loads(line, parse_constant=refuse)
    assert record["kv_cache_usage"] is None


def test_cli_interpret_prints_an_answer_with_a_lone_surrogate(server, tmp_path):
    """The command line survives invalid Unicode in the stream (it used to raise
    UnicodeEncodeError and lose the rest of the answer)."""
    table = tmp_path / "t.csv"
    table.write_text("x,y\n1,2\n2,4\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kanoa_desktop",
            "interpret",
            str(table),
            "--api-base",
            server.api_base("surrogate"),
            "--model",
            "m",
        ],
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    out = proc.stdout.decode("utf-8")
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-2000:]
    assert "Plot \ufffd of growth" in out
    assert b"Traceback" not in proc.stderr


def test_stream_stats_keep_the_estimate_when_a_usage_is_absurd():
    from kanoa_desktop.core.endpoint.stats import StreamStats

    stats = StreamStats(prompt_estimate=40)
    stats.feed(TextDelta(1.0, "one"))
    stats.feed(Usage(2.0, -5, 10**35))
    assert stats.estimated and stats.prompt_tokens == 40 and stats.output_tokens == 1
    assert stats.cost < 1.0
