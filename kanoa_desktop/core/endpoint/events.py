"""Typed events of one streamed chat request, in the order a caller sees them.

Every event carries ``t``, a ``time.monotonic()`` timestamp taken when the client saw it, so
callers compute time to first token and tokens/s without clocks of their own:

    RequestSent -> PromptProgress* -> FirstToken -> (TextDelta | ReasoningDelta | Usage)*
        -> Usage? -> Finished

``PromptProgress`` comes only from servers that report how far they have read the prompt
(llama.cpp, asked with ``return_progress``): ``processed`` of ``total`` prompt tokens, of
which ``cached`` came from its prompt cache. ``total`` is the server's own prompt count.

``RequestSent.payload`` is the body exactly as sent. ``FirstToken`` precedes the first text
or reasoning delta. ``Usage`` comes as the server reports it (on every chunk when it sends
usage per chunk), and once more before ``Finished`` unless it was said already; when the
server sent none, that last one is estimated (``estimated=True``).
A failure ends the stream with an exception from :mod:`kanoa_desktop.core.endpoint.errors` instead
of ``Finished``; the text received so far travels on the exception.

``Finished.notices`` carries what the user should be told about an answer that did end:

- ``Notice("max_tokens_ignored", ...)``: the server kept generating past the request's
  ``max_tokens``; the client stopped reading a little past it (``max_tokens * 1.1 + 16``
  tokens, counted as content and reasoning chunks, or characters / 16 if more), closed the
  connection, and finished with ``finish_reason="length"`` and the text so far.
- ``Notice("reasoning_only", ...)``: the model produced reasoning but no answer text
  (typically cut by max tokens while thinking); show ``Finished.reasoning`` folded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestSent:
    t: float
    url: str
    model: str
    n_images: int = 0
    body_bytes: int = 0
    payload: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class PromptProgress:
    t: float
    processed: int  # prompt tokens read so far (cached ones included)
    total: int  # the whole prompt, in the server's tokens
    cached: int = 0  # taken from the server's prompt cache, not read again


@dataclass(frozen=True, slots=True)
class FirstToken:
    t: float
    ttft_s: float  # seconds from RequestSent to this event


@dataclass(frozen=True, slots=True)
class TextDelta:
    t: float
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    t: float
    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    t: float
    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False
    server_timings: dict[str, Any] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user should read about a finished answer (see the module docstring).

    ``kind``: ``"max_tokens_ignored"`` or ``"reasoning_only"``; ``message``: a sentence."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Finished:
    t: float
    finish_reason: str | None  # "stop", "length", ... as the server said; None if it did not
    text: str  # the whole answer text
    reasoning: str = ""
    notices: tuple[Notice, ...] = ()


StreamEvent = (
    RequestSent | PromptProgress | FirstToken | TextDelta | ReasoningDelta | Usage | Finished
)
