"""One family of typed errors, each a sentence the user can read and a next step.

Every error the client raises is a :class:`KanoaError`. ``message`` says what happened,
``hint`` what to do next, ``partial_text`` holds any answer text received before the failure
(so a caller never loses it), and ``detail`` keeps the server's own words for a details view.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from kanoa_desktop.core.safety import escape_control, scrub_secrets


class KanoaError(Exception):
    """Base of every error kanoa desktop shows to a user."""

    title = "Request failed"

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        status: int | None = None,
        detail: str = "",
        partial_text: str = "",
    ) -> None:
        # Server words reach these strings: never let them carry a key (an echoed
        # Authorization header) or terminal escapes to a banner, a log or a terminal.
        message = escape_control(scrub_secrets(message), keep="\n\t")
        super().__init__(message)
        self.message = message
        self.hint = escape_control(scrub_secrets(hint), keep="\n\t")
        self.status = status
        self.detail = escape_control(scrub_secrets(detail), keep="\n\t")
        self.partial_text = partial_text

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"

    @property
    def retryable(self) -> bool:
        """Whether trying the same request again may succeed without changing anything."""
        return False


# --- reaching the server -------------------------------------------------------------------


class ConnectionFailed(KanoaError):
    title = "Cannot reach the server"

    @property
    def retryable(self) -> bool:
        return True


class ConnectionRefused(ConnectionFailed):
    pass


class DnsFailure(ConnectionFailed):
    title = "Unknown host"


class TlsFailure(ConnectionFailed):
    title = "Secure connection failed"

    @property
    def retryable(self) -> bool:
        return False


class ConnectTimeout(ConnectionFailed):
    title = "Connection timed out"


class ReadTimeout(ConnectionFailed):
    title = "Server stopped answering"


class FirstTokenTimeout(ReadTimeout):
    """No token arrived within ``Timeouts.first_token`` seconds of sending (keep-alive
    comments and dripped bytes do not count)."""

    title = "No answer from the server"


class ProgressTimeout(ReadTimeout):
    """The stream had started but no new token arrived within ``Timeouts.progress``
    seconds (keep-alive comments and dripped bytes do not count)."""

    title = "The answer stalled"


class ServerLoading(KanoaError):
    title = "Server is still loading"

    @property
    def retryable(self) -> bool:
        return True


class ServerBusy(KanoaError):
    """503 or 429. ``retry_after_s``: seconds the server asked us to wait (its
    ``Retry-After`` header), or None when it did not say; Retry should wait that long."""

    title = "Server is busy"

    def __init__(
        self, message: str, hint: str = "", *, retry_after_s: float | None = None, **kw: Any
    ) -> None:
        super().__init__(message, hint, **kw)
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        return True


class RateLimited(ServerBusy):
    """429 Too Many Requests (a rate limit or a full queue)."""

    title = "Server is busy (too many requests)"


class Redirected(KanoaError):
    """The server answered 3xx. Redirects are never followed silently (a POST would lose
    its body, and the user did not choose the new address); ``location`` says where."""

    title = "Server redirects elsewhere"

    def __init__(self, message: str, hint: str = "", *, location: str = "", **kw: Any) -> None:
        super().__init__(message, hint, **kw)
        self.location = location


class BodyTooLarge(KanoaError):
    """A reply (or one line of a stream) exceeded its size cap; reading stopped there.

    ``kind`` names the cap (see ``client.BODY_CAPS``), ``cap_bytes`` its size."""

    title = "Reply too large"

    def __init__(
        self, message: str, hint: str = "", *, kind: str = "", cap_bytes: int = 0, **kw: Any
    ) -> None:
        super().__init__(message, hint, **kw)
        self.kind = kind
        self.cap_bytes = cap_bytes


# --- what the server refused -------------------------------------------------------------


class AuthFailed(KanoaError):
    title = "Not authorised"


class ModelNotFound(KanoaError):
    title = "Unknown model"

    def __init__(self, message: str, hint: str = "", *, valid_models=(), **kw: Any) -> None:
        super().__init__(message, hint, **kw)
        self.valid_models: list[str] = list(valid_models)


class ContextOverflow(KanoaError):
    title = "Prompt too long for the model"

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        prompt_tokens: int | None = None,
        context_length: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, hint, **kw)
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


class VisionUnsupported(KanoaError):
    title = "Model cannot see images"


class TooManyImages(KanoaError):
    title = "Too many images"

    def __init__(self, message: str, hint: str = "", *, max_images: int | None = None, **kw):
        super().__init__(message, hint, **kw)
        self.max_images = max_images


class ImageUnreadable(KanoaError):
    """The server could not decode an image it was sent: damaged data, or a format its
    decoder does not read (llama.cpp reads PNG, JPEG, GIF and BMP; not WebP, TIFF or SVG:
    400 "Failed to load image or audio file"). tests/servers/README.md has what it said."""

    title = "Server could not read the image"


class RequestTooLarge(KanoaError):
    """413: the request is larger than the server takes (llama.cpp refused 120 MB)."""

    title = "Request too large for the server"


class BadRequest(KanoaError):
    title = "Server rejected the request"


class ServerError(KanoaError):
    title = "Server error"

    @property
    def retryable(self) -> bool:
        return True


class PromptCacheFault(ServerError):
    """llama.cpp's prompt cache failed around an image (500 "Chunk not found"): it happens
    when a question matches the cached one up to a figure that the cached one follows with
    another figure (figures [A, B], then [A] alone), and repeats until the cache changes.
    Sent again without the cache (``"cache_prompt": false``) it works."""

    title = "Server's prompt cache failed on a figure"


# --- a vLLM router in front of several servers -------------------------------------------


class RouterNoWorkers(ServerBusy):
    """A vLLM router answered that none of its servers can take the request (503 "No
    available workers ..."): every server behind it is down, or every one for the model."""

    title = "No server behind the router"


class RouterRequestFailed(ServerError):
    """A vLLM router could not reach the server it picked (500 "Request failed: ...")."""

    title = "The router lost its server"


class RouterModelUnavailable(KanoaError):
    """A vLLM router routing by model (``--enable-igw``) has no working server for it."""

    title = "No server for this model"

    def __init__(self, message: str, hint: str = "", *, model: str = "", **kw: Any) -> None:
        super().__init__(message, hint, **kw)
        self.model = model

    @property
    def retryable(self) -> bool:
        return True


# --- the stream itself ---------------------------------------------------------------------


class StreamError(KanoaError):
    """The server reported an error after the answer had started."""

    title = "Server error during the answer"

    @property
    def retryable(self) -> bool:
        return True


class StreamTruncated(KanoaError):
    """The stream ended without the server's end marker: the answer may be incomplete."""

    title = "Answer cut off"

    @property
    def retryable(self) -> bool:
        return True


class ProtocolError(KanoaError):
    """The server sent something that is not the OpenAI streaming protocol."""

    title = "Unexpected reply from the server"


# --- classification of HTTP error bodies ---------------------------------------------------

# vLLM: "This model's maximum context length is 32768 tokens. However, you requested 40
# output tokens and your prompt contains at least 40000 input tokens, ..."; older vLLM:
# "... However, you requested 5000 tokens (4000 in the messages, 1000 in the completion)."
_VLLM_CTX_RE = re.compile(r"maximum context length is (?P<ctx>\d+) tokens")
_VLLM_PROMPT_RES = [
    re.compile(r"prompt contains(?: at least)? (?P<prompt>\d+)"),
    re.compile(r"(?P<prompt>\d+) in the messages"),
    re.compile(r"you requested (?P<prompt>\d+) tokens"),
]
# llama.cpp: "request (5031 tokens) exceeds the available context size (4096 tokens)"
_LLAMA_CTX_RE = re.compile(
    r"request \((?P<prompt>\d+) tokens\) exceeds the available context size \((?P<ctx>\d+) tokens\)"
)


def _context_numbers(message: str) -> tuple[int, int] | None:
    """(prompt tokens, context length) from a context-overflow message, if it is one."""
    m = _LLAMA_CTX_RE.search(message)
    if m:
        return int(m.group("prompt")), int(m.group("ctx"))
    m = _VLLM_CTX_RE.search(message)
    if m:
        for pat in _VLLM_PROMPT_RES:
            p = pat.search(message)
            if p:
                return int(p.group("prompt")), int(m.group("ctx"))
    return None


_MAXTOK_RE = re.compile(
    r"max_tokens=(?P<max>\d+) cannot be greater than max_model_len=(?P<ctx>\d+)"
)
_TOO_MANY_IMAGES_RE = re.compile(r"At most (?P<n>\d+) image\(s\) may be provided", re.I)
# llama.cpp's words for an image it could not decode, or a data URL it could not read.
_IMAGE_UNREADABLE_RE = re.compile(
    r"failed to load image|invalid base64|invalid uri-encoded base64|uri must be base64"
    r"|invalid uri format",
    re.I,
)
_VALID_ALIASES_RE = re.compile(r"Valid aliases?: (?P<names>.+?)\.?$", re.S)


def parse_error_body(body: str | bytes) -> tuple[str, dict[str, Any]]:
    """Return (message, fields) from any error body shape servers.md lists.

    Handles ``{"error": {...}}`` (vLLM >= 0.10.1, llama.cpp, Ollama), the flat
    ``{"object": "error", "message": ...}`` (older vLLM), ``{"error": "Unauthorized"}``
    (vLLM's key check), ``{"detail": ...}`` (FastAPI servers) and plain text.
    """
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = body.strip()
    try:
        data = json.loads(text) if text else None
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the stack
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err.get("type") or ""), err
        if isinstance(err, str):
            return err, data
        if "message" in data:
            return str(data["message"]), data
        if "detail" in data:
            detail = data["detail"]
            if isinstance(detail, list):  # FastAPI validation errors
                detail = "; ".join(str(d.get("msg", d)) for d in detail if isinstance(d, dict))
            return str(detail), data
    # An HTML page from a proxy, or nothing at all: keep it short. ``[^<>]*`` keeps the
    # tag pattern linear on a body of unclosed "<<<<".
    snippet = _TAG_RE.sub(" ", text[:20_000])
    snippet = " ".join(snippet.split())
    return snippet[:300], {}


