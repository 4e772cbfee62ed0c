"""A bounded Server-Sent Events parser over raw byte chunks.

``httpx``'s line reader (and so ``httpx_sse``) keeps an unterminated line in memory until a
newline comes: a server that sends one endless line grows the process by gigabytes. This
parser stops at ``max_line_bytes`` for one line and at ``max_event_bytes`` for one event's
joined ``data`` lines, raising :class:`SseTooLarge`. It follows the WHATWG rules that
matter for OpenAI-style streams: ``\\r\\n``, ``\\n`` or ``\\r`` end a line, ``:`` starts a
comment (keep-alive), ``data`` lines of one event are joined with ``\\n``, a blank line
dispatches. Comments are yielded as :class:`SseComment` so a caller can see that bytes
arrived without any progress. Work is linear in the bytes received.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


class SseTooLarge(Exception):
    """One line or one event exceeded its cap; ``what`` is "line" or "event"."""

    def __init__(self, what: str, cap: int) -> None:
        super().__init__(f"one SSE {what} exceeded {cap} bytes")
        self.what = what
        self.cap = cap


@dataclass(frozen=True, slots=True)
class SseEvent:
    data: str
    event: str = "message"
    id: str | None = None


@dataclass(frozen=True, slots=True)
class SseComment:
    """A ``:`` line (keep-alive). Carries nothing."""


def _field(line: bytes) -> tuple[bytes, bytes]:
    colon = line.find(b":")
    if colon < 0:
        return line, b""
    value = line[colon + 1 :]
    if value[:1] == b" ":
        value = value[1:]
    return line[:colon], value


async def iter_sse(
    chunks: AsyncIterator[bytes], *, max_line_bytes: int, max_event_bytes: int
) -> AsyncIterator[SseEvent | SseComment]:
    """Events and comments parsed from ``chunks`` (raw body bytes) as they complete.

    Raises :class:`SseTooLarge` as soon as an unterminated line reaches ``max_line_bytes``
    or an event's data reaches ``max_event_bytes``; nothing past the cap is kept. An event
    whose lines all ended but which lacks the closing blank line is dispatched at the end
    of the body (some servers omit it)."""
    buf = bytearray()
    skip_lf = False  # the previous chunk ended in "\r": a "\n" first in this one is its pair
    data: list[bytes] = []
    data_size = 0
    event = b""
    last_id: bytes | None = None

    def dispatch() -> SseEvent | None:
        nonlocal data, data_size, event
        if not data:
            event = b""
            return None
        out = SseEvent(
            b"\n".join(data).decode("utf-8", "replace"),
            event.decode("utf-8", "replace") or "message",
            last_id.decode("utf-8", "replace") if last_id is not None else None,
        )
        data, data_size, event = [], 0, b""
        return out

    def take_line(line: bytes) -> SseEvent | SseComment | None:
        nonlocal data_size, event, last_id
        if not line:
            return dispatch()
        if line[:1] == b":":
            return SseComment()
        name, value = _field(line)
        if name == b"data":
            data_size += len(value) + 1
            if data_size > max_event_bytes:
                raise SseTooLarge("event", max_event_bytes)
            data.append(value)
        elif name == b"event":
            event = value
        elif name == b"id" and b"\0" not in value:
            last_id = value
        return None

    async for chunk in chunks:
        if not chunk:
            continue
        if skip_lf:
            skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        scan = len(buf)  # only the new bytes can hold line ends: the old ones held none
        buf += chunk
        pos = 0
        # Each find resumes after the last one found: linear in the chunk.
        cr = buf.find(b"\r", scan)
        lf = buf.find(b"\n", scan)
        while cr >= 0 or lf >= 0:
            end = lf if cr < 0 else cr if lf < 0 else min(cr, lf)
            line = bytes(buf[pos:end])
            nxt = end + 1
            if end == cr:
                if nxt < len(buf):
                    if buf[nxt] == 10:  # "\r\n"
                        nxt += 1
                else:
                    skip_lf = True  # its "\n", if any, starts the next chunk
            if len(line) > max_line_bytes:
                raise SseTooLarge("line", max_line_bytes)
            item = take_line(line)
            if item is not None:
                yield item
            pos = nxt
            if 0 <= cr < nxt:
                cr = buf.find(b"\r", nxt)
            if 0 <= lf < nxt:
                lf = buf.find(b"\n", nxt)
        del buf[:pos]
        if len(buf) > max_line_bytes:
            raise SseTooLarge("line", max_line_bytes)
    # An unterminated last line is incomplete (a cut connection) and is dropped (WHATWG).
    last = dispatch()
    if last is not None:
        yield last


__all__ = ["SseComment", "SseEvent", "SseTooLarge", "iter_sse"]
