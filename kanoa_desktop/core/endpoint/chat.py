"""Chat requests and conversations in the OpenAI message format.

A :class:`Conversation` keeps the system prompt and earlier turns, so a follow-up question
carries the figure it is about. :class:`ChatRequest` is what the client sends.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def data_url(data: bytes, mime: str) -> str:
    """Encode bytes as a ``data:`` URL for an ``image_url`` content part."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def user_message(text: str, image_urls: Sequence[str] = ()) -> dict[str, Any]:
    """A user turn: plain text, or text followed by images as ``image_url`` parts.

    Images come before the text: several vision models (Molmo, Llama 3.2 Vision) read an
    image best when it precedes the question.
    """
    if not image_urls:
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": url}} for url in image_urls
    ]
    parts.append({"type": "text", "text": text})
    return {"role": "user", "content": parts}


def describe_payload(payload: dict[str, Any]) -> str:
    """The request body as indented JSON with image data elided (for "Show request")."""

    def elide(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: elide(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [elide(v) for v in obj]
        if isinstance(obj, str) and obj.startswith("data:") and len(obj) > 80:
            return obj[:40] + f"…({len(obj):,} characters)"
        return obj

    return json.dumps(elide(payload), indent=2, ensure_ascii=False)


def count_images(messages: Sequence[dict[str, Any]]) -> int:
    n = 0
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, list):
            n += sum(1 for p in content if p.get("type") == "image_url")
    return n


@dataclass
class ChatRequest:
    """One chat completion request. ``extra`` is merged into the body last."""

    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self, *, stream: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": self.messages}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.top_p is not None:
            body["top_p"] = self.top_p
        if stream:
            body["stream"] = True
            # vLLM, llama.cpp and Ollama send a final usage chunk only when asked;
            # stream_options with stream=false is a 400 on vLLM, so only here.
            body["stream_options"] = {"include_usage": True}
        body.update(self.extra)
        return body

    @property
    def n_images(self) -> int:
        return count_images(self.messages)


@dataclass
class Turn:
    user: dict[str, Any]
    assistant: str = ""
    finish_reason: str | None = None  # "stop", "length", "stopped" (by the user), "error"
    asked: str = ""  # what the user asked (Markdown for the view), not the prompt sent
    note: str = ""  # how it ended, when it did not simply finish (the view's line under it)


@dataclass
class Conversation:
    """A system prompt and the turns so far; builds the messages of the next request."""

    system_prompt: str = ""
    turns: list[Turn] = field(default_factory=list)

    def messages_for(self, next_user: dict[str, Any]) -> list[dict[str, Any]]:
        msgs: list[dict[str, Any]] = []
        if self.system_prompt:
            msgs.append({"role": "system", "content": self.system_prompt})
        for turn in self.turns:
            msgs.append(turn.user)
            if turn.assistant:
                msgs.append({"role": "assistant", "content": turn.assistant})
        msgs.append(next_user)
        return msgs

    def add_turn(self, user: dict[str, Any]) -> Turn:
        turn = Turn(user=user)
        self.turns.append(turn)
        return turn

    def clear(self) -> None:
        self.turns.clear()
