"""From a model's answer to right or wrong: extraction, normalisation, tolerance.

The prompt asks for a final line ``ANSWER: <value>`` (:data:`ANSWER_INSTRUCTION`). What a
caller may rely on:

- **The answer line wins.** The last line that reads ``ANSWER: ...`` (any case, Markdown
  emphasis allowed: ``**Answer:** 40``; ``Final answer: 40`` too) is the answer. If its value
  cannot be read (``ANSWER: forty``) the item is *unparsed*: other numbers in the text are
  the model's working, not its answer, and are not taken instead.
- **Fallback** when there is no answer line: the last number in the text (numeric
  questions), or the label the text names last among the chart's labels (label questions;
  a key's label question without known labels takes the last non-empty line).
- **Numbers** are read as written: ``about 40``, ``~40``, ``40 %``, ``4.0e1``, ``1,234``,
  ``−12`` (a Unicode minus) all read; words (``forty``) do not. In the answer line the
  first number is the answer (``40 (approximately)``).
- **Right** for a number: ``|answer − truth| <= max(tolerance × |truth|, 1 % of the axis
  span)`` (the axis term only where the chart's axis is known: the generated suite; a
  key's truth of 0 then needs an exact 0). Counts (how many series) must be exact.
  Labels match after normalisation: case, accents' composition, surrounding quotes,
  Markdown emphasis, spaces and a final full stop do not matter; yes/no and trends accept
  a few synonyms (``true``, ``rising``...).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

#: How the prompt asks for the final line (a report prints it).
ANSWER_INSTRUCTION = (
    "Think briefly if you need to, then end your reply with one final line of the form "
    "`ANSWER: <value>`{hint}."
)

#: Kinds of answer: a number read off the chart, an exact count, or a label.
KINDS = ("number", "count", "label")

_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2012": "-", "\ufe63": "-", "\uff0d": "-"})
_NUMBER = re.compile(
    r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])"
)
_ANSWER_LINE = re.compile(
    r"^[\s>*_#`\-]*(?:final\s+)?answer[\s*_`]*[:：][\s*_`]*(?P<value>.*?)[\s*_`]*$",
    re.IGNORECASE | re.MULTILINE,
)
_STRIP = " \t\r\n*_`'\"“”‘’«»()[]{}"

# Accepted spellings of a few closed answers (normalised form -> canonical).
SYNONYMS: dict[str, str] = {
    "yes": "yes", "true": "yes", "y": "yes",
    "no": "no", "false": "no", "n": "no",
    "increasing": "increasing", "increase": "increasing", "increases": "increasing",
    "rising": "increasing", "rises": "increasing", "upward": "increasing", "up": "increasing",
    "ascending": "increasing", "growing": "increasing",
    "decreasing": "decreasing", "decrease": "decreasing", "decreases": "decreasing",
    "falling": "decreasing", "falls": "decreasing", "downward": "decreasing",
    "down": "decreasing", "descending": "decreasing", "declining": "decreasing",
    "flat": "flat", "constant": "flat", "stable": "flat", "steady": "flat",
    "unchanged": "flat", "no trend": "flat", "no clear trend": "flat", "level": "flat",
}  # fmt: skip


@dataclass(frozen=True)
class Extracted:
    """What was read from an answer. ``how``: ``answer line``, ``last number``,
    ``last label``, ``last line`` or ``unparsed`` (then ``value`` is empty)."""

    value: str
    number: float | None
    how: str

    @property
    def unparsed(self) -> bool:
        return self.how == "unparsed"


@dataclass(frozen=True)
class Judgement:
    correct: bool
    rel_error: float | None  # |answer - truth| / |truth| for numbers (None otherwise)


UNPARSED = Extracted("", None, "unparsed")


def normalise_label(text: str) -> str:
    """A label as compared: NFKC, case-folded, without surrounding quotes, emphasis and a
    final full stop, single spaces; synonyms of yes/no and trends mapped to one word."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = " ".join(t.split()).strip(_STRIP).rstrip(".!;:,").strip(_STRIP)
    t = " ".join(t.split())
    return SYNONYMS.get(t, t)


