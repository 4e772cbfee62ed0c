"""The main window's Compare models… and Batch… open windows wired to the window's own
pool, history and inputs; the comparison is one entry of the window's history list."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.config.profiles import Profile
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until

pytestmark = pytest.mark.vllm


def test_compare_from_the_window_uses_its_inputs_and_lands_in_its_history(make_window, run, qtbot):
    with VLLMTestServer(tokens_per_second=400, answer_tokens=8, extra_models=("other",)) as s:
        w = make_window(s.api_base, s.model, max_tokens=16)
        w.store.add(Profile(name="other model", api_base=s.api_base, model="other", max_tokens=16))
        w.inputs.context.setPlainText("Mauna Loa CO2 record")

        async def scenario():
            assert w.compare_action in w.tools_menu.actions()
            w.compare_action.trigger()  # Tools > Compare models…
            view = w.compare_view
            assert view.isVisible()
            w.compare_action.trigger()
            assert w.compare_view is view  # one per window
            assert view.services is w.services and view.history is w.history
            view.set_profiles([w.store.active, w.store.get("other model")])
            view.question.setText("What is the trend?")
            await view.ask()
            await wait_until(lambda: view.table.isVisible(), 10)
            return view

        view = run(scenario())
        bodies = [r.body for r in s.received if r.path.endswith("/chat/completions")]
    assert sorted(b["model"] for b in bodies) == sorted([s.model, "other"])
    assert all("Mauna Loa CO2 record" in str(b["messages"][-1]["content"]) for b in bodies)
    (entry,) = w.history.list_conversations()
    assert entry.comparison_id == view.comparison.comparison_id
    # The window's history list shows the comparison once (refreshed when it ended).
    titles = [w.history_panel.list.topLevelItem(i).text(0)
              for i in range(w.history_panel.list.topLevelItemCount())]  # fmt: skip
    assert titles == [entry.title] and titles[0].startswith("Compare ")
    # Reopening the entry from the history reopens the whole comparison.
    view.new_comparison()
    w.reopen_conversation(entry.id)
    assert view.comparison.comparison_id == entry.comparison_id
    assert all("What is the trend?" in p.answer.markdown for p in view.panes)
    w.close()
    assert not view.isVisible()  # closed with the main window


def test_batch_from_the_window_offers_its_profiles_and_closes_with_it(make_window, run):
    with VLLMTestServer() as s:
        w = make_window(s.api_base, s.model)
        assert w.batch_action in w.tools_menu.actions()
        w.batch_action.trigger()  # Tools > Batch…
        dialog = w.batch_view
        w.batch_action.trigger()
        assert w.batch_view is dialog
        assert dialog.isVisible() and not dialog.isModal()
        assert dialog.services is w.services
        names = [dialog.profile.itemText(i) for i in range(dialog.profile.count())]
        assert w.store.active.name in names
        w.close()
        assert not dialog.isVisible()
