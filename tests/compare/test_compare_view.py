"""The comparison window on a qasync loop, offscreen, against the vLLM test server: panes
stream side by side, one is stopped from its own button, the table fills, it exports."""

from __future__ import annotations

import asyncio

import pytest

from kanoa_desktop.core.ask.outbox import Outbox
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.inputs.figures import prepare_figure
from kanoa_desktop.ui.compare_view import CompareView
from tests.batch.conftest import png_bytes
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until

pytestmark = pytest.mark.vllm


@pytest.fixture
def servers():
    fast = VLLMTestServer(tokens_per_second=300, answer_tokens=40).start()
    slow = VLLMTestServer(model="slow-model", tokens_per_second=25, answer_tokens=4000).start()
    yield fast, slow
    fast.stop()
    slow.stop()


def _store(*servers) -> tuple[ProfileStore, list[Profile]]:
    store = ProfileStore()
    store.load()
    made = [
        store.add(Profile(name=f"server {i + 1}", api_base=s.api_base, max_tokens=4000))
        for i, s in enumerate(servers)
    ]
    return store, made


def test_two_panes_stream_one_is_stopped_from_its_button_the_table_fills_and_it_exports(
    qloop, run, qtbot, servers, tmp_path
):
    fast, slow = servers
    store, profiles = _store(fast, slow)
    history = HistoryStore(tmp_path / "h.sqlite3")
    figure = prepare_figure(png_bytes(), name="growth.png")

    async def scenario():
        pool = ClientPool()
        view = CompareView(
            store, Services(pool, history=history),
            inputs=lambda: Outbox([figure], context="Growth of E. coli"),
        )  # fmt: skip
        qtbot.addWidget(view)
        view.set_profiles(profiles)
        view.show()
        view.question.setText("What does the curve show?")
        task = view.ask()
        assert task is not None and not view.ask_button.isEnabled()
        a, b = view.panes
        await wait_until(lambda: a.state == "done" and "streaming" in b.state, 20)
        await wait_until(lambda: len(b.answer.markdown) > len(a.answer.markdown) // 4, 20)
        assert b.stop.isEnabled() and not a.stop.isEnabled()
        b.stop.click()
        await task
        await wait_until(lambda: view.table.isVisible(), 5)
        assert view.ask_button.isEnabled() and not view.stop_button.isEnabled()
        assert [a.state, b.state] == ["done", "stopped"]
        assert "Stopped by you." in b.answer.markdown
        assert "What does the curve show?" in a.answer.markdown
        cells = [[view.table.item(r, c).text() for c in range(view.table.columnCount())]
                 for r in range(view.table.rowCount())]  # fmt: skip
        assert [row[-1] for row in cells] == ["Finished", "Stopped by you"]
        assert cells[0][0] == f"server 1 ({fast.model})" and "slow-model" in cells[1][0]
        assert "tok/s" in a.status.text() and "TTFT" in b.status.text()
        view.resize(1100, 700)
        await asyncio.sleep(0.2)
        view.grab().save(str(tmp_path / "compare.png"))
        written = await view.export_to(tmp_path / "cmp.html")
        assert written is not None and "Exported to" in view.message.text()
        # A follow-up goes to both panes.
        view.question.setText("And the lag phase?")
        b_before = b.answer.markdown
        fast.answer_tokens = slow.answer_tokens = 5
        await view.ask()
        assert (
            "And the lag phase?" in a.answer.markdown and "And the lag phase?" in b.answer.markdown
        )
        assert b.answer.markdown.startswith(b_before[:40])
        await view.shutdown()
        view.close()
        await pool.aclose()

    run(scenario(), timeout=90)
    html = (tmp_path / "cmp.html").read_text()
    assert html.count('<div class="pane">') == 2 and "growth.png" in html
    (entry,) = history.list_conversations()
    assert entry.comparison_id is not None and entry.n_turns == 2
    history.close()


def test_nothing_to_compare_says_what_to_add(qloop, run, qtbot, servers):
    store, profiles = _store(*servers)

    async def scenario():
        pool = ClientPool()
        view = CompareView(store, Services(pool))
        qtbot.addWidget(view)
        view.set_profiles(profiles)
        assert view.ask() is None
        assert "Nothing to compare" in view.message.text()
        # Each pane's model field offers what its server lists (models of one server).
        await wait_until(lambda: all(p.model.completer() for p in view.panes), 10)
        offered = [p.model.completer().model().stringList() for p in view.panes]
        assert offered == [[servers[0].model], ["slow-model"]]
        # Panes: at least 2, at most 4.
        view.remove_pane()
        assert len(view.panes) == 2
        for _ in range(4):
            view.add_pane()
        assert len(view.panes) == 4 and not view.add_pane_button.isEnabled()
        view.close()
        await pool.aclose()

    run(scenario())


def test_a_comparison_reopened_from_history_shows_its_answers_and_takes_follow_ups(
    qloop, run, qtbot, servers, tmp_path
):
    from kanoa_desktop.core.ask.compare import Comparison

    fast, slow = servers
    slow.answer_tokens = 6
    slow.tokens_per_second = 400
    store, profiles = _store(fast, slow)
    history = HistoryStore(tmp_path / "h.sqlite3")

    async def scenario():
        pool = ClientPool()
        services = Services(pool, history=history)
        first = Comparison(profiles, services)
        ended = await first.ask("What is plotted?")
        view = CompareView(store, services)
        qtbot.addWidget(view)
        view.set_profiles(profiles[::-1])  # the choosers showed other profiles before
        view.show_stored(history.load_comparison(first.comparison_id))
        # Each pane shows the profile it was asked with, in its chooser, title and row.
        assert [p.profile.currentText() for p in view.panes] == ["server 1", "server 2"]
        assert [p.title.text().split(" — ")[0] for p in view.panes] == ["server 1", "server 2"]
        assert [view.table.item(r, 0).text().split(" (")[0] for r in range(2)] == [
            "server 1", "server 2"]  # fmt: skip
        for pane, end in zip(view.panes, ended, strict=True):
            assert end.answer.strip() in pane.answer.markdown
            assert "What is plotted?" in pane.answer.toPlainText()
        assert not view.table.isHidden() and view.table.rowCount() == 2
        assert view.export_button.isEnabled()
        view.question.setText("And then?")
        await view.ask()
        view.close()
        await pool.aclose()
        return first.comparison_id

    cid = run(scenario(), timeout=60)
    (entry,) = history.list_conversations()
    assert entry.comparison_id == cid
    stored = history.load_comparison(cid)
    assert [[t.question for t in c.turns] for c in stored.panes] == [
        ["What is plotted?", "And then?"]
    ] * 2
    history.close()
