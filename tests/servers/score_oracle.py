"""A chart reader with a known accuracy, for the vLLM test server's ``answer_for``.

No vision model runs here, so a model's intelligence is faked at the one boundary where it
lives: the server's answer. :class:`ScoreOracle` is handed the items and their truths by the
test; given a request, it finds the item by the figure and the question the request
carries, and answers it right with probability ``p``, wrong otherwise. The draw for an item
is a pure function of (seed, item id) (sha256 to a uniform number), so it is thread-safe,
independent across items and seeds, and the test can count the right answers it gave
(:meth:`ScoreOracle.right`) to compare with what the scorer reports.

Right answers end with ``ANSWER: <truth>``; wrong ones with a value outside every
tolerance (a number moved by 10 % of the axis span and 3 tolerances, a count off by one, a
different label of the chart). ``style`` varies how the final line is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from kanoa_desktop.core.score import question as Q
from kanoa_desktop.core.score.items import ScoreItem


def _digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def wrong_answer(item: ScoreItem) -> str:
    """A value of the item's kind that is wrong by every rule of the scorer."""
    if item.kind == "count":
        return str(int(float(item.truth)) + 1)
    if item.kind == "number":
        truth = float(item.truth)
        move = max(3 * item.tolerance * abs(truth), 0.1 * (item.axis_span or 0), 1.0)
        return f"{truth + move:g}"
    others = [c for c in item.choices if c.casefold() != item.truth.casefold()]
    return others[0] if others else "none of these"


class ScoreOracle:
    """Answers the items' questions right with probability ``p`` (seeded per item)."""

    def __init__(
        self,
        items: Iterable[ScoreItem],
        p: float,
        seed: int,
        *,
        long_side: int = 1024,
        figures: Mapping[str, Any] | None = None,
    ) -> None:
        self.p = p
        self.seed = seed
        self.items = list(items)
        self.asked: list[str] = []
        self.unmatched: list[str] = []  # what requests it did not recognise (for a test's message)
        self._by_request: dict[tuple[str, str], ScoreItem] = {}
        for item in self.items:
            figure = figures[item.id] if figures is not None else Q.prepare(item, long_side)
            key = (_digest(figure.data_url()), Q.question_text(item).strip())
            self._by_request[key] = item

    def is_right(self, item: ScoreItem) -> bool:
        h = hashlib.sha256(f"oracle:{self.seed}:{item.id}".encode()).digest()
        u = int.from_bytes(h[:8], "big") / 2**64
        return u < self.p

    def right(self) -> int:
        """How many of the items this oracle answers right."""
        return sum(1 for i in self.items if self.is_right(i))

    def item_for(self, body: Mapping[str, Any]) -> ScoreItem | None:
        messages = body.get("messages") or []
        user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        if user is None or not isinstance(user.get("content"), list):
            return None
        texts = [p.get("text", "") for p in user["content"] if p.get("type") == "text"]
        urls = [
            (p.get("image_url") or {}).get("url", "")
            for p in user["content"]
            if p.get("type") == "image_url"
        ]
        if len(urls) != 1:
            return None
        return self._by_request.get((_digest(urls[0]), "".join(texts).strip()))

    def __call__(self, body: dict[str, Any]) -> str | None:
        item = self.item_for(body)
        if item is None:
            self.unmatched.append(json.dumps(body)[:300])
            return None
        self.asked.append(item.id)
        value = item.truth if self.is_right(item) else wrong_answer(item)
        return f"Reading the chart: the relevant mark is checked against the axis.\nANSWER: {value}"


__all__ = ["ScoreOracle", "wrong_answer"]
