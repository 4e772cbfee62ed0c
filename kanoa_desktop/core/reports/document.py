"""A report as a small document: what it says, not how a format writes it.

Every report of the app (a conversation, a comparison, a batch, a benchmark, a score run)
is a :class:`Document` written by :mod:`kanoa_desktop.core.reports.writer` as Markdown,
HTML, PDF or CSV. Text in a block is plain text, shown as exactly that text in every
format, except in :class:`Markdown` (Markdown from outside, made safe by the writer).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    """``lead`` is a bold label before the text ("Context:"); ``style`` "em" (italic),
    "note" (italic, coloured) or "small" (italic, smaller)."""

    text: str
    lead: str = ""
    style: str = ""


@dataclass(frozen=True)
class Quote:
    text: str


@dataclass(frozen=True)
class Markdown:
    """Markdown from outside (an answer, a table summary), headings ``demote`` levels
    deeper; ``cls`` its HTML class; ``empty`` shown when it is blank."""

    text: str
    demote: int = 0
    cls: str = "answer"
    empty: str = "(no text)"


@dataclass(frozen=True)
class Code:
    """A code block (a notebook cell, a prompt, a raw answer): its text exactly."""

    text: str
    lang: str = "text"


@dataclass(frozen=True)
class Figure:
    """An image the user chose: its bytes. ``file`` names it beside a Markdown report;
    ``thumb`` shows it small."""

    data: bytes = field(repr=False)
    name: str
    caption: str = ""
    mime: str = "image/png"
    width: int | None = None
    height: int | None = None
    file: str = ""
    thumb: bool = False


@dataclass(frozen=True)
class Table:
    """Rows of cells under ``headers``; ``align`` one letter per column ("l", "r");
    ``widths`` in percent of the page; ``first_column`` "b": row labels in bold."""

    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]
    align: str = ""
    widths: Sequence[int] = ()
    first_column: str = ""


@dataclass(frozen=True)
class Facts:
    """Labelled values (a reproducibility block, totals); an empty value shows the label
    alone."""

    rows: Sequence[tuple[str, str]]
    cls: str = "repro"


@dataclass(frozen=True)
class Items:
    """A bulleted list; an item ``(lead, text)`` has a bold lead."""

    items: Sequence[str | tuple[str, str]]


@dataclass(frozen=True)
class Columns:
    """Blocks side by side in HTML (``cls`` the row, ``part`` each column), one after
    the other elsewhere."""

    columns: Sequence[Sequence[Block]]
    cls: str = "panes"
    part: str = "pane"


Block = Heading | Paragraph | Quote | Markdown | Code | Figure | Table | Facts | Items | Columns


@dataclass
class Document:
    """A report: its title (none in Markdown when empty), its blocks, and ``data``, the
    table it is as CSV. ``width`` is the HTML page's width; ``figures`` names the folder
    beside a Markdown file (``<stem>_<figures>``)."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    data: Table | None = None
    width: str = "52rem"
    figures: str = "figures"

    def add(self, *blocks: Block | None) -> Document:
        """Append blocks (None is skipped); returns the document."""
        self.blocks.extend(b for b in blocks if b is not None)
        return self

    def figures_in(self) -> Iterator[Figure]:
        """Every figure, those inside columns too, in reading order."""
        stack = list(reversed(self.blocks))
        while stack:
            b = stack.pop()
            if isinstance(b, Columns):
                stack += reversed([x for column in b.columns for x in column])
            elif isinstance(b, Figure):
                yield b


__all__ = ["Block", "Code", "Columns", "Document", "Facts", "Figure", "Heading", "Items",
           "Markdown", "Paragraph", "Quote", "Table"]  # fmt: skip
