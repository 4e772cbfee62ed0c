"""What one figure costs a model, in prompt tokens, measured on its server.

The context gauge and the knowledge-base budget must count a figure before it is sent.
Its price depends on the model and the server (a fixed-size projector such as LLaVA's or
Gemma 3's costs the same for every image, Qwen2.5-VL pays by pixels), so
``core.ask.tokens.TOKENS_PER_IMAGE`` is only a guess. The server knows: ask it the same
one-line question without and with one figure and subtract the two
``usage.prompt_tokens``. The figure is a blank :data:`PROBE_FIGURE_SIZE` PNG, the size
kanoa desktop sends by default (figures are downscaled to a 1024 px long side), so a
model that pays by pixels is charged what a typical figure costs.
"""

from __future__ import annotations

import functools
import io
from typing import Any

PROBE_FIGURE_SIZE = (1024, 768)
PROBE_QUESTION = "Reply with one word."


@functools.cache
def probe_figure_url() -> str:
    """A blank :data:`PROBE_FIGURE_SIZE` PNG as a data URL (a few kilobytes)."""
    from PIL import Image

    from kanoa_desktop.core.endpoint.chat import data_url

    buf = io.BytesIO()
    Image.new("RGB", PROBE_FIGURE_SIZE, "white").save(buf, "PNG")
    return data_url(buf.getvalue(), "image/png")


def probe_messages(with_figure: bool) -> list[dict[str, Any]]:
    """The two measuring prompts: the same text part, with or without the figure.

    Both use a content list, so a server's chat template renders them alike and the
    difference is the figure alone.
    """
    parts: list[dict[str, Any]] = []
    if with_figure:
        parts.append({"type": "image_url", "image_url": {"url": probe_figure_url()}})
    parts.append({"type": "text", "text": PROBE_QUESTION})
    return [{"role": "user", "content": parts}]


def prompt_tokens_of(reply: Any) -> int | None:
    """``usage.prompt_tokens`` of a non-streamed chat reply, or None when it has none."""
    usage = reply.get("usage") if isinstance(reply, dict) else None
    value = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def image_tokens(with_figure: int | None, without: int | None) -> int | None:
    """What the figure added, or None when either count is missing or the sum is absurd."""
    if with_figure is None or without is None or with_figure <= without:
        return None
    return with_figure - without
