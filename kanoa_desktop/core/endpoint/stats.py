"""Live figures of one answer: tokens, tokens/s, time to first token, cost.

:class:`StreamStats` folds stream events; the status bar, the command line and the history
read the same numbers from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kanoa_desktop.core.endpoint.events import (
    Finished,
    FirstToken,
    ReasoningDelta,
    RequestSent,
    StreamEvent,
    TextDelta,
    Usage,
)
from kanoa_desktop.core.tokens import estimate_text_tokens

DEFAULT_PRICE_PER_MILLION = 0.10  # USD, input and output, kanoa's figure for local models


def _plausible(tokens: object) -> bool:
    return isinstance(tokens, int) and not isinstance(tokens, bool) and 0 <= tokens <= 10**12


@dataclass
class StreamStats:
    """Accumulates one answer's events. All times are ``time.monotonic()`` seconds."""

    price_in_per_million: float = DEFAULT_PRICE_PER_MILLION
    price_out_per_million: float = DEFAULT_PRICE_PER_MILLION
    prompt_estimate: int = 0  # shown, marked estimated, until the server reports usage
    t_sent: float | None = None
    t_first: float | None = None
    t_last: float | None = None
    t_end: float | None = None
    chunks: int = 0  # content and reasoning chunks seen: one token each on known servers
    chars: int = 0
    usage: Usage | None = None
    finish_reason: str | None = None
    _events: int = field(default=0, repr=False)

    def feed(self, ev: StreamEvent) -> None:
        self._events += 1
        if isinstance(ev, RequestSent):
            self.t_sent = ev.t
        elif isinstance(ev, FirstToken):
            self.t_first = ev.t
        elif isinstance(ev, TextDelta | ReasoningDelta):
            self.chunks += 1
            self.chars += len(ev.text)
            self.t_last = ev.t
        elif isinstance(ev, Usage):
            # Implausible figures (negative, NaN, above 10^12) are unknown: keep the
            # estimate. The client already drops them; a Usage made elsewhere may not.
            if _plausible(ev.prompt_tokens) and _plausible(ev.completion_tokens):
                self.usage = ev
        elif isinstance(ev, Finished):
            self.t_end = ev.t
            self.finish_reason = ev.finish_reason

    # -- derived ---------------------------------------------------------------------------

    @property
    def ttft_s(self) -> float | None:
        if self.t_sent is None or self.t_first is None:
            return None
        return self.t_first - self.t_sent

    @property
    def prompt_tokens(self) -> int:
        return self.usage.prompt_tokens if self.usage else self.prompt_estimate

    @property
    def output_tokens(self) -> int:
        if self.usage:
            return self.usage.completion_tokens
        return max(self.chunks, estimate_text_tokens("x" * self.chars) if not self.chunks else 0)

    @property
    def estimated(self) -> bool:
        """True while the token figures are not the server's own count."""
        return self.usage is None or self.usage.estimated

    def tokens_per_s(self, now: float | None = None) -> float | None:
        """Output tokens per second of generation, from the first token on.

        Uses the server's own count once known; before that, the chunks seen so far.
        """
        if self.t_first is None:
            return None
        end = self.t_end or now or self.t_last
        if end is None or end <= self.t_first:
            return None
        # The first token arrives at t_first; the rate is over the tokens after it.
        n = self.output_tokens - 1
        if n <= 0:
            return None
        return n / (end - self.t_first)

    @property
    def served(self) -> bool:
        """Whether the server did work we can count: it reported usage or streamed text.
        A request it refused, or that failed before any answer, did nothing."""
        return self.usage is not None or self.chunks > 0

    @property
    def cost(self) -> float:
        """What the server did, at this answer's prices: 0 when it did nothing; an estimate
        (:attr:`estimated`) until it reports usage."""
        if not self.served:
            return 0.0
        return (
            self.prompt_tokens * self.price_in_per_million
            + self.output_tokens * self.price_out_per_million
        ) / 1_000_000

    def elapsed(self, now: float) -> float | None:
        if self.t_sent is None:
            return None
        return (self.t_end or now) - self.t_sent
