"""The batch dialog on a qasync loop, offscreen, against the vLLM test server: progress,
pause and resume, the corrupt file in red with its message, cancel and continue, report."""

from __future__ import annotations

import asyncio

import pytest

from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.batch.store import BatchStore
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.ui.batch_view import BatchView
from tests.batch.conftest import MIXED_ITEMS
from tests.batch.test_batch import chat_requests
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until

pytestmark = pytest.mark.vllm


def _view(server, tmp_path, qtbot):
    profiles = ProfileStore()
    profiles.load()
    p = profiles.add(Profile(name="lab", api_base=server.api_base, max_tokens=16))
    view = BatchView(profiles, Services(ClientPool()), store=BatchStore(tmp_path / "b.sqlite3"))
    qtbot.addWidget(view)
    view.profile.setCurrentIndex(view.profile.findData(p.id))
    return view


def test_a_folder_runs_with_progress_pause_resume_and_the_failure_shown(
    qloop, run, qtbot, mixed_folder, tmp_path
):
    with VLLMTestServer(tokens_per_second=60, answer_tokens=8) as server:

        async def scenario():
            view = _view(server, tmp_path, qtbot)
            view.add_sources([mixed_folder])
            view.question.setText("Describe {item}.")
            view.concurrency.setValue(1)
            view.show()
            task = view.start()
            assert task is not None and not view.start_button.isEnabled()
            await wait_until(lambda: view.progress_bar.value() >= 2, 30)
            view.pause_button.click()
            assert view.pause_button.text() == "Resume"
            await wait_until(lambda: not view.batch.progress().running, 10)
            held = len(chat_requests(server))
            await asyncio.sleep(0.8)
            assert len(chat_requests(server)) == held and "paused" in view.progress_label.text()
            view.pause_button.click()
            await task
            assert view.progress_bar.value() == view.progress_bar.maximum() == MIXED_ITEMS
            assert "1 failed" in view.progress_label.text()
            assert view.table.rowCount() == MIXED_ITEMS
            rows = {view.table.item(r, 0).text(): r for r in range(view.table.rowCount())}
            bad = rows["broken.png"]
            assert view.table.item(bad, 1).text() == "failed"
            assert "not an image" in view.table.item(bad, 4).text()
            assert view.table.item(bad, 4).foreground().color().red() > 150
            assert view.retry_button.isEnabled() and view.export_button.isEnabled()
            # An item's answer reads in the window: the first one showed by itself, a
            # click shows another, a failed one says why.
            first = view.batch.results[view._key_of_row(0)]
            assert first.ok and first.answer.strip()
            assert first.answer.strip().splitlines()[-1].strip() in view.answer.toPlainText()
            done = next(
                r
                for r in range(view.table.rowCount())
                if r != bad and view.table.item(r, 1).text() == "done" and r != 0
            )
            view.table.selectRow(done)
            result = view.batch.results[view._key_of_row(done)]
            assert view.answer.toPlainText().startswith(result.label)
            assert result.answer.strip().splitlines()[-1].strip() in view.answer.toPlainText()
            view.table.selectRow(bad)
            assert "failed" in view.answer.toPlainText()
            assert "not an image" in view.answer.toPlainText()
            view.resize(760, 620)
            await asyncio.sleep(0.1)
            view.grab().save(str(tmp_path / "batch.png"))
            written = await view.export_report(tmp_path / "report.html")
            assert written is not None and "Report written" in view.progress_label.text()
            view.close()
            await view.pool.aclose()

        run(scenario(), timeout=120)
    assert "broken.png is not an image" in (tmp_path / "report.html").read_text()


def test_cancel_then_start_continues_without_asking_finished_items_again(
    qloop, run, qtbot, mixed_folder, tmp_path
):
    with VLLMTestServer(tokens_per_second=40, answer_tokens=10) as server:

        async def scenario():
            view = _view(server, tmp_path, qtbot)
            view.add_sources([mixed_folder])
            view.question.setText("Describe {item}.")
            task = view.start()
            await wait_until(lambda: view.progress_bar.value() >= 3, 30)
            view.cancel_button.click()
            await task
            assert "Cancelled" in view.progress_label.text()
            finished = set(view.batch.results)
            first = view.batch
            await view.start()
            assert view.batch is not first and view.batch.asked == MIXED_ITEMS - 1 - sum(
                1 for k in finished if first.results[k].ok
            )
            assert view.progress_bar.value() == MIXED_ITEMS
            kept, new = len(finished), MIXED_ITEMS - len(finished)
            said = f"({kept} kept, {new} new; asked {view.batch.asked})"
            assert said in view.progress_label.text()
            states = [view.table.item(r, 1).text() for r in range(view.table.rowCount())]
            assert states.count("kept") == sum(first.results[k].ok for k in finished)
            view.close()
            await view.pool.aclose()

        run(scenario(), timeout=120)
