"""The fleet view's Prometheus and router answers, misbehaving on purpose (tests/hostile/
server.py), and the real Prometheus answering what the fleet does not ask for.

Big answers run in a fresh process (``child.py``, one case each) so the peak resident size
measured is the reader's own. Every case ends in a sentence (a ``PrometheusError``, or a
warning in the snapshot), never an AttributeError; the command line prefixes it with
``error:``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kanoa_desktop.cli import run_cli
from kanoa_desktop.core.monitor.fleet import FleetReader, PrometheusError
from kanoa_desktop.core.monitor.metrics import MetricsBodyTooLarge, parse_scrape
from tests.hostile.server import HostileServer
from tests.servers.prometheus import PrometheusServer, missing_reason

ROOT = Path(__file__).resolve().parents[2]
PEAK_MB = 500

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server():
    with HostileServer() as s:
        yield s


def _child(server: HostileServer, case: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.hostile.child", str(server.port), case],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    return json.loads(line)


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("prom-huge:fleet", "with more than 16 MB; reading stopped there"),
        ("prom-many:fleet", "with about 4,000,0"),
    ],
)
def test_a_huge_prometheus_answer_is_refused_in_bounded_memory(server, case, words):
    r = _child(server, case)
    assert (r["outcome"], r["error"]) == ("error", "PrometheusError"), r
    assert words in r["message"] and "Traceback" not in r["message"], r
    assert r["maxrss_mb"] < PEAK_MB, r


def _reader(server: HostileServer, scenario: str, **kw) -> FleetReader:
    return FleetReader(server.url(scenario), timeout_s=5.0, **kw)


@pytest.mark.parametrize(
    ("scenario", "words"),
    [
        ("prom-scalar", "with a scalar result, not the vector of series"),
        ("prom-string", "with a string result, not the vector of series"),
        ("prom-data-list", "without the data object a Prometheus answer has"),
        ("prom-redirect", "answered HTTP 302: it redirects to http://prometheus.lab:9090/"),
    ],
)
async def test_answers_that_are_not_a_vector_of_series_are_one_sentence(server, scenario, words):
    reader = _reader(server, scenario)
    try:
        with pytest.raises(PrometheusError) as err:
            await reader.snapshot()
    finally:
        await reader.aclose()
    assert words in str(err.value)


async def test_samples_of_the_wrong_shape_are_skipped_and_the_good_one_kept(server):
    reader = _reader(server, "prom-odd-samples")
    try:
        snap = await reader.snapshot()
        history = await reader.history("kv", 900.0)
    finally:
        await reader.aclose()
    assert [(r.instance, r.job, r.up) for r in snap.rows] == [("h:1", "vllm", True)]
    assert history == {"h:1": [(2.0, 3.0)]}


async def test_a_servers_error_is_quoted_with_its_escapes_shown(server):
    reader = _reader(server, "prom-rich-error")
    try:
        with pytest.raises(PrometheusError) as err:
            await reader.snapshot()
    finally:
        await reader.aclose()
    text = str(err.value)
    assert "\x1b" not in text and "\x07" not in text and "\\x1b]0;owned\\x07" in text
    assert 'refused the query (400): <img src="file:///etc/passwd">' in text  # as text


async def test_a_router_list_cut_at_its_cap_is_called_too_large(server):
    reader = _reader(server, "router-huge", router_url=server.url("router-huge"))
    try:
        snap = await reader.snapshot()
    finally:
        await reader.aclose()
    assert snap.router is None
    assert "larger than 4 MB" in snap.router_error and "not a vLLM router" not in snap.router_error
    assert any("larger than 4 MB" in w for w in snap.warnings)


@pytest.mark.parametrize("scenario", ["prom-scalar", "prom-data-list", "prom-odd-samples"])
def test_the_fleet_command_says_error_and_never_raises(server, scenario, capsys):
    status = run_cli(["fleet", "--prometheus", server.url(scenario), "--once", "--timeout", "5"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    if scenario == "prom-odd-samples":
        assert status == 0 and "h:1" in out.out
    else:
        assert status == 1
        assert out.err.startswith("error: ") and out.err.count("\n") == 1, out.err


def test_a_metrics_page_of_too_many_lines_is_not_parsed():
    body = "".join(f'vllm:num_requests_running{{model_name="m{i}"}} 1\n' for i in range(60_000))
    with pytest.raises(MetricsBodyTooLarge) as err:
        parse_scrape(body, 0.0)
    assert "has 60,000 lines, more than the 50,000" in str(err.value)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    reason = missing_reason()
    if reason:
        pytest.fail(reason)  # a real part: never skipped
    prom = PrometheusServer({})
    prom.start(tmp_path_factory.mktemp("prometheus"))
    yield prom
    prom.stop()


@pytest.mark.parametrize(
    ("promql", "kind"), [("42", "scalar"), ('"a string"', "string"), ("up[5m]", "matrix")]
)
async def test_the_real_prometheus_answering_another_type_is_a_sentence(prometheus, promql, kind):
    reader = FleetReader(prometheus.url, timeout_s=5.0)
    try:
        with pytest.raises(PrometheusError) as err:
            await reader.query(promql)
    finally:
        await reader.aclose()
    assert f"with a {kind} result, not the vector of series" in str(err.value)