def parse_number(text: str) -> float | None:
    """The first number written in ``text`` (see the module docstring), or None."""
    for m in _NUMBER.finditer(text.translate(_MINUS)):
        token = m.group(0)
        if not any(ch.isdigit() for ch in token):
            continue
        try:
            return float(token.replace(",", ""))
        except ValueError:
            continue
    return None


def _numbers(text: str) -> list[float]:
    out = []
    for m in _NUMBER.finditer(text.translate(_MINUS)):
        token = m.group(0)
        if any(ch.isdigit() for ch in token):
            try:
                out.append(float(token.replace(",", "")))
            except ValueError:
                pass
    return out


def answer_line(text: str) -> str | None:
    """The value of the last ``ANSWER:`` line, or None when there is none."""
    found = None
    for m in _ANSWER_LINE.finditer(text):
        found = m.group("value")
    return found.strip() if found is not None else None


def _choice_in(value: str, choices: Sequence[str]) -> str | None:
    """The one chart label ``value`` names (whole words), or None (none, or several)."""
    norm = normalise_label(value)
    named = [
        c for c in choices if re.search(rf"(?<!\w){re.escape(normalise_label(c))}(?!\w)", norm)
    ]
    return named[0] if len(named) == 1 else None


def extract(text: str, kind: str, choices: Sequence[str] = ()) -> Extracted:
    """Read the answer of kind ``kind`` (:data:`KINDS`) from a model's reply."""
    value = answer_line(text)
    if value is not None:
        if kind in ("number", "count"):
            number = parse_number(value)
            return Extracted(value, number, "answer line") if number is not None else UNPARSED
        if not normalise_label(value):
            return UNPARSED
        chosen = _choice_in(value, choices) if choices else None
        return Extracted(chosen or value, None, "answer line")
    if kind in ("number", "count"):
        numbers = _numbers(text)
        if not numbers:
            return UNPARSED
        return Extracted(f"{numbers[-1]:g}", numbers[-1], "last number")
    if choices:
        norm = normalise_label(text)
        best, where = None, -1
        for c in choices:
            for m in re.finditer(rf"(?<!\w){re.escape(normalise_label(c))}(?!\w)", norm):
                if m.start() > where:
                    best, where = c, m.start()
        return Extracted(best, None, "last label") if best is not None else UNPARSED
    lines = [ln for ln in text.splitlines() if normalise_label(ln)]
    return Extracted(lines[-1].strip(), None, "last line") if lines else UNPARSED


def judge(
    extracted: Extracted,
    truth: str,
    kind: str,
    *,
    tolerance: float,
    axis_span: float | None = None,
) -> Judgement:
    """Right or wrong by the rules of the module docstring."""
    if extracted.unparsed:
        return Judgement(False, None)
    if kind in ("number", "count"):
        target = parse_number(truth)
        x = extracted.number
        if target is None or x is None:
            return Judgement(False, None)
        rel = abs(x - target) / abs(target) if target else None
        if kind == "count":
            return Judgement(x == target, rel)
        allowed = tolerance * abs(target)
        if axis_span:
            allowed = max(allowed, 0.01 * abs(axis_span))
        # A hair of slack for binary floating point (0.1 + 0.2), never a real margin.
        allowed += 1e-9 * max(1.0, abs(target))
        return Judgement(abs(x - target) <= allowed, rel)
    return Judgement(normalise_label(extracted.value) == normalise_label(truth), None)


def answer_kind(truth: str) -> str:
    """A key's answer kind: ``number`` when the answer is one number (``40``, ``4.0e1``,
    ``-3.5``, ``12 %``), else ``label``."""
    t = truth.strip().translate(_MINUS).rstrip("%").strip().replace(",", "")
    try:
        float(t)
    except ValueError:
        return "label"
    return "number" if t.lower() not in ("nan", "inf", "-inf", "+inf", "infinity") else "label"


__all__ = [
    "ANSWER_INSTRUCTION",
    "KINDS",
    "SYNONYMS",
    "Extracted",
    "Judgement",
    "answer_kind",
    "answer_line",
    "extract",
    "judge",
    "normalise_label",
    "parse_number",
]
