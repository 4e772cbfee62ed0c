"""Server words shown in labels stay text: "<img src=...>" in an error or a model name is
never rendered as rich text (which would read a local file or decode a data: image)."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt

from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.ui.banner import ErrorBanner
from kanoa_desktop.ui.status_bar import StreamStatus

HOSTILE = '<img src="file:///etc/passwd"><b>bold</b> \x1b[31m'


def test_the_error_banner_shows_a_servers_markup_as_text(qtbot):
    banner = ErrorBanner()
    qtbot.addWidget(banner)
    err = E.error_from_status(500, json.dumps({"error": {"message": HOSTILE}}).encode())
    banner.show_error(err)
    for label in (banner.title, banner.message, banner.hint):
        assert label.textFormat() == Qt.TextFormat.PlainText
    assert '<img src="file:///etc/passwd">' in banner.message.text()


def test_the_status_bar_shows_a_model_name_as_text(qtbot):
    status = StreamStatus()
    qtbot.addWidget(status)
    status.set_model(HOSTILE)
    assert status.model.textFormat() == Qt.TextFormat.PlainText
    # A long name is elided in the middle (the bar never widens the window); the whole
    # name is in the tooltip, and what shows is the name's own characters, as text.
    shown = status.model.text()
    head, _, tail = shown.partition("…")
    assert HOSTILE.startswith(head) and HOSTILE.endswith(tail) and head
    import html

    assert html.escape(HOSTILE) in status.model.toolTip()  # escaped: never rendered
    assert "<img" not in status.model.toolTip()
    status.set_model("short-model")
    assert status.model.text() == "short-model"


def test_the_metrics_table_escapes_names_a_server_chose():
    from kanoa_desktop.cli.metrics import format_table
    from kanoa_desktop.core.monitor.metrics import ServerKind, ServerMetrics

    snap = ServerMetrics(
        timestamp=0.0,
        kind=ServerKind.VLLM,
        models=("evil\x1b]0;owned\x07",),
        finished_reasons={"stop\x1b[2J": 3},
        warnings=("line\nbreak",),
        kv_cache_usage=float("inf"),
    )
    table = format_table(snap)
    assert "\x1b" not in table and "\x07" not in table and "inf" not in table
    assert "evil\\x1b]0;owned\\x07" in table and "line\\nbreak" in table


def test_the_cli_escapes_model_text_on_a_terminal_and_in_a_pipe(capsys):
    from kanoa_desktop.cli.output import echo

    # capsys's streams are no terminal: a pipe or a file must not carry escapes either.
    echo("ok\n\tnext \x1b]52;c;aGk=\x07 \x1b[2J")
    assert capsys.readouterr().out == "ok\n\tnext \\x1b]52;c;aGk=\\x07 \\x1b[2J\n"


def test_tooltips_with_a_server_chosen_name_show_it_literally(qtbot, tmp_path):
    import html

    from PySide6.QtGui import QTextDocument

    from kanoa_desktop.core.history.store import HistoryStore
    from kanoa_desktop.core.safety import plain_tooltip
    from kanoa_desktop.ui.history_panel import HistoryPanel
    from kanoa_desktop.ui.usage_view import UsageView

    tip = plain_tooltip(HOSTILE + "\nsecond line")
    doc = QTextDocument()
    doc.setHtml(tip)  # how Qt renders a tooltip it takes for rich text
    assert doc.toPlainText() == HOSTILE + "\nsecond line"  # the characters, nothing loaded
    store = HistoryStore(tmp_path / "h.sqlite3")
    try:
        rec = store.begin_turn(
            None, user_message={"role": "user", "content": "q"}, question=HOSTILE, model=HOSTILE
        )
        rec.finish("done", "stop", answer="a")
        for view in (HistoryPanel(store), UsageView(store)):
            qtbot.addWidget(view)
            view.refresh()
            from PySide6.QtWidgets import QTreeWidget

            items = []

            def walk(item, items=items):
                items.append(item)
                for j in range(item.childCount()):
                    walk(item.child(j))

            for tree in view.findChildren(QTreeWidget):
                for i in range(tree.topLevelItemCount()):
                    walk(tree.topLevelItem(i))
            tips = [it.toolTip(0) for it in items if it.toolTip(0)]
            assert tips and all("<img" not in t for t in tips), tips
            assert any(html.escape(HOSTILE) in t for t in tips), tips
    finally:
        store.close()
