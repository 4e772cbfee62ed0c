"""Split a growing Markdown answer into finished blocks and an unfinished tail.

Re-rendering a whole Markdown document per token is quadratic (an 8k-token answer would
re-parse megabytes). Instead a view renders each *finished* block once and shows the
unfinished tail as plain text; one full render happens at the end.

A block is finished when a blank line follows it outside a fenced code block. A code fence
is one block from its opening to its closing fence.

Feeding is linear in the text: chunks are kept in lists (never re-copied per token, which
made a 64k-token answer cost seconds of the GUI thread), each line is scanned once when its
newline arrives, and only :attr:`tail` and :meth:`take_committed` (called per screen
update, not per token) join the unfinished part.
"""

from __future__ import annotations


class MarkdownStream:
    """Feed text as it arrives; take newly finished blocks with :meth:`take_committed`."""

    def __init__(self) -> None:
        self._committed: list[str] = []  # text handed out as finished blocks
        self._pending: list[str] = []  # text after committed_upto
        self._line: list[str] = []  # pieces of the current, unterminated line
        self._length = 0  # characters fed so far
        self.committed_upto = 0  # text[:committed_upto] has been handed out
        self._boundary = 0  # end of the last finished block seen by the scanner
        self._in_fence: str | None = None  # the fence marker while inside ``` or ~~~
        self._text: str | None = ""  # cache of the whole text

    def feed(self, chunk: str) -> None:
        if not chunk:
            return
        start = self._length
        self._pending.append(chunk)
        self._length += len(chunk)
        self._text = None
        pos = 0
        while True:
            nl = chunk.find("\n", pos)
            if nl < 0:
                break
            if self._line:
                self._line.append(chunk[pos:nl])
                line = "".join(self._line)
                self._line = []
            else:
                line = chunk[pos:nl]
            self._end_of_line(line, start + nl + 1)
            pos = nl + 1
        if pos < len(chunk):
            self._line.append(chunk[pos:])

    def _end_of_line(self, line: str, after: int) -> None:
        stripped = line.strip()
        if self._in_fence is not None:
            if stripped.startswith(self._in_fence) and stripped.strip("`~") == "":
                self._in_fence = None
                self._boundary = after  # a closed fence finishes its block
        elif stripped.startswith("```") or stripped.startswith("~~~"):
            self._in_fence = stripped[:3]
        elif stripped == "":
            self._boundary = after

    @property
    def text(self) -> str:
        """Everything fed so far."""
        if self._text is None:
            self._text = "".join(self._committed) + "".join(self._pending)
            self._committed = [self._text[: self.committed_upto]]
            self._pending = [self._text[self.committed_upto :]]
        return self._text

    def take_committed(self) -> str:
        """The Markdown of blocks finished since the last call ('' if none)."""
        if self._boundary <= self.committed_upto:
            return ""
        pending = "".join(self._pending)
        cut = self._boundary - self.committed_upto
        out, rest = pending[:cut], pending[cut:]
        self._pending = [rest] if rest else []
        self._committed.append(out)
        self.committed_upto = self._boundary
        return out

    @property
    def tail(self) -> str:
        """The unfinished text after the last finished block."""
        if len(self._pending) > 1:
            self._pending = ["".join(self._pending)]
        return self._pending[0] if self._pending else ""
