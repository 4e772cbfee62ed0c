"""Token estimates and the knowledge-base share of a model's context.

We cannot afford a real tokenizer per chunk (and the model's may be unknown), so tokens are
estimated *conservatively*: English prose averages about 4 characters per token with
common BPE tokenizers and code about 3-3.5, so ASCII text is counted at
:data:`CHARS_PER_TOKEN` = 3.5 characters per token, rounded up; every non-ASCII character
counts as a whole token (CJK and many symbols take one or more tokens each). The estimate
therefore errs towards "too many tokens", which is the safe side for a budget. A caller
with an exact tokenizer (llama.cpp ``/tokenize``) may pass its own ``count`` function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

CHARS_PER_TOKEN = 3.5

TokenCounter = Callable[[str], int]
T = TypeVar("T")


def estimate_tokens(text: str) -> int:
    """Conservative token count of ``text`` (see the module docstring); 0 for ''."""
    if not text:
        return 0
    if text.isascii():
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    return math.ceil((len(text) - non_ascii) / CHARS_PER_TOKEN) + non_ascii


def default_safety_margin(context_length: int) -> int:
    """Tokens kept free for chat-template wrapping and estimate error: 5 %, at least 64."""
    return max(64, context_length // 20)


def token_budget(
    context_length: int,
    prompt_tokens: int,
    image_tokens: int = 0,
    max_tokens: int = 0,
    safety_margin: int | None = None,
) -> int:
    """Tokens the knowledge base may use: context - prompt - images - answer - margin.

    Never negative. ``max_tokens`` is the answer length the request reserves;
    ``safety_margin`` defaults to :func:`default_safety_margin`.
    """
    if safety_margin is None:
        safety_margin = default_safety_margin(context_length)
    return max(0, context_length - prompt_tokens - image_tokens - max_tokens - safety_margin)


def pack(
    items: list[T],
    budget: int,
    render: Callable[[list[T]], str],
    count: TokenCounter = estimate_tokens,
    limit: int | None = None,
) -> list[T]:
    """The longest rank-ordered selection of ``items`` whose rendering fits ``budget``.

    Items are tried in order; one that does not fit is skipped (a shorter later one may
    still fit). The whole rendered text is re-counted after each addition, so the result
    satisfies ``count(render(result)) <= budget`` for any ``count``, additive or not; an
    empty selection is returned when not even one item fits. At most ``limit`` items.
    """
    chosen: list[T] = []
    for item in items:
        if limit is not None and len(chosen) >= limit:
            break
        trial = [*chosen, item]
        if count(render(trial)) <= budget:
            chosen = trial
    return chosen
