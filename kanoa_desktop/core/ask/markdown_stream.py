"""Split a growing Markdown answer into finished blocks and an unfinished tail.

Re-rendering a whole Markdown document per token is quadratic (an 8k-token answer would
re-parse megabytes). Instead a view renders each *finished* block once and shows the
unfinished tail as plain text; one full render happens at the end.

A block is finished when a blank line follows it outside a fenced code block. A code fence
is one block from its opening to its closing fence.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MarkdownStream:
    """Feed text as it arrives; take newly finished blocks with :meth:`take_committed`."""

    text: str = ""
    committed_upto: int = 0  # text[:committed_upto] has been handed out as finished blocks
    _scan_from: int = 0  # where the next line scan starts (a line start)
    _in_fence: str | None = None  # the fence marker while inside ``` or ~~~
    _boundary: int = 0  # end of the last finished block seen by the scanner
    _pending: list[str] = field(default_factory=list)

    def feed(self, chunk: str) -> None:
        self.text += chunk
        self._scan()

    def _scan(self) -> None:
        text = self.text
        pos = self._scan_from
        while True:
            nl = text.find("\n", pos)
            if nl < 0:
                break
            line = text[pos:nl]
            stripped = line.strip()
            if self._in_fence is not None:
                if stripped.startswith(self._in_fence) and stripped.strip("`~") == "":
                    self._in_fence = None
                    self._boundary = nl + 1  # a closed fence finishes its block
            elif stripped.startswith("```") or stripped.startswith("~~~"):
                self._in_fence = stripped[:3]
            elif stripped == "":
                self._boundary = nl + 1
            pos = nl + 1
        self._scan_from = pos

    def take_committed(self) -> str:
        """The Markdown of blocks finished since the last call ('' if none)."""
        if self._boundary <= self.committed_upto:
            return ""
        out = self.text[self.committed_upto : self._boundary]
        self.committed_upto = self._boundary
        return out

    @property
    def tail(self) -> str:
        """The unfinished text after the last finished block."""
        return self.text[self.committed_upto :]