_TAG_RE = re.compile(r"<[^<>]*>")
# A server's message is shown in a banner: long enough for any real one.
MAX_MESSAGE_CHARS = 1000


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date),
    bounded to a day; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        import email.utils  # only for an HTTP-date Retry-After; not at start

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), 86_400.0)


def _redirect_error(code: int, location: str, api_base: str, **kw: Any) -> Redirected:
    from urllib.parse import urlsplit

    here = urlsplit(api_base) if api_base else None
    there = urlsplit(location) if location else None
    where = location or "another address (it did not say which)"
    hint = "Put the address it redirects to in Settings > Endpoint, if you trust it."
    if here is not None and there is not None and there.scheme:
        if here.scheme == "http" and there.scheme == "https" and here.netloc == there.netloc:
            hint = f"The server wants HTTPS: use {api_base.replace('http://', 'https://', 1)}."
        elif there.path.rstrip("/").endswith("/v1") or "/v1/" in there.path:
            if "/v1" not in here.path:
                hint = "The API base is missing /v1: add it in Settings > Endpoint."
    elif location.startswith("/v1"):
        hint = "The API base is missing /v1: add it in Settings > Endpoint."
    return Redirected(
        f"The server at {api_base or 'this address'} redirects ({code}) to {where}; "
        "kanoa desktop does not follow redirects by itself.",
        hint,
        location=location,
        **kw,
    )


