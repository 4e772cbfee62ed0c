"""The commands that print what servers and files say (``metrics``, ``fleet``, ``kb``), run
for real on a terminal (a pty) and piped: no escape sequence from outside reaches the
output, and it shows escaped."""

from __future__ import annotations

import json

import pytest

from tests.fleet.conftest import address
from tests.reports.hostile import OSC_TITLE, assert_no_outside_escapes
from tests.reports.terminal import on_terminal, piped
from tests.servers import prometheus as prom_mod
from tests.servers.prometheus import PrometheusServer
from tests.servers.vllm_server import VLLMTestServer

pytestmark = pytest.mark.timeout(300)

# A served model name is a label value in /metrics and a word in every table.
MODEL = f"evil{OSC_TITLE}\x1b[2J"
ESCAPED = "evil\\x1b]0;OWNED-TITLE\\x07\\x1b[2J"


def test_metrics_prints_a_servers_label_values_escaped():
    with VLLMTestServer(model=MODEL) as s:
        for ran in (on_terminal(["metrics", "--url", s.metrics_url, "--once"]),
                    piped(["metrics", "--url", s.metrics_url, "--once"])):  # fmt: skip
            text = assert_no_outside_escapes(ran.out + ran.err)
            assert ran.status == 0, text
            assert ESCAPED in text
        ran = piped(["metrics", "--url", s.metrics_url, "--once", "--json"])
    record = json.loads(assert_no_outside_escapes(ran.out).splitlines()[-1])
    assert record["models"] == [MODEL]  # escaped as JSON, read back whole


def test_fleet_prints_prometheus_label_values_escaped(tmp_path):
    reason = prom_mod.missing_reason()
    if reason:
        pytest.fail(reason, pytrace=False)
    with VLLMTestServer(model=MODEL) as s:
        prometheus = PrometheusServer({"vllm": [address(s.base_url)]}).start(tmp_path / "prom")
        try:
            prometheus.wait_for_targets()
            args = ["fleet", "--prometheus", prometheus.url, "--once"]
            for ran in (on_terminal(args), piped(args), piped([*args, "--json"])):
                text = assert_no_outside_escapes(ran.out + ran.err)
                assert ran.status == 0, text
                assert ESCAPED in text or "\\u001b]0;OWNED-TITLE\\u0007" in text
        finally:
            prometheus.stop()


def test_kb_index_and_search_print_file_names_and_passages_escaped(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / f"growth{OSC_TITLE}.md").write_text(
        f"# Growth\n\nThe doubling time is two hours {OSC_TITLE} \x1b[2J in strain B.\n",
        encoding="utf-8",
    )
    ran = on_terminal(["kb", "index", str(folder)])
    assert ran.status == 0, ran.out
    assert_no_outside_escapes(ran.out)
    for ran in (on_terminal(["kb", "search", str(folder), "doubling"]),
                piped(["kb", "search", str(folder), "doubling"])):  # fmt: skip
        text = assert_no_outside_escapes(ran.out + ran.err)
        assert ran.status == 0, text
        assert "growth\\x1b]0;OWNED-TITLE\\x07.md" in text and "doubling time" in text
