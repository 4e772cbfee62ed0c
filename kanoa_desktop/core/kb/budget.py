"""The knowledge-base share of a model's context, and packing passages into it.

Tokens are counted with the app's one estimate,
:func:`kanoa_desktop.core.tokens.estimate_text_tokens` (conservative: we cannot afford
a real tokenizer per chunk, and the model's may be unknown). A caller with an exact
tokenizer (llama.cpp ``/tokenize``) may pass its own ``count`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from kanoa_desktop.core.tokens import estimate_text_tokens

TokenCounter = Callable[[str], int]
T = TypeVar("T")


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
    count: TokenCounter = estimate_text_tokens,
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