# What a vLLM router (and its Rust and Python versions) says when no server can take a
# request.
_NO_WORKERS = (
    "no available workers",
    "no workers are currently available",
    "no models available",
    "no healthy workers available",
    "no routers with healthy workers",
)


def error_from_status(
    status: int,
    body: str | bytes,
    *,
    model: str = "",
    api_base: str = "",
    context_length: int | None = None,
    partial_text: str = "",
    headers: Mapping[str, str] | None = None,
) -> KanoaError:
    """Turn an HTTP error reply into the matching :class:`KanoaError`.

    ``headers`` (the reply's) give ``Location`` for 3xx (:class:`Redirected`) and
    ``Retry-After`` for 429/503 (:class:`RateLimited` / :class:`ServerBusy`)."""
    message, fields = parse_error_body(body)
    message = message[:MAX_MESSAGE_CHARS]
    low = message.lower()
    etype = str(fields.get("type") or "").lower()
    kw: dict[str, Any] = {"status": status, "detail": message, "partial_text": partial_text}
    headers = headers or {}

    if 300 <= status < 400:
        return _redirect_error(status, str(headers.get("location") or ""), api_base, **kw)
    retry_after = retry_after_seconds(headers.get("retry-after"))
    if status == 429:
        when = (
            f"Try again in {retry_after:.0f} s."
            if retry_after is not None
            else "Wait a few seconds and try again."
        )
        return RateLimited(
            f"The server is busy: it refused the request for now (429"
            f"{': ' + message if message else ''}).",
            when + " Retry waits for it.",
            retry_after_s=retry_after,
            **kw,
        )

    if (
        status in (401, 403)
        or "api key" in low
        or "unauthorized" in low
        or etype == "authentication_error"
    ):
        return AuthFailed(
            f"The server at {api_base or 'this address'} refused the API key ({status}: {message or 'unauthorised'}).",
            "Check the key in Settings > Endpoint, or remove it if the server needs none.",
            **kw,
        )

    if status == 503 and ("loading" in low or etype == "unavailable_error"):
        return ServerLoading(
            "The server is still loading the model.",
            "Wait a moment and try again; large models take a minute or two to load.",
            **kw,
        )

    if (
        status == 404
        and ("does not exist" in low or "not found" in low)
        and (fields.get("param") == "model" or "model" in low)
    ):
        valid: list[str] = []
        m = _VALID_ALIASES_RE.search(message)
        if m:
            valid = [n.strip() for n in m.group("names").split(",") if n.strip()]
        listed = ", ".join(valid) if valid else "see the server's model list"
        return ModelNotFound(
            f"The server does not serve a model named '{model}'.",
            f"Choose one it serves: {listed}.",
            valid_models=valid,
            **kw,
        )

    numbers = _context_numbers(message)
    if numbers:
        prompt, ctx = numbers
        return ContextOverflow(
            f"The prompt is {prompt:,} tokens but the model's context holds {ctx:,}.",
            "Shorten the question, send fewer or smaller figures, lower the table's token "
            "budget, or start a new conversation.",
            prompt_tokens=prompt,
            context_length=ctx,
            **kw,
        )
    if etype == "exceed_context_size_error":
        prompt = fields.get("n_prompt_tokens")
        ctx = fields.get("n_ctx")
        return ContextOverflow(
            f"The prompt is {prompt} tokens but the model's context holds {ctx}.",
            "Shorten the question or start a new conversation.",
            prompt_tokens=prompt,
            context_length=ctx,
            **kw,
        )
    m = _MAXTOK_RE.search(message)
    if m:
        return ContextOverflow(
            f"Max tokens is {int(m.group('max')):,} but the model's context holds "
            f"{int(m.group('ctx')):,} in all.",
            "Lower Max tokens in Settings > Generation.",
            prompt_tokens=None,
            context_length=int(m.group("ctx")),
            **kw,
        )

    if (
        "not a multimodal model" in low
        or "image input is not supported" in low
        or ("image" in low and ("not support" in low or "mmproj" in low))
    ):
        return VisionUnsupported(
            f"The model '{model}' cannot read images."
            if model
            else "This model cannot read images.",
            "Ask about a table or text instead, or pick a vision model (Molmo, Gemma 3, "
            "Qwen2.5-VL, Llama 3.2 Vision) in the profile.",
            **kw,
        )
    m = _TOO_MANY_IMAGES_RE.search(message)
    if m:
        n = int(m.group("n"))
        return TooManyImages(
            f"The model takes at most {n} image{'s' if n != 1 else ''} per question.",
            f"Remove figures until {n} remain{'s' if n == 1 else ''}, or ask about them one at a time.",
            max_images=n,
            **kw,
        )

    # A vLLM router's own failures are plain text (kanoa_desktop.core.endpoint.router
    # refines them from its /workers list).
    if status == 503 and any(phrase in low for phrase in _NO_WORKERS):
        return RouterNoWorkers(
            f"The router has no working server behind it for this request (503: {message}).",
            "Start the model servers behind the router again; it sends requests as soon "
            "as its health check sees one up.",
            retry_after_s=retry_after,
            **kw,
        )
    if status == 500 and low.startswith("request failed:"):
        return RouterRequestFailed(
            "The router could not reach the server it picked: that server may have just gone down.",
            "Retry: the router tries another one, and stops sending to a dead server "
            "once its health check notices.",
            **kw,
        )
    if status == 413:
        return RequestTooLarge(
            "The request is larger than the server accepts (413): the figures are too big.",
            "Send fewer figures, or lower 'Image long side' in Settings > Images.",
            **kw,
        )
    if _IMAGE_UNREADABLE_RE.search(message):
        return ImageUnreadable(
            f"The server could not read an image it was sent ({message}).",
            "It reads PNG, JPEG, GIF and BMP and refuses damaged data. Open the figure again "
            "(the file may be damaged), or save it as PNG and add it again.",
            **kw,
        )
    if "chunk not found" in low:
        return PromptCacheFault(
            "The server failed to reuse its cached prompt around a figure (llama.cpp: "
            "'Chunk not found').",
            "Retry: kanoa desktop now asks this server not to reuse its cache for figures. "
            "(A llama.cpp fault when a question shares only some of an earlier one's figures.)",
            **kw,
        )
    if status == 503:
        return ServerBusy(
            "The server is overloaded or not ready (503).",
            f"Try again in {retry_after:.0f} s."
            if retry_after is not None
            else "Wait a few seconds and try again.",
            retry_after_s=retry_after,
            **kw,
        )
    if status == 404:
        return BadRequest(
            f"The server has no such endpoint ({message or '404 Not Found'}).",
            "Check the API base URL: OpenAI-compatible servers usually end in /v1.",
            **kw,
        )
    if 400 <= status < 500:
        return BadRequest(
            f"The server rejected the request ({status}): {message or 'no reason given'}.",
            "Check the model and generation settings.",
            **kw,
        )
    return ServerError(
        f"The server failed ({status}): {message or 'no reason given'}.",
        "Try again; if it persists, look at the server's log.",
        **kw,
    )


def scrub(text: str, secret: str | None) -> str:
    """Remove a secret, and anything that looks like a credential, from text that may be
    shown or logged (see :func:`kanoa_desktop.core.safety.scrub_secrets`)."""
    return scrub_secrets(text, secret)
