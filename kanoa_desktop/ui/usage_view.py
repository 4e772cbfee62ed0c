"""A small view of tokens and cost: this session and all time, per day and per model."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.history.store import HistoryStore, UsageRow, UsageTotals
from kanoa_desktop.core.safety import plain_tooltip

# Short number headers (the full meaning in each header's tooltip): the dock is narrow, and
# the first column, with the model names, must never be cut ("T…").
COLUMNS = ["Period / model", "Asked", "Prompt", "Output", "Cost"]
COLUMN_TIPS = [
    "Period, then each model",
    "Questions asked",
    "Prompt tokens",
    "Output tokens",
    "Cost in US dollars",
]


def short_model(model: str) -> str:
    """The model name without its organisation ("meta-llama/Llama-3.2-11B-Vision-Instruct"
    shows as "Llama-3.2-11B-Vision-Instruct"; the tooltip keeps the full name)."""
    return model.rsplit("/", 1)[-1] or model


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
        header_item = self.tree.headerItem()
        for c, tip in enumerate(COLUMN_TIPS):
            header_item.setToolTip(c, tip)
        # Every column as wide as its contents: a narrow dock scrolls sideways instead of
        # cutting the model names.
        self.tree.header().setStretchLastSection(False)
        for c in range(len(COLUMNS)):
            self.tree.header().setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.tree.setIndentation(12)  # three levels deep: keep room for the names
        lay.addWidget(self.tree)
        self.totals: UsageTotals | None = None
        self.refresh()

    def _row(
        self, parent, label: str, rows: list[UsageRow], *, shown: str | None = None
    ) -> QTreeWidgetItem:
        p, o, cost = UsageTotals.total(rows)
        est = "~" if any(r.estimated for r in rows) else ""
        item = QTreeWidgetItem(
            [
                shown or label,
                str(sum(r.turns for r in rows)),
                f"{est}{p:,}",
                f"{est}{o:,}",
                format_cost(cost, bool(est)),
            ]
        )
        item.setToolTip(0, plain_tooltip(label))  # a server's model name, never rendered
        for c in range(1, len(COLUMNS)):
            item.setTextAlignment(c, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if est:
            item.setToolTip(2, "Includes estimates where the server sent no token counts.")
            item.setToolTip(3, item.toolTip(2))
            item.setToolTip(4, item.toolTip(2))
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
                self._row(by_model, model, models[model], shown=short_model(model))
            by_day = self._row(top, "By day", rows)
            for day, day_rows in days.items():  # newest day first (the store's order)
                d = self._row(by_day, day, day_rows)
                for r in sorted(day_rows, key=lambda r: r.model):
                    model = r.model or "(model unknown)"
                    self._row(d, model, [r], shown=short_model(model))
            by_model.setExpanded(True)
            by_day.setExpanded(True)
            top.setExpanded(True)


__all__ = ["UsageView"]
