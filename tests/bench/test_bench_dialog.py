"""The Benchmark endpoint dialog, offscreen on a qasync loop, against the vLLM test server."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import pytest

from kanoa_desktop.core.bench.speed import DEFAULT_TASKS
from kanoa_desktop.core.endpoint.client import ChatClient
from kanoa_desktop.ui.bench_dialog import BenchmarkDialog
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until

pytestmark = pytest.mark.timeout(90)

SHOT = Path(__file__).resolve().parents[2] / "build" / "screenshots" / "bench_dialog.png"


def test_dialog_runs_the_suite_live_and_exports_markdown(qtbot, run, tmp_path):
    with VLLMTestServer(multimodal=False, tokens_per_second=1500, answer_tokens=30) as server:

        async def scenario():
            client = ChatClient(server.api_base)
            dlg = BenchmarkDialog(client, server.model, runs=2)
            qtbot.addWidget(dlg)
            dlg.show()
            assert not dlg.isModal()
            finished = []
            dlg.finished.connect(finished.append)
            dlg.start()
            assert dlg.cancel_button.isEnabled() and not dlg.start_button.isEnabled()
            # Vision tasks are skipped at once (6 runs); two more runs complete Basic Chat.
            await wait_until(lambda: dlg.progress.value() >= 8, 20, "live progress")
            # The table fills while the suite still runs.
            assert dlg.running
            assert dlg.cell_text(3, "Mean (tok/s)") != "—"
            await wait_until(lambda: finished, 30, "suite finished")
            await client.aclose()
            return dlg, finished[0]

        dlg, result = run(scenario())
    assert dlg.progress.value() == dlg.progress.maximum() == len(DEFAULT_TASKS) * 2
    assert dlg.cell_text(0, "Notes") == "Skipped: text-only model"
    chat = result.tasks[3]
    rates = [r.tokens_per_s for r in chat.runs]
    assert dlg.cell_text(3, "Mean (tok/s)") == f"{statistics.fmean(rates):.1f}"
    assert dlg.cell_text(3, "StdDev") == f"{statistics.stdev(rates):.1f}"
    assert dlg.cell_text(len(DEFAULT_TASKS), "Test") == "Overall Average"
    assert dlg.export_button.isEnabled() and not dlg.cancel_button.isEnabled()
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    dlg.grab().save(str(SHOT))

    target = tmp_path / "out.md"
    assert dlg.save_markdown(str(target))
    assert target.read_text() == dlg.markdown()
    assert "| **Basic Chat** |" in target.read_text()
    # A folder that cannot be made (a file is in the way): a message in the dialog, the
    # table kept.
    (tmp_path / "file").write_text("x")
    assert not dlg.save_markdown(str(tmp_path / "file" / "out.md"))
    assert "Could not save" in dlg.state.text() and "could not be written" in dlg.state.text()
    assert dlg.cell_text(3, "Mean (tok/s)") != "—"


def test_export_opens_a_non_modal_file_dialog(qtbot, run):
    with VLLMTestServer() as server:

        async def scenario():
            client = ChatClient(server.api_base)
            dlg = BenchmarkDialog(client, server.model)
            qtbot.addWidget(dlg)
            dlg.show()
            dlg.export_markdown()  # returns at once: open(), not exec()
            await asyncio.sleep(0)
            shown = dlg._file_dialog is not None and dlg._file_dialog.isVisible()
            dlg._file_dialog.close()
            await client.aclose()
            return shown

        assert run(scenario())


def test_cancel_button_stops_the_run_and_says_so(qtbot, run):
    with VLLMTestServer(tokens_per_second=40, answer_tokens=500) as server:

        async def scenario():
            client = ChatClient(server.api_base)
            dlg = BenchmarkDialog(client, server.model, vision=True)
            qtbot.addWidget(dlg)
            dlg.show()
            finished = []
            dlg.finished.connect(finished.append)
            dlg.start()
            await wait_until(lambda: server.stats.running >= 1, 10, "request running")
            dlg.cancel_button.click()
            await wait_until(lambda: finished, 10, "cancelled")
            await wait_until(lambda: server.stats.aborted >= 1, 5, "server saw the abort")
            await client.aclose()
            return dlg, finished[0]

        dlg, result = run(scenario())
    assert result.cancelled
    assert dlg.state.text().startswith("Cancelled")
    assert dlg.start_button.isEnabled() and not dlg.cancel_button.isEnabled()
