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
        self._urls: dict[tuple[str, str], str] = {}
        for item in self.items:
            figure = figures[item.id] if figures is not None else Q.prepare(item, long_side)
            key = (_digest(figure.data_url()), Q.question_text(item).strip())
            self._by_request[key] = item
            self._urls[key] = figure.data_url()

    def is_right(self, item: ScoreItem) -> bool:
        h = hashlib.sha256(f"oracle:{self.seed}:{item.id}".encode()).digest()
        u = int.from_bytes(h[:8], "big") / 2**64
        return u < self.p

    def disagreements(self, run: Any, profile: int = 0) -> list[str]:
        """Items the scorer judged otherwise than this oracle answered (for a test's
        message: each with what was sent back and what was read)."""
        out = []
        for item in self.items:
            score = run.scores.get((profile, item.id))
            if score is not None and score.correct != self.is_right(item):
                out.append(
                    f"{item.id} {item.template} truth={item.truth!r} read="
                    f"{score.extracted!r} ({score.how}) answer={score.answer[-80:]!r}"
                )
        return out + [f"unmatched request: {u}" for u in self.unmatched]

    def _why_unmatched(self, body: dict[str, Any]) -> str:
        """What a request the oracle did not recognise carried, against the item whose
        question it asks: same text? same pixels, other bytes?"""
        import base64
        import io

        import numpy as np
        from PIL import Image

        try:
            user = body["messages"][-1]["content"]
            if not isinstance(user, list):  # text only (the speed suite's own requests)
                return f"no figure: {str(user)[:80]!r}"
            text = "".join(p.get("text", "") for p in user if p.get("type") == "text").strip()
            url = next(p["image_url"]["url"] for p in user if p.get("type") == "image_url")
        except (KeyError, TypeError, AttributeError, StopIteration):
            return json.dumps(body)[:300]
        same_text = [k for k in self._by_request if k[1] == text]
        if not same_text:
            return f"no item asks {text[:80]!r}"
        mine = self._urls.get(same_text[0]) if hasattr(self, "_urls") else None
        note = f"question found; image digest {_digest(url)[:12]} vs {same_text[0][0][:12]}"
        if mine:

            def pixels(u: str):
                raw = base64.b64decode(u.split(",", 1)[1])
                with Image.open(io.BytesIO(raw)) as im:
                    return np.asarray(im.convert("RGB")), im.size, len(raw)

            a, sa, na = pixels(url)
            b, sb, nb = pixels(mine)
            same = sa == sb and bool((a == b).all())
            note += f"; sizes {sa} vs {sb}, {na} vs {nb} bytes, same pixels: {same}"
        return note

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
            self.unmatched.append(self._why_unmatched(body))
            return None
        self.asked.append(item.id)
        value = item.truth if self.is_right(item) else wrong_answer(item)
        return f"Reading the chart: the relevant mark is checked against the axis.\nANSWER: {value}"


__all__ = ["ScoreOracle", "wrong_answer"]
