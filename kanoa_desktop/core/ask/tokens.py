"""Token estimates for servers that do not report usage.

llama-cpp-python's own server ignores ``stream_options`` and never sends usage; Ollama's
older builds neither. We then count what we can see: each streamed content chunk is one
token on every OpenAI-compatible server we know (vLLM, llama.cpp, llama-cpp-python), and a
prompt is estimated from its characters. Figures computed here are always marked estimated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

# English prose and Markdown average about 4 characters per token on the BPE vocabularies
# of the models we target (Qwen, Gemma, Llama, SmolLM); code and numbers are denser, so
# round up.
CHARS_PER_TOKEN = 4.0
# What one image costs varies by model (Molmo ~ 576+, Qwen2.5-VL by pixels, Gemma 3 256);
# 576 is a middle, conservative figure for a 1024 px figure.
TOKENS_PER_IMAGE = 576
# Chat templates add role markers and separators per message.
TOKENS_PER_MESSAGE = 4


def estimate_text_tokens(text: str) -> int:
    """A conservative estimate of the tokens in ``text`` (0 for an empty string)."""
    if not text:
        return 0
    return math.ceil(len(text) / CHARS_PER_TOKEN)


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
