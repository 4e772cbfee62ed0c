"""The Benchmark endpoint dialog, offscreen on a qasync loop, against the vLLM test server."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

import pytest

from kanoa_desktop.core.bench.speed import DEFAULT_TASKS
from kanoa_desktop.core.endpoint.client import ChatClient
from kanoa_desktop.ui.bench_dialog import BenchmarkDialog
from kanoa_desktop.ui.save_dialog import documents_folder
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
    # Comparable later: the date, the server's address, kind and version, the app's version.
    from kanoa_desktop import __version__

    provenance = target.read_text().strip().splitlines()[-1]
    assert time.strftime("%Y-%m-%d") in provenance and server.api_base in provenance
    assert "vLLM 0.33.0" in provenance and f"kanoa desktop {__version__}" in provenance
    # A folder that cannot be made (a file is in the way): a message in the dialog, the
    # table kept.
    (tmp_path / "file").write_text("x")
    assert not dlg.save_markdown(str(tmp_path / "file" / "out.md"))
    assert "Could not save" in dlg.state.text() and "could not be written" in dlg.state.text()
    assert dlg.cell_text(3, "Mean (tok/s)") != "—"


def test_export_opens_a_non_modal_file_dialog_in_documents_then_the_last_folder(
    qtbot, run, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # the "program's folder" the dialog must not open in
    chosen = tmp_path / "results" / "bench.md"

    with VLLMTestServer() as server:

        async def scenario():
            client = ChatClient(server.api_base)
            dlg = BenchmarkDialog(client, server.model)
            qtbot.addWidget(dlg)
            dlg.show()
            dlg.export_markdown()  # returns at once: open(), not exec()
            await asyncio.sleep(0)
            first = dlg._file_dialog
            shown = first is not None and first.isVisible()
            opened_in = first.directory().absolutePath()
            chosen.parent.mkdir()
            first.fileSelected.emit(str(chosen))  # the user saves into another folder
            first.close()
            dlg.export_markdown()
            await asyncio.sleep(0)
            again_in = dlg._file_dialog.directory().absolutePath()
            dlg._file_dialog.close()
            await client.aclose()
            return shown, opened_in, again_in

        shown, opened_in, again_in = run(scenario())
    assert shown
    # Never the program's folder: the user's documents first, then where they last saved.
    assert opened_in == str(Path(documents_folder()).resolve()) != os.getcwd()
    assert again_in == str(chosen.parent)


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
