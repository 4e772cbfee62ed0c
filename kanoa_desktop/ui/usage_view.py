"""A small view of tokens and cost: this session and all time, per day and per model."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from kanoa_desktop.core.history.store import HistoryStore, UsageRow, UsageTotals

COLUMNS = ["Period / model", "Questions", "Prompt tokens", "Output tokens", "Cost (USD)"]


def _cost(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


class UsageView(QWidget):
    """Two top rows, "This session" and "All time", each split "By model" and "By day" (with
    the models of each day below it). ``~`` marks figures that include estimates. Call :meth:`refresh` after a turn."""

    def __init__(self, store: HistoryStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("usageView")
        self.store = store
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.tree = QTreeWidget()
        self.tree.setObjectName("usageTree")
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setStretchLastSection(False)
        for c in range(1, len(COLUMNS)):
            self.tree.header().setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        lay.addWidget(self.tree)
        self.totals: UsageTotals | None = None
        self.refresh()

    def _row(self, parent, label: str, rows: list[UsageRow]) -> QTreeWidgetItem:
        p, o, cost = UsageTotals.total(rows)
        est = "~" if any(r.estimated for r in rows) else ""
        item = QTreeWidgetItem(
            [label, str(sum(r.turns for r in rows)), f"{est}{p:,}", f"{est}{o:,}", _cost(cost)]
        )
        for c in range(1, len(COLUMNS)):
            item.setTextAlignment(c, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if est:
            item.setToolTip(2, "Includes estimates where the server sent no token counts.")
            item.setToolTip(3, item.toolTip(2))
        if isinstance(parent, QTreeWidget):
            parent.addTopLevelItem(item)
        else:
            parent.addChild(item)
        return item

    def refresh(self) -> None:
        """Re-read the totals from the store."""
        self.totals = self.store.usage_totals()
        self.tree.clear()
        for label, rows in (
            ("This session", self.totals.session),
            ("All time", self.totals.all_time),
        ):
            top = self._row(self.tree, label, rows)
            font = top.font(0)
            font.setBold(True)
            top.setFont(0, font)
            if not rows:
                top.setToolTip(0, "No questions yet.")
                continue
            models: dict[str, list[UsageRow]] = {}
            days: dict[str, list[UsageRow]] = {}
            for r in rows:
                models.setdefault(r.model or "(model unknown)", []).append(r)
                days.setdefault(r.day, []).append(r)
            by_model = self._row(top, "By model", rows)
            for model in sorted(models):
                self._row(by_model, model, models[model])
            by_day = self._row(top, "By day", rows)
            for day, day_rows in days.items():  # newest day first (the store's order)
                d = self._row(by_day, day, day_rows)
                for r in sorted(day_rows, key=lambda r: r.model):
                    self._row(d, r.model or "(model unknown)", [r])
            by_model.setExpanded(True)
            by_day.setExpanded(True)
            top.setExpanded(True)


__all__ = ["UsageView"]
