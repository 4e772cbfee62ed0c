"""The knowledge-base panel and the sources list, offscreen, with real indexing."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import Qt

from kanoa_desktop.core.kb import index as index_mod
from kanoa_desktop.core.kb.retrieval import NO_RELEVANT_NOTICE, ground
from kanoa_desktop.ui.kb_panel import KnowledgeBasePanel, SourcesView
from tests.kb.corpus import write_every_kind


@pytest.fixture
def panel(qtbot):
    widget = KnowledgeBasePanel(watch=False)
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown()


def _report_rows(panel: KnowledgeBasePanel) -> dict[str, tuple[str, str]]:
    view = panel.report_view
    return {
        view.topLevelItem(i).text(0): (view.topLevelItem(i).text(1), view.topLevelItem(i).text(2))
        for i in range(view.topLevelItemCount())
    }


def test_attaching_a_folder_indexes_it_and_lists_skipped_files(qtbot, panel, tmp_path):
    root = tmp_path / "kb"
    write_every_kind(root)
    (root / "blob.txt").write_bytes(b"\x00" * 100)
    (root / "dangling.md").symlink_to(root / "missing.md")
    with qtbot.waitSignal(panel.indexingFinished, timeout=20000) as finished:
        panel.attach_folder(root)
        assert panel.is_indexing() and panel.progress_bar.isVisibleTo(panel)
    report = finished.args[0]
    assert not report.cancelled and report.indexed == report.total
    assert not panel.progress_bar.isVisibleTo(panel)
    rows = _report_rows(panel)
    assert rows["blob.txt"][0] == "skipped" and "binary" in rows["blob.txt"][1]
    assert "broken symlink" in rows["dangling.md"][1]
    assert report.summary() == panel.status_label.text()
    assert ground(panel.knowledge_base, "kelpforest", 500).sources[0].file == "report.pdf"


def test_cancel_stops_after_the_current_file_and_keeps_the_work(
    qtbot, panel, tmp_path, monkeypatch
):
    root = tmp_path / "kb"
    root.mkdir()
    for i in range(20):
        (root / f"f{i:02d}.md").write_text(f"file number {i}\n")
    gate = threading.Event()
    real_read = index_mod.read_file

    def slow_read(path):
        gate.wait(10)  # hold the worker inside a file until the test has pressed Cancel
        return real_read(path)

    monkeypatch.setattr(index_mod, "read_file", slow_read)
    with qtbot.waitSignal(panel.indexingFinished, timeout=20000) as finished:
        panel.attach_folder(root)
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
        gate.set()
    report = finished.args[0]
    assert report.cancelled and report.indexed < 20
    assert panel.knowledge_base.stats()["files"] == report.indexed
    with qtbot.waitSignal(panel.indexingFinished, timeout=20000) as resumed:
        qtbot.mouseClick(panel.reindex_button, Qt.MouseButton.LeftButton)
    assert resumed.args[0].indexed == 20 - report.indexed


def test_detaching_the_last_folder_leaves_no_knowledge_base(qtbot, panel, tmp_path):
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "a.md").write_text("alpha\n")
    with qtbot.waitSignal(panel.indexingFinished, timeout=20000):
        panel.attach_folder(tmp_path / "kb")
    with qtbot.waitSignal(panel.foldersChanged) as changed:
        panel.detach_folder(tmp_path / "kb")
    assert changed.args[0] == [] and panel.knowledge_base is None
    assert not panel.reindex_button.isEnabled()


def test_attaching_a_file_instead_of_a_folder_says_so(panel, tmp_path):
    (tmp_path / "file.md").write_text("x")
    panel.attach_folder(tmp_path / "file.md")
    assert "Not a folder" in panel.status_label.text() and panel.folders == []


def test_watcher_reindexes_a_file_added_on_disk(qtbot, tmp_path):
    root = tmp_path / "kb"
    root.mkdir()
    (root / "a.md").write_text("alpha\n")
    panel = KnowledgeBasePanel(watch=True, watch_interval=0.05)
    qtbot.addWidget(panel)
    try:
        with qtbot.waitSignal(panel.indexingFinished, timeout=20000):
            panel.attach_folder(root)
        with qtbot.waitSignal(panel.indexChanged, timeout=20000):
            (root / "b.md").write_text("bravo about the polynya\n")
        assert ground(panel.knowledge_base, "polynya", 400, allow_whole=False).passages
    finally:
        panel.shutdown()


@pytest.fixture
def grounding(tmp_path, make_kb):
    write_every_kind(tmp_path / "kb")
    kb = make_kb(tmp_path / "kb")
    kb.index()
    return ground(kb, "kelpforest abyssopelagic zephyrite", budget=600, allow_whole=False)


def test_sources_view_shows_the_clicked_passage_with_its_path_and_opens_it(qtbot, grounding):
    view = SourcesView()
    qtbot.addWidget(view)
    asked = []
    view.opener = lambda url: asked.append(url.toLocalFile()) or True
    view.set_grounding(grounding)
    view.show()
    labels = [view.list.item(i).text() for i in range(view.list.count())]
    assert labels == [f"[{p.number}]  {p.source.label()}" for p in grounding.passages]
    assert "[1]  report.pdf, p. 1" in labels or "[1]  report.pdf, p. 2" in labels
    item = view.list.item(0)
    rect = view.list.visualItemRect(item)
    with qtbot.waitSignal(view.passageShown) as shown:
        qtbot.mouseClick(view.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    first = grounding.passages[0]
    assert shown.args[0] == first.number
    assert view.passage_box.isVisible()
    assert view.passage_path.text() == str(first.source.path)
    assert view.passage_text.toPlainText() == first.text
    with qtbot.waitSignal(view.opened) as opened:
        view.open_folder_button.click()
    assert opened.args == [str(first.source.path.parent), True]
    view.open_file_button.click()
    assert asked == [str(first.source.path.parent), str(first.source.path)]
    assert not view.passage_note.isVisible()


def test_no_file_opener_is_said_in_the_app_with_the_path_to_copy(qtbot, grounding):
    from PySide6.QtGui import QGuiApplication

    view = SourcesView()
    qtbot.addWidget(view)
    view.opener = lambda url: False  # what QDesktopServices answers with no launcher
    view.set_grounding(grounding)
    view.show()
    view._show_passage(view.list.item(0))
    with qtbot.waitSignal(view.opened) as opened:
        view.open_file_button.click()
    assert opened.args[1] is False
    assert view.passage_note.isVisible() and "No application" in view.passage_note.text()
    assert str(grounding.passages[0].source.path) in view.passage_note.text()
    view.copy_path_button.click()
    assert QGuiApplication.clipboard().text() == str(grounding.passages[0].source.path)


def test_sources_view_shows_only_cited_passages_for_an_answer(qtbot, grounding):
    view = SourcesView()
    qtbot.addWidget(view)
    view.set_grounding(grounding, answer="The survey found kelp [2].")
    assert view.list.count() == 1 and view.list.item(0).text().startswith("[2]")


def test_sources_view_says_when_no_passage_was_used(qtbot, tmp_path, make_kb):
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "a.md").write_text("alpha\n")
    kb = make_kb(tmp_path / "kb")
    kb.index()
    view = SourcesView()
    qtbot.addWidget(view)
    view.set_grounding(ground(kb, "nothing matches this", 500, allow_whole=False))
    view.show()
    assert view._notice.isVisible() and view._notice.text() == NO_RELEVANT_NOTICE
    assert not view.list.isVisible()
