"""The app's one token estimate: prompts, knowledge-base budgets and chunks, table
summaries, and usage for servers that do not report it.

llama-cpp-python's own server ignores ``stream_options`` and never sends usage; Ollama's
older builds neither. We then count what we can see: each streamed content chunk is one
token on every OpenAI-compatible server we know (vLLM, llama.cpp, llama-cpp-python), and a
prompt is estimated from its characters. Figures computed here are always marked estimated.

Text is estimated *conservatively*, since the same number sizes what fits in a model's
context: English prose averages about 4 characters per token with common BPE tokenizers
and code about 3-3.5, so ASCII text counts :data:`CHARS_PER_TOKEN` = 3.5 characters per
token, rounded up; every non-ASCII character counts as a whole token (CJK and many symbols
take one or more each). The estimate errs towards "too many tokens", the safe side for a
budget. A caller with an exact tokenizer (llama.cpp ``/tokenize``) may count with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

# ASCII characters per token (see the module docstring): rounded down from prose's ~4 for
# code and numbers, on the BPE vocabularies we target (Qwen, Gemma, Llama, SmolLM).
CHARS_PER_TOKEN = 3.5
# What one image costs varies by model (Molmo ~ 576+, Qwen2.5-VL by pixels, Gemma 3 256);
# 576 is a middle, conservative figure for a 1024 px figure.
TOKENS_PER_IMAGE = 576
# Chat templates add role markers and separators per message.
TOKENS_PER_MESSAGE = 4


def estimate_text_tokens(text: str) -> int:
    """A conservative estimate of the tokens in ``text`` (0 for an empty string): ASCII at
    :data:`CHARS_PER_TOKEN` characters per token, each other character one token."""
    if not text:
        return 0
    if text.isascii():
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    return math.ceil((len(text) - non_ascii) / CHARS_PER_TOKEN) + non_ascii


def estimate_message_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Estimate the prompt tokens of OpenAI-style chat messages, images included."""
    total = 0
    for msg in messages:
        total += TOKENS_PER_MESSAGE
        content = msg.get("content")
        if isinstance(content, str):
            total += estimate_text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                kind = part.get("type")
                if kind == "text":
                    total += estimate_text_tokens(part.get("text", ""))
                elif kind == "image_url":
                    total += TOKENS_PER_IMAGE
    return total
