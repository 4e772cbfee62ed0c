"""The history panel and usage view, offscreen: list, search, filter, rename, delete with
undo, delete all through an inline confirmation, export through a non-modal dialog."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QLineEdit

from kanoa_desktop.core.endpoint.chat import user_message
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.ui.history_panel import HistoryPanel
from kanoa_desktop.ui.usage_view import UsageView

from .conftest import figure, record

# screenshots-tmp/ is git-ignored; look at the images after a run.
SHOTS = Path(
    os.environ.get("KANOA_SCREENSHOTS", Path(__file__).parents[2] / "screenshots-tmp" / "history")
)


@pytest.fixture
def filled(store):
    record(store, "Growth curves of three strains", "Strain B plateaus first.", model="gemma-3-4b")
    record(
        store,
        "What does this western blot show?",
        "A band at 50 kDa.",
        figures=[figure()],
        model="qwen2.5-vl-7b",
    )
    rec = store.begin_turn(None, user_message=user_message("Interrupted question"), model="smollm2")
    rec.append("partial")
    rec.flush()
    store.close()
    reopened = HistoryStore()  # the unfinished turn becomes interrupted
    yield reopened
    reopened.close()


@pytest.fixture
def panel(qtbot, filled):
    w = HistoryPanel(filled)
    qtbot.addWidget(w)
    w.resize(520, 420)
    w.show()
    yield w
    w.close()


def titles(panel) -> list[str]:
    return [panel.list.topLevelItem(i).text(0) for i in range(panel.list.topLevelItemCount())]


def test_lists_newest_first_with_the_interrupted_one_marked(panel):
    assert titles(panel) == [
        "Interrupted question",
        "What does this western blot show?",
        "Growth curves of three strains",
    ]
    first = panel.list.topLevelItem(0)
    assert not first.icon(0).isNull() and "interrupted" in first.toolTip(0)
    assert panel.list.topLevelItem(1).icon(0).isNull()
    assert panel.notice.isVisible() and "1 answer was interrupted" in panel.notice.text()
    assert panel.findChild(QLineEdit, "historySearch") is panel.search


def test_search_box_filters_by_answer_text_after_typing_pauses(qtbot, panel):
    qtbot.keyClicks(panel.search, "kDa")
    qtbot.waitUntil(lambda: titles(panel) == ["What does this western blot show?"], timeout=3000)
    panel.search.clear()
    qtbot.waitUntil(lambda: len(titles(panel)) == 3, timeout=3000)
    panel.search.setText("no such words anywhere")
    panel.refresh()
    assert titles(panel) == [] and "No conversation matches" in panel.empty_label.text()


def test_model_filter_lists_models_and_filters(panel):
    models = [panel.model_filter.itemText(i) for i in range(panel.model_filter.count())]
    assert models == ["All models", "gemma-3-4b", "qwen2.5-vl-7b", "smollm2"]
    panel.model_filter.setCurrentIndex(1)
    assert titles(panel) == ["Growth curves of three strains"]
    panel.refresh()  # the filter survives a refresh
    assert panel.model == "gemma-3-4b" and titles(panel) == ["Growth curves of three strains"]


def test_double_click_and_reopen_emit_the_conversation_id(qtbot, panel, filled):
    wanted = filled.list_conversations()[1].id
    panel.select(wanted)
    with qtbot.waitSignal(panel.reopenRequested) as sig:
        qtbot.mouseClick(panel.reopen_button, Qt.MouseButton.LeftButton)
    assert sig.args == [wanted]


def test_inline_rename_stores_the_new_title(qtbot, panel, filled):
    cid = filled.list_conversations()[2].id
    panel.select(cid)
    panel.rename_current()
    editor = panel.list.findChild(QLineEdit)
    assert editor is not None
    editor.selectAll()
    qtbot.keyClicks(editor, "Strain growth, March")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: filled.load_conversation(cid).title == "Strain growth, March")
    assert "Strain growth, March" in titles(panel)


def test_delete_shows_undo_and_undo_brings_it_back(qtbot, panel, filled):
    cid = filled.list_conversations()[0].id
    panel.select(cid)
    qtbot.mouseClick(panel.delete_button, Qt.MouseButton.LeftButton)
    assert panel.undo_bar.isVisible() and "Interrupted question" not in titles(panel)
    qtbot.mouseClick(panel.undo_button, Qt.MouseButton.LeftButton)
    assert not panel.undo_bar.isVisible() and titles(panel)[0] == "Interrupted question"
    assert filled.load_conversation(cid) is not None


def test_a_dismissed_delete_is_purged(qtbot, panel, filled):
    cid = filled.list_conversations()[0].id
    panel.select(cid)
    panel.delete_current()
    panel.purge()
    assert filled.undo_delete(cid) == 0 and filled.load_conversation(cid) is None


def test_delete_all_asks_inline_then_can_be_undone(qtbot, panel, filled):
    qtbot.mouseClick(panel.delete_all_button, Qt.MouseButton.LeftButton)
    assert panel.confirm_bar.isVisible() and titles(panel) != []
    assert not [
        w for w in QApplication.topLevelWidgets() if isinstance(w, QDialog) and w.isVisible()
    ]
    qtbot.mouseClick(panel.confirm_button, Qt.MouseButton.LeftButton)
    assert titles(panel) == [] and panel.undo_bar.isVisible()
    assert "3 conversations" in panel.undo_label.text()
    qtbot.mouseClick(panel.undo_button, Qt.MouseButton.LeftButton)
    assert len(titles(panel)) == 3


def test_export_opens_a_non_modal_dialog_and_writes_the_file(qtbot, panel, filled, tmp_path):
    cid = filled.list_conversations()[1].id
    panel.select(cid)
    panel.export_actions["html"].trigger()
    dlg = panel.export_dialog
    # open() returned at once (this line runs): no nested event loop.
    assert isinstance(dlg, QFileDialog) and dlg.isVisible()
    target = tmp_path / "blot.html"
    with qtbot.waitSignal(panel.exportFinished, timeout=10000) as done:
        dlg.fileSelected.emit(str(target))  # what choosing a file does
        dlg.close()
    assert done.args == [str(target)] and "A band at 50 kDa." in target.read_text()
    assert "Exported to" in panel.status.text()


def test_a_failed_export_is_a_message(qtbot, panel, filled, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with qtbot.waitSignal(panel.exportFailed, timeout=10000) as failed:
        panel.export_to(filled.list_conversations()[0].id, blocker / "x.pdf", "pdf")
    assert "could not be written" in failed.args[0] and panel.status.text() == failed.args[0]


def test_usage_view_shows_session_and_all_time_per_model_and_day(qtbot, filled):
    from kanoa_desktop.core.endpoint.events import Usage
    from kanoa_desktop.core.endpoint.stats import StreamStats

    rec = filled.begin_turn(None, user_message=user_message("q"), model="smollm2")
    stats = StreamStats()
    stats.feed(Usage(1.0, 1200, 300))
    rec.finish("done", "stop", stats=stats)
    view = UsageView(filled)
    qtbot.addWidget(view)
    session = view.tree.topLevelItem(0)
    assert session.text(0) == "This session" and session.text(2) == "1,200"
    by_model = session.child(0)
    assert by_model.text(0) == "By model" and by_model.child(0).text(0) == "smollm2"
    all_time = view.tree.topLevelItem(1)
    assert all_time.text(0) == "All time" and all_time.text(1) == "4"
    by_model = all_time.child(0)
    assert [by_model.child(i).text(0) for i in range(by_model.childCount())] == [
        "gemma-3-4b",
        "qwen2.5-vl-7b",
        "smollm2",
    ]
    assert by_model.child(2).text(1) == "2"  # the interrupted turn and the new one


def test_screenshot_of_the_panel_and_usage_view(qtbot, panel, filled):
    SHOTS.mkdir(parents=True, exist_ok=True)
    panel.select(filled.list_conversations()[1].id)
    panel.delete_current()
    qtbot.wait(50)
    assert panel.grab().save(str(SHOTS / "history_panel.png"))
    panel.undo()
    view = UsageView(filled)
    qtbot.addWidget(view)
    view.resize(520, 260)
    view.show()
    qtbot.wait(50)
    assert view.grab().save(str(SHOTS / "usage_view.png"))
