"""The Score models window on a qasync loop, offscreen, against the vLLM test server: live
progress with the running accuracy and interval, Stop keeps what was scored, Score
continues, the table and the verdicts, export; charts are drawn off the GUI thread; the main
window opens it beside Compare."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.history.scores import ScoreRecords
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.score import question as Q
from kanoa_desktop.core.score.run import suite_source
from kanoa_desktop.ui.score_view import ScoreView
from tests.servers.score_oracle import ScoreOracle
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until

pytestmark = pytest.mark.vllm


def _cells(table) -> list[list[str]]:
    return [
        [table.item(r, c).text() if table.item(r, c) else "" for c in range(table.columnCount())]
        for r in range(table.rowCount())
    ]


def test_two_profiles_score_live_stop_keeps_what_was_scored_and_score_continues(
    qloop, run, qtbot, tmp_path, monkeypatch
):
    source = suite_source(12, 8)
    figures = {i.id: Q.prepare(i, 1024) for i in source.items}
    good = ScoreOracle(source.items, 0.9, seed=1, figures=figures)
    poor = ScoreOracle(source.items, 0.2, seed=2, figures=figures)
    gui = threading.get_ident()
    drawn_on = []
    real_prepare = Q.prepare

    def recording(item, long_side):
        drawn_on.append(threading.get_ident())
        return real_prepare(item, long_side)

    monkeypatch.setattr(Q, "prepare", recording)
    workers = ThreadPoolExecutor(2)

    async def run_cpu(fn, *args):
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(workers, fn, *args)

    history = HistoryStore(tmp_path / "h.sqlite3")
    with (
        VLLMTestServer(tokens_per_second=30, answer_for=good) as a,
        VLLMTestServer(tokens_per_second=30, answer_for=poor) as b,
    ):
        store = ProfileStore()
        store.load()
        big = store.add(Profile(name="big", api_base=a.api_base, temperature=0.0))
        small = store.add(Profile(name="small", api_base=b.api_base, temperature=0.0))

        async def scenario():
            pool = ClientPool()
            view = ScoreView(store, Services(pool, history=history, run_cpu=run_cpu))
            qtbot.addWidget(view)
            view.set_profiles([big, small])
            view.items.setValue(12)
            view.seed.setValue(8)
            view.concurrency.setValue(2)
            view.show()
            task = view.start()
            assert task is not None and not view.score_button.isEnabled()
            assert view.stop_button.isEnabled() and not view.items.isEnabled()
            await wait_until(lambda: view.run is not None and len(view.run.scores) >= 4, 60)
            await wait_until(lambda: "95 % CI" in view.progress_label.text(), 5)
            line = view.progress_label.text()
            assert line.startswith("big: ") and "\nsmall: " in line
            view.stop_button.click()
            ended = await task
            assert ended.state == "stopped" and view.score_button.isEnabled()
            kept = dict(view.run.scores)
            assert 4 <= len(kept) < 24
            assert "Stopped: what was scored is kept" in view.progress_label.text()
            assert view.export_button.isEnabled()

            # Speed the servers up; Score continues the same run, not asking twice.
            a.tokens_per_second = b.tokens_per_second = 3000
            asked_before = len(good.asked) + len(poor.asked)
            ended2 = await view.start()
            assert ended2.state == "done"
            assert "Continuing" in view.message.text()
            asked = len(good.asked) + len(poor.asked) - asked_before
            assert asked == 24 - len(kept)
            cells = _cells(view.table)
            assert [row[0] for row in cells] == ["big", "small"]
            assert [row[2] for row in cells] == ["12/12", "12/12"]
            assert cells[0][3] == str(good.right()) and cells[1][3] == str(poor.right())
            assert "Finished: every item scored. Kept in the history." in view.progress_label.text()
            assert view.progress_bar.value() == view.progress_bar.maximum() == 24
            assert "big" in view.verdicts.text() and "McNemar exact p" in view.verdicts.text()
            written = await view.export_to(tmp_path / "scores")
            assert written == tmp_path / "scores.md" and "## Items" in written.read_text()
            # The run is kept: listed under Earlier runs, shown again from the history.
            view.run_id = view.run.run_id
            assert view.earlier.count() == 2 and "done, 24 scored" in view.earlier.itemText(1)
            assert view.show_earlier(view.earlier.itemData(1))
            assert view.run is None and _cells(view.table) == cells
            assert "big reads these charts better" in view.verdicts.text()
            view.resize(1000, 520)
            view.grab().save(str(tmp_path / "score.png"))
            await pool.aclose()
            return view

        view = run(scenario(), timeout=240)
    workers.shutdown()
    assert drawn_on and gui not in drawn_on  # charts drawn and prepared off the GUI thread
    (listed,) = ScoreRecords(history).list_runs()
    assert listed.state == "done" and listed.scored == 24 and listed.id == view.run_id
    assert history.list_conversations() == []
    history.close()


def test_bad_choices_are_said_in_the_window_and_nothing_is_asked(qloop, run, qtbot, tmp_path):
    store = ProfileStore()
    store.load()
    (tmp_path / "key.csv").write_text("file,question,answer\nmissing.png,What?,1\n")

    async def scenario():
        view = ScoreView(store, Services(ClientPool()))
        qtbot.addWidget(view)
        view.use_key.setChecked(True)
        assert view.start() is None and "Choose the answer key" in view.message.text()
        view.key_path.setText(str(tmp_path / "key.csv"))
        ended = await view.start()
        assert ended is None and "row 2: missing.png was not found" in view.message.text()
        assert view.score_button.isEnabled() and not view.stop_button.isEnabled()
        for _ in range(5):
            view.add_profile()
        assert len(view.profile_boxes) == 4 and not view.add_button.isEnabled()
        return view

    run(scenario())


def test_score_models_opens_beside_compare_with_the_windows_services(make_window, run):
    with VLLMTestServer() as s:
        w = make_window(s.api_base, s.model)
        actions = w.tools_menu.actions()
        assert actions.index(w.score_action) == actions.index(w.compare_action) + 1
        w.score_action.trigger()  # Tools > Score models…
        view = w.score_view
        assert view.isVisible() and view.windowTitle() == "Score models"
        w.score_action.trigger()
        assert w.score_view is view  # one per window
        assert view.services is w.services and view.history is w.history
        assert view.chosen_profiles() == [w.store.active]
        w.close()
        assert not view.isVisible()  # closed with the main window
