"""The endpoint benchmark's accuracy pass: 16 chart-suite items after the speed suite, from
the command line and the dialog, against the vLLM test server (its answers from the score
oracle: a reader whose accuracy is known)."""

from __future__ import annotations

import argparse

import pytest

from kanoa_desktop.cli import bench_endpoint
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.bench.accuracy import ACCURACY_ITEMS, ACCURACY_SEED, AccuracyPass
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.client import ChatClient
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.history.scores import ScoreRecords
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.score.run import suite_source
from kanoa_desktop.ui.bench_dialog import BenchmarkDialog
from tests.servers.score_oracle import ScoreOracle
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(180)]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_endpoint.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bench-endpoint", *argv])


def test_the_cli_prints_the_accuracy_beside_the_speed_table_and_keeps_it(tmp_path, capsys):
    oracle = ScoreOracle(suite_source(ACCURACY_ITEMS, ACCURACY_SEED).items, 0.75, seed=9)
    out_md = tmp_path / "bench.md"
    with VLLMTestServer(tokens_per_second=3000, answer_tokens=10, answer_for=oracle) as server:
        code = bench_endpoint.run(
            _args("--api-base", server.api_base, "--runs", "1", "--markdown", str(out_md))
        )
    out = capsys.readouterr().out
    # The speed suite's own requests are not the oracle's; every suite item was.
    assert code == 0 and sorted(oracle.asked) == sorted(i.id for i in oracle.items)
    right = oracle.right()
    line = (
        f"Chart reading (charts-v1, seed 0, 16 items): {right}/16 right, {right / 16 * 100:.1f} %"
    )
    assert line in out and "[chart reading 16/16]" in out
    assert line in out_md.read_text() and "| **Basic Chat** |" in out_md.read_text()
    store = HistoryStore(recover=False)
    try:
        (listed,) = ScoreRecords(store).list_runs()
        assert (listed.state, listed.scored) == ("done", 16)
    finally:
        store.close()


def test_a_text_only_model_skips_the_pass_and_zero_items_skip_it(capsys):
    with VLLMTestServer(multimodal=False, tokens_per_second=3000, answer_tokens=10) as server:
        assert bench_endpoint.run(_args("--api-base", server.api_base, "--runs", "1")) == 0
        out = capsys.readouterr().out
        assert "Chart reading (charts-v1, seed 0, 16 items): skipped: Skipped: text-only" in out
        assert bench_endpoint.run(_args("--api-base", server.api_base, "--runs", "1",
                                        "--accuracy-items", "0")) == 0  # fmt: skip
        assert "Chart reading" not in capsys.readouterr().out
    assert bench_endpoint.run(_args("--accuracy-items", "-1")) == 2
    assert "--accuracy-items takes 0 to 2,000" in capsys.readouterr().err


def test_the_dialog_runs_the_pass_after_the_speed_suite_and_exports_it(qtbot, run, tmp_path):
    oracle = ScoreOracle(suite_source(ACCURACY_ITEMS, ACCURACY_SEED).items, 1.0, seed=0)
    with VLLMTestServer(tokens_per_second=3000, answer_tokens=10, answer_for=oracle) as server:
        profile = Profile(name="lab", api_base=server.api_base, temperature=0.0)

        async def scenario():
            pool = ClientPool()
            client = ChatClient(server.api_base)
            dlg = BenchmarkDialog(
                client,
                server.model,
                runs=1,
                accuracy=lambda listener: AccuracyPass(profile, Services(pool), listener=listener),
            )
            qtbot.addWidget(dlg)
            dlg.show()
            finished = []
            dlg.finished.connect(finished.append)
            dlg.start()
            assert dlg.progress.maximum() == 8 + ACCURACY_ITEMS
            await wait_until(lambda: finished, 150, "suite and pass finished")
            await client.aclose()
            await pool.aclose()
            return dlg

        dlg = run(scenario(), timeout=170)
    assert dlg.progress.value() == dlg.progress.maximum()
    assert dlg.accuracy_label.text().startswith(
        "Chart reading (charts-v1, seed 0, 16 items): 16/16 right, 100.0 %"
    )
    assert dlg.accuracy_label.text() in dlg.markdown()
