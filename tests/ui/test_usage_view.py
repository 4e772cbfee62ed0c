"""The Usage dock: the first column (periods and model names) is never cut in a narrow dock."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView

from kanoa_desktop.core.endpoint.chat import user_message
from kanoa_desktop.core.endpoint.events import Usage
from kanoa_desktop.core.endpoint.stats import StreamStats
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.safety import plain_tooltip
from kanoa_desktop.ui.usage_view import UsageView

LONG_MODEL = "meta-llama/Llama-3.2-11B-Vision-Instruct"


def _turn(store: HistoryStore, model: str, p: int, o: int) -> None:
    rec = store.begin_turn(None, user_message=user_message("q"), model=model)
    stats = StreamStats(price_in_per_million=0.1, price_out_per_million=0.1)
    stats.feed(Usage(1.0, p, o))
    rec.finish("done", "stop", stats=stats)


def test_model_names_are_readable_in_a_narrow_dock(qtbot):
    store = HistoryStore()
    try:
        _turn(store, LONG_MODEL, 123_456, 7_890)
        _turn(store, "smollm2", 1_000, 200)
        view = UsageView(store)
        qtbot.addWidget(view)
        view.resize(360, 400)
        view.show()
        qtbot.waitExposed(view)
        tree = view.tree
        shown = "Llama-3.2-11B-Vision-Instruct"  # without the organisation
        items = tree.findItems(shown, Qt.MatchFlag.MatchRecursive)
        assert items and items[0].toolTip(0) == plain_tooltip(LONG_MODEL)
        item = items[0]
        rect = tree.visualItemRect(item)
        needed = tree.fontMetrics().horizontalAdvance(shown)
        # The text fits its column: from where the item starts to the column's right edge.
        column_right = tree.header().sectionViewportPosition(0) + tree.columnWidth(0)
        assert column_right - rect.left() >= needed
        assert tree.header().sectionResizeMode(0) == QHeaderView.ResizeMode.ResizeToContents
        top = tree.topLevelItem(0)
        assert top.text(0) == "This session"
        assert tree.columnWidth(0) >= tree.fontMetrics().horizontalAdvance("This session")
    finally:
        store.close()
