"""Split segments into retrieval chunks that remember their source span.

Chunks are filled with whole paragraphs (runs of lines between blank lines) while they
fit; a paragraph longer than a chunk is split between lines, and a line longer than a chunk
is hard-wrapped. A heading (Markdown ``#``, LaTeX ``\\section{``, a reST title underline, a
BibTeX ``@entry{``) always starts a new chunk so a passage rarely straddles two topics.

A chunk holds at most ``max_tokens`` estimated tokens (``CHARS_PER_TOKEN`` characters per
token, see :mod:`kanoa_desktop.core.kb.budget`) and starts with up to ``overlap_tokens``
worth of the previous chunk's last lines (never across a heading), so a sentence cut at a
boundary is still found. ``Chunk.overlap`` counts those leading repeated characters:
``chunk.text[chunk.overlap:]`` is the part that is new.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from kanoa_desktop.core.kb.readers import Segment
from kanoa_desktop.core.tokens import CHARS_PER_TOKEN

DEFAULT_MAX_TOKENS = 320
DEFAULT_OVERLAP_TOKENS = 40

_HEADING = re.compile(
    r"(#{1,6}\s|\\(part|chapter|section|subsection|subsubsection|paragraph)\*?\{|@\w+\s*\{)"
)
_RST_UNDERLINE = re.compile(r"([=\-~^\"'`#*+])\1{2,}\s*$")


@dataclass(frozen=True)
class Chunk:
    """A passage of a file with its span: lines are 1-based and inclusive."""

    text: str
    line_start: int
    line_end: int
    page: int | None = None
    cell: int | None = None
    overlap: int = 0


@dataclass(frozen=True)
class _Line:
    text: str
    line: int  # 0-based line index within the segment
    para_start: bool
    heading: bool
    para_len: int  # for a paragraph's first line: characters of the whole paragraph

    @property
    def sep(self) -> str:
        return "\n\n" if self.para_start else "\n"


def _wrap(line: str, width: int) -> list[str]:
    """Pieces of at most ``width`` characters, cut at a space when one is near the end."""
    pieces = []
    while len(line) > width:
        cut = line.rfind(" ", width * 3 // 4, width)
        cut = cut if cut > 0 else width
        pieces.append(line[:cut])
        line = line[cut:]
    pieces.append(line)
    return pieces


def _lines(text: str, max_chars: int) -> list[_Line]:
    raw = text.split("\n")
    out: list[tuple[str, int, bool, bool]] = []
    para_start = True
    for i, line in enumerate(raw):
        line = line.rstrip()
        if not line.strip():
            para_start = True
            continue
        heading = bool(_HEADING.match(line)) or (
            i + 1 < len(raw)
            and bool(_RST_UNDERLINE.match(raw[i + 1]))
            and not _RST_UNDERLINE.match(line)
        )
        for j, piece in enumerate(_wrap(line, max_chars)):
            out.append((piece, i, para_start or heading, heading and j == 0))
            para_start = False
    # Paragraph lengths, computed backwards, let the packer keep a paragraph whole.
    lengths = [0] * len(out)
    run = 0
    for k in range(len(out) - 1, -1, -1):
        run += len(out[k][0]) + 1
        if out[k][2]:
            lengths[k] = run
            run = 0
    return [_Line(t, ln, ps, h, n) for (t, ln, ps, h), n in zip(out, lengths, strict=True)]


def _join(lines: list[_Line]) -> str:
    if not lines:
        return ""
    return lines[0].text + "".join(ln.sep + ln.text for ln in lines[1:])


def chunk_segment(
    segment: Segment,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Chunks of one segment, in order; each text is at most ``max_tokens`` tokens long."""
    max_chars = max(int(max_tokens * CHARS_PER_TOKEN), 16)
    overlap_chars = min(int(overlap_tokens * CHARS_PER_TOKEN), max_chars // 3)
    chunks: list[Chunk] = []
    cur: list[_Line] = []
    n_carry = 0  # leading lines of ``cur`` repeated from the previous chunk
    size = 0

    def emit(carry: bool) -> None:
        nonlocal cur, n_carry, size
        if len(cur) > n_carry:
            overlap = len(_join(cur[:n_carry])) + len(cur[n_carry].sep) if n_carry else 0
            chunks.append(
                Chunk(
                    text=_join(cur),
                    line_start=segment.line + cur[0].line,
                    line_end=segment.line + cur[-1].line,
                    page=segment.page,
                    cell=segment.cell,
                    overlap=overlap,
                )
            )
        kept: list[_Line] = []
        if carry:
            total = 0
            for ln in reversed(cur[n_carry:]):
                total += len(ln.text) + 1
                if total > overlap_chars:
                    break
                kept.insert(0, ln)
        cur, n_carry = kept, len(kept)
        size = len(_join(kept))

    for ln in _lines(segment.text, max_chars):
        fresh = len(cur) > n_carry
        if ln.heading:
            emit(carry=False)
        elif fresh and ln.para_start and size + 2 + ln.para_len > max_chars:
            # Keep the next paragraph whole: a paragraph break is a clean boundary, so no
            # overlap is needed there.
            emit(carry=False)
        elif fresh and size + len(ln.sep) + len(ln.text) > max_chars:
            emit(carry=True)
        # The carried overlap must leave room for the new line.
        while cur and size + len(ln.sep) + len(ln.text) > max_chars:
            cur.pop(0)
            n_carry = max(n_carry - 1, 0)
            size = len(_join(cur))
        size += (len(ln.sep) if cur else 0) + len(ln.text)
        cur.append(ln)
    emit(carry=False)
    return chunks


def chunk_segments(
    segments: Iterable[Segment],
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Chunks of all segments in order; a chunk never spans two pages or cells."""
    out: list[Chunk] = []
    for segment in segments:
        out.extend(chunk_segment(segment, max_tokens, overlap_tokens))
    return out
