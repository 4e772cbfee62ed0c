"""What is scored: one figure, one question, one true answer (no Qt, no drawing here).

A :class:`ScoreItem` comes from the generated chart suite (:mod:`.suite`, which also draws
it) or from a user's answer key (:mod:`.keys`, a figure on disk). Either way the scorer
treats it alike: the figure and the question go through the one question path, and the
reply is judged against ``truth`` by :mod:`.extract`'s rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: A key's default relative tolerance (ChartQA's "relaxed accuracy": within 5 %).
DEFAULT_TOLERANCE = 0.05

#: What the final line should hold, by kind (or by a label question's closed answers).
HINTS = {
    "number": " (the number only, without units)",
    "count": " (a whole number)",
    "label": " (the label exactly as the chart writes it)",
    "yesno": " (yes or no)",
    "trend": " (increasing, decreasing or flat)",
    "key-label": " (a short answer)",
}


@dataclass(frozen=True)
class ScoreItem:
    """One question about one figure, with its true answer.

    ``id`` is stable across runs (the suite's ``charts-v1/7/012``, a key's ``row 3``) and
    keys results in the history; ``kind`` is ``number``, ``count`` or ``label``;
    ``tolerance`` is relative; ``axis_span`` (suite only) is the value axis' range, for
    the 1 % floor of the tolerance; ``choices`` are the labels the chart shows, for
    extraction's fallback; exactly one of ``chart`` (a suite chart spec, drawn on demand)
    and ``path`` (a key's figure) is set.
    """

    id: str
    index: int
    question: str
    truth: str
    kind: str
    template: str
    tolerance: float = DEFAULT_TOLERANCE
    axis_span: float | None = None
    choices: tuple[str, ...] = ()
    hint: str = ""
    chart: Any = None  # suite.ChartSpec
    path: Path | None = None
    source: str = ""  # what the figure is, for reports: "vertical bars", "fig3.png"

    @property
    def figure_name(self) -> str:
        """The name the figure goes by in the request and the history."""
        if self.path is not None:
            return self.path.name
        return self.id.replace("/", "-") + ".png"


__all__ = ["DEFAULT_TOLERANCE", "HINTS", "ScoreItem"]
