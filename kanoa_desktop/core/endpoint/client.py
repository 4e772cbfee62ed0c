"""Async client for OpenAI-compatible servers: vLLM, llama.cpp, Ollama and the like.

One :class:`ChatClient` owns one long-lived ``httpx.AsyncClient`` (a connection pool), so
successive questions reuse connections. Every failure surfaces as a
:class:`~kanoa_desktop.core.endpoint.errors.KanoaError`; text already streamed travels on it.

Streams are async generators. Consume them with ``contextlib.aclosing`` (or let a task be
cancelled): closing the generator closes the HTTP response at once, which makes vLLM and
llama.cpp abort the request instead of generating into the void.

Limits a misbehaving server cannot defeat (all in :data:`BODY_CAPS` and :class:`Timeouts`):

- every body is read through a cap per kind (a JSON reply, the model list, embeddings, an
  error body, one line or event of a stream); reading stops at the cap with
  :class:`~kanoa_desktop.core.endpoint.errors.BodyTooLarge`;
- a stream must deliver its first token within ``Timeouts.first_token`` and then a new
  token at least every ``Timeouts.progress`` seconds: keep-alive comments and bytes
  dripped one at a time do not count (:class:`~kanoa_desktop.core.endpoint.errors.FirstTokenTimeout`,
  :class:`~kanoa_desktop.core.endpoint.errors.ProgressTimeout`); a non-streamed reply must be
  complete within ``Timeouts.reply``;
- a stream that ignores ``max_tokens`` is stopped a little past it (see
  :mod:`~kanoa_desktop.core.endpoint.events`, ``Notice("max_tokens_ignored")``);
- redirects are never followed (:class:`~kanoa_desktop.core.endpoint.errors.Redirected`
  says where to); lone surrogates in text become U+FFFD; usage numbers that are not
  plausible token counts are ignored and estimated instead; the API key is scrubbed from
  every error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx

from kanoa_desktop.core.config.urls import root_url
from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint import vision as V
from kanoa_desktop.core.endpoint.bodies import BodyCapExceeded, CappedTransport, KiB, MiB
from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.core.endpoint.events import (
    Finished,
    FirstToken,
    Notice,
    PromptProgress,
    ReasoningDelta,
    RequestSent,
    StreamEvent,
    TextDelta,
    Usage,
)
from kanoa_desktop.core.endpoint.router import (
    RouterStatus,
    fetch_router_status,
    refine_router_error,
)
from kanoa_desktop.core.endpoint.sse import SseComment, SseTooLarge, iter_sse
from kanoa_desktop.core.endpoint.tls import shared_verify
from kanoa_desktop.core.safety import remember_secret, replace_surrogates
from kanoa_desktop.core.tokens import estimate_message_tokens, estimate_text_tokens

T = TypeVar("T")

# Size caps per kind of body. Real replies are far smaller; the caps only stop a server
# (or a proxy) that sends without end from growing the process by gigabytes.
BODY_CAPS: dict[str, int] = {
    "json": 8 * MiB,  # a non-streamed chat reply, /version, /props, /api/version, /health
    "models": 4 * MiB,  # GET /v1/models (thousands of entries fit)
    "embeddings": 64 * MiB,  # POST /v1/embeddings: one batch of vectors
    "error": 64 * KiB,  # any non-2xx body; only a few hundred characters are ever shown
    "sse_line": 1 * MiB,  # one line, and one event, of a stream (a chunk is ~300 bytes)
}
# Any one response on a ChatClient (a whole stream included) stops here, whatever reads it.
TRANSPORT_CAP = 256 * MiB
# A request body this big that loses its connection while being sent was most likely over
# the server's size limit (prepared figures are well under a megabyte each).
LARGE_BODY = 32 * MiB
# A stream is stopped once it is this far past its max_tokens (tokens are counted as
# content and reasoning chunks, or characters / RUNAWAY_CHARS_PER_TOKEN if that is more).
RUNAWAY_FACTOR = 1.1
RUNAWAY_SLACK_TOKENS = 16
RUNAWAY_CHARS_PER_TOKEN = 16  # generous: real tokens are 3-5 characters
UNBOUNDED_MAX_TOKENS = 32_768  # the limit assumed when a request sets no max_tokens
# Usage figures above this are not token counts (a corrupt or hostile server).
MAX_PLAUSIBLE_TOKENS = 10**12

DEFAULT_API_BASE = "http://localhost:8000/v1"

# A 1x1 white PNG: the cheapest image that tells whether a model accepts images at all.
ONE_PIXEL_PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Connect fast, but let a stream wait long for its first token: a big prompt on a
    loaded 16 GB GPU can take a minute or more. Never infinite; seconds.

    ``read`` bounds one silent socket read; it alone cannot stop a server that sends a
    keep-alive comment or one byte every few seconds, so ``first_token`` (from sending a
    chat request to its first content or reasoning token), ``progress`` (the longest gap
    between two tokens once the answer streams) and ``reply`` (a whole non-streamed reply:
    model list, embeddings, probes, error bodies) are deadlines that only tokens, or the
    end of the reply, satisfy."""

    connect: float = 10.0
    read: float = 180.0
    write: float = 60.0
    pool: float = 10.0
    first_token: float = 300.0
    progress: float = 120.0
    reply: float = 300.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


class _DeadlinePassed(Exception):
    """Internal: a first-token, progress or reply deadline passed."""


async def _until(deadline: float, aw: Awaitable[T]) -> T:
    """``await aw``, cancelling it at ``deadline`` (``time.monotonic()``) with
    :class:`_DeadlinePassed`. Runs in the caller's task (httpx needs that)."""
    delay = deadline - time.monotonic()
    if delay <= 0:
        if hasattr(aw, "close"):
            aw.close()  # type: ignore[union-attr]  # an un-awaited coroutine: no warning
        raise _DeadlinePassed
    try:
        async with asyncio.timeout(delay) as cm:
            return await aw
    except TimeoutError:
        if cm.expired():
            raise _DeadlinePassed from None
        raise


class _Watch:
    """A deadline over every read of a stream, with one timer instead of one per read.

    ``deadline()`` is read again when the timer fires, so a token that moves it on costs a
    float, not a timer (``asyncio.timeout`` per read is a Qt timer started and killed per
    token on qasync: a fifth of the stream's CPU at thousands of tokens a second). The
    timer only cancels while a read is pending, and the cancel surfaces there as
    :class:`_DeadlinePassed`; a cancel from elsewhere (Stop) stays a cancel."""

    __slots__ = ("_deadline", "_loop", "_task", "_handle", "_reading", "_fired")

    def __init__(self, deadline: Callable[[], float]) -> None:
        self._deadline = deadline
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._reading = False
        self._fired = False

    async def read(self, aw: Awaitable[T]) -> T:
        when = self._deadline()
        if when <= time.monotonic():
            if hasattr(aw, "close"):
                aw.close()  # type: ignore[union-attr]  # an un-awaited coroutine: no warning
            raise _DeadlinePassed
        self._task = asyncio.current_task()
        if self._handle is None:
            self._arm(when)
        self._reading = True
        try:
            return await aw
        except asyncio.CancelledError:
            if self._fired and self._task is not None:
                self._fired = False
                if self._task.uncancel() == 0:
                    raise _DeadlinePassed from None
            raise
        finally:
            self._reading = False

    def _arm(self, when: float) -> None:
        self._handle = self._loop.call_later(max(0.0, when - time.monotonic()), self._fire)

    def _fire(self) -> None:
        self._handle = None
        if not self._reading or self._task is None:
            return  # the next read arms it again
        when = self._deadline()
        if when > time.monotonic():
            self._arm(when)  # tokens came meanwhile
            return
        self._fired = True
        self._task.cancel()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole, size-capped HTTP reply."""

    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


def body_too_large(what: str, cap: int, *, partial_text: str = "") -> E.BodyTooLarge:
    """The error for a body (or one stream line) that passed its cap."""
    size = f"{cap // MiB} MB" if cap >= MiB else f"{cap // KiB} KB"
    return E.BodyTooLarge(
        f"The server's {what} is larger than {size}; kanoa desktop stopped reading it there.",
        "Check that the address points at the right server: a misconfigured server or "
        "proxy is sending data without end."
        + (" The text received so far is kept." if partial_text else ""),
        kind=what,
        cap_bytes=cap,
        partial_text=partial_text,
    )


async def read_capped(
    resp: httpx.Response, cap: int, what: str, *, truncate: bool = False
) -> bytes:
    """The body of a streamed ``resp``, read up to ``cap`` bytes.

    Raises :class:`~kanoa_desktop.core.endpoint.errors.BodyTooLarge` as soon as the body
    (or its declared length) passes ``cap``; nothing past the cap is kept. With
    ``truncate`` (error bodies, whose start says enough) it returns the first ``cap``
    bytes instead and stops reading."""
    declared = resp.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > cap:
        raise body_too_large(what, cap)
    buf = bytearray()
    async with contextlib.aclosing(resp.aiter_bytes()) as chunks:
        async for chunk in chunks:
            buf += chunk
            if len(buf) > cap:
                if truncate:
                    return bytes(buf[:cap])
                raise body_too_large(what, cap)
    return bytes(buf)


def token_count(value: Any) -> int | None:
    """A usage figure if it is a plausible token count (an integer from 0 to 10^12,
    possibly written as a float), else None: NaN, infinities, negatives, 10^35, strings
    and booleans are unknown, never shown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_PLAUSIBLE_TOKENS:
        return value
    return None


def _finite_timings(timings: dict[str, Any]) -> dict[str, Any]:
    # llama.cpp's timings go to the status bar and history: keep finite numbers only.
    return {
        k: v
        for k, v in timings.items()
        if isinstance(k, str)
        and (
            isinstance(v, str | bool)
            or (isinstance(v, int | float) and math.isfinite(v) and v >= 0)
        )
    }


def runaway_limit(max_tokens: int | None) -> int:
    """Tokens after which a stream that ignores ``max_tokens`` is stopped."""
    base = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else UNBOUNDED_MAX_TOKENS
    return int(base * RUNAWAY_FACTOR) + RUNAWAY_SLACK_TOKENS


REASONING_ONLY_NOTICE = (
    "The model only reasoned and gave no answer: it was probably cut by the max tokens "
    "limit while thinking. Its reasoning is shown folded; raise Max tokens and ask again."
)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    context_length: int | None = None  # None: the server did not say
    owned_by: str = ""
    root: str | None = None
    parent: str | None = None


HealthState = Literal["ok", "loading", "down"]


@dataclass(frozen=True, slots=True)
class Health:
    state: HealthState
    latency_s: float | None
    detail: str = ""  # plain words: why down, or what answered

    @property
    def reachable(self) -> bool:
        return self.state != "down"


@dataclass(frozen=True, slots=True)
class ServerInfo:
    kind: Literal["vllm", "llama.cpp", "ollama", "other"]
    version: str | None = None


class ChatClient:
    """A client for one OpenAI-compatible server. Create once, reuse, ``await aclose()``."""

    def __init__(
        self,
        api_base: str = DEFAULT_API_BASE,
        *,
        api_key: str | None = None,
        timeouts: Timeouts | None = None,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
        start_hint: str | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        # What to do when nothing listens (the profile's kind of server: see
        # kanoa_desktop.core.config.profiles.start_server_hint); None: a general sentence.
        self.start_hint = start_hint
        self.root = root_url(self.api_base)
        self.timeouts = timeouts or Timeouts()
        self._api_key = api_key or None
        remember_secret(self._api_key)  # scrubbed from every error and log from now on
        headers = {"User-Agent": "kanoa-desktop"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        verify_arg = shared_verify(verify)  # one TLS context for all clients (tls.py)
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=4)
        # Defense in depth behind the per-kind caps: no response on this client, however
        # it is read (a router's /workers too), passes TRANSPORT_CAP bytes.
        capped = (
            CappedTransport(transport, max_body_bytes=TRANSPORT_CAP)
            if transport is not None
            else CappedTransport(max_body_bytes=TRANSPORT_CAP, verify=verify_arg, limits=limits)
        )
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=self.timeouts.httpx(),
            verify=verify_arg,
            transport=capped,
            limits=limits,
            follow_redirects=False,  # a redirect is reported (E.Redirected), never followed
        )
        self._models_cache: list[ModelInfo] | None = None
        self._image_tokens: dict[str, int | None] = {}  # model -> measured figure cost
        # Set by E.PromptCacheFault (llama.cpp "Chunk not found"): requests with figures
        # then ask the server not to reuse its prompt cache, which avoids the fault.
        self._no_prompt_cache = False

    def __repr__(self) -> str:  # never the key
        key = "set" if self._api_key else "none"
        return f"ChatClient(api_base={self.api_base!r}, api_key={key})"

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def closed(self) -> bool:
        return self._http.is_closed

    # -- helpers ------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.api_base}/{path.lstrip('/')}"

    def _network_error(
        self, exc: Exception, *, partial_text: str = "", streaming: bool = False
    ) -> E.KanoaError:
        return network_error(
            exc,
            self.api_base,
            partial_text=partial_text,
            streaming=streaming,
            secret=self._api_key,
            start_hint=self.start_hint,
        )

    def _send_error(self, exc: Exception, body_bytes: int) -> E.KanoaError:
        """A network error while a request was sent. A server that refuses a body over its
        size limit may answer 413 and close the connection before the body is all sent
        (llama.cpp does): the client then sees only the connection drop."""
        err = self._network_error(exc)
        if body_bytes < LARGE_BODY or isinstance(
            err, E.ConnectionRefused | E.DnsFailure | E.TlsFailure | E.ConnectTimeout
        ):
            return err
        return E.RequestTooLarge(
            f"The server closed the connection while a {body_bytes / MiB:,.0f} MB request was "
            "being sent: it is probably larger than the server accepts.",
            "Send fewer figures, or lower 'Image long side' in Settings > Images.",
            detail=err.message,
        )

    def _status_error(
        self, reply: Reply | httpx.Response, body: bytes, *, model: str = "", partial_text=""
    ) -> E.KanoaError:
        return E.error_from_status(
            reply.status_code,
            body,
            model=model,
            api_base=self.api_base,
            partial_text=partial_text,
            headers=reply.headers,
        )

    async def _send(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        """Send, retrying once when a pooled keep-alive connection turns out to have been
        closed by the server: it answers nothing ("Server disconnected without sending a
        response"), so the request was not served and sending it again is safe."""
        try:
            return await self._http.send(request, stream=stream)
        except httpx.RemoteProtocolError:
            return await self._http.send(request, stream=stream)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        kind: str,
        what: str,
        body: bytes | None = None,
        read_s: float | None = None,
    ) -> Reply:
        """One whole request with a capped body (``BODY_CAPS[kind]``, or the error cap for
        a non-2xx reply) and an overall deadline (``Timeouts.reply``; with ``read_s``, a
        shorter per-read timeout, at most three times that).

        Transport failures raise the matching KanoaError; HTTP statuses are returned."""
        headers = {"Content-Type": "application/json"} if body is not None else None
        request = self._http.build_request(
            method,
            url,
            content=body,
            headers=headers,
            timeout=self._http.timeout if read_s is None else read_s,
        )
        budget = self.timeouts.reply if read_s is None else min(self.timeouts.reply, read_s * 3)
        deadline = time.monotonic() + budget

        async def go() -> Reply:
            resp = await self._send(request, stream=True)
            try:
                ok = 200 <= resp.status_code < 300
                cap = BODY_CAPS[kind] if ok else BODY_CAPS["error"]
                content = await read_capped(
                    resp, cap, what if ok else "error reply", truncate=not ok
                )
            finally:
                await resp.aclose()
            return Reply(resp.status_code, resp.headers, content)

        try:
            return await _until(deadline, go())
        except _DeadlinePassed:
            raise E.ReadTimeout(
                f"The server at {self.api_base} took more than {budget:.0f} s to send its "
                f"{what}, though it kept the connection open.",
                "The server may be overloaded or misbehaving; try again later.",
            ) from None
        except httpx.HTTPError as exc:
            raise self._network_error(exc) from None

    # -- models, health, server -----------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        """The models the server serves, each with its context length when it tells."""
        resp = await self._request("GET", self._url("models"), kind="models", what="model list")
        if resp.status_code != 200:
            raise self._status_error(resp, resp.content)
        try:
            data = resp.json()
            if "data" not in data and isinstance(data.get("models"), list):
                # A vLLM router with --enable-igw: {"models": ["name", ...]}.
                data = {"data": [m if isinstance(m, dict) else {"id": m} for m in data["models"]]}
            entries = data["data"]
            if not isinstance(entries, list):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise E.ProtocolError(
                f"{self._url('models')} did not answer with a model list.",
                "Check that the API base URL points at an OpenAI-compatible server (ending in /v1).",
                detail=resp.text[:300],
            ) from None
        out = [parse_model_entry(e) for e in entries if isinstance(e, dict) and "id" in e]
        self._models_cache = out
        return out

    @property
    def is_llamacpp(self) -> bool:
        """The model list said llama.cpp's server (``owned_by: "llamacpp"``)."""
        return bool(self._models_cache) and self._models_cache[0].owned_by == "llamacpp"

    async def listening(self, timeout_s: float = 2.0) -> bool | None:
        """Whether the server's address answers HTTP at all right now: True (any status),
        False when nothing listens there (the connection is refused: the server is gone),
        None when it cannot be told (a timeout, a network error). Never raises."""
        try:
            await self._request(
                "GET", f"{self.root}/health", kind="json", what="health reply", read_s=timeout_s
            )
        except E.ConnectionRefused:
            return False
        except E.KanoaError:
            return None
        return True

    async def metrics_text(self, timeout_s: float = 2.0) -> str | None:
        """The server's ``/metrics`` page (Prometheus text), or None when it has none or did
        not answer in time. Never raises."""
        try:
            reply = await self._request(
                "GET", f"{self.root}/metrics", kind="json", what="metrics page", read_s=timeout_s
            )
        except E.KanoaError:
            return None
        return reply.text if reply.status_code == 200 else None

    async def health(self) -> Health:
        """reachable (ok) / loading / down, with the round-trip latency.

        vLLM and llama.cpp answer ``/health``; servers without it (Ollama,
        llama-cpp-python) are checked through ``/v1/models``.
        """
        quick = min(self.timeouts.connect, 10.0)
        t0 = time.monotonic()
        try:
            resp = await self._request(
                "GET", f"{self.root}/health", kind="json", what="health reply", read_s=quick
            )
        except E.KanoaError as err:
            detail = err.message
            if isinstance(err, E.ConnectionRefused):
                detail += " (vLLM opens its port only once the model has loaded.)"
            return Health("down", None, detail)
        latency = time.monotonic() - t0
        if resp.status_code == 200:
            return Health("ok", latency, "/health answered")
        if 300 <= resp.status_code < 400:
            err = self._status_error(resp, resp.content)
            return Health("down", latency, f"{err.message} {err.hint}".strip())
        if resp.status_code == 503:
            message, fields = E.parse_error_body(resp.content)
            if "loading" in message.lower() or fields.get("type") == "unavailable_error":
                return Health("loading", latency, "The server is loading the model.")
            if message.startswith("Unhealthy servers"):
                # A vLLM router answers 503 while any one server behind it is down.
                router = await fetch_router_status(self._http, self.root)
                if router is not None:
                    state = "ok" if router.healthy else "down"
                    return Health(state, latency, router.summary())
            return Health("down", latency, "The server's engine is not running (503 on /health).")
        # No /health here: ask for the model list instead.
        t0 = time.monotonic()
        try:
            resp = await self._request(
                "GET", self._url("models"), kind="models", what="model list", read_s=quick
            )
        except E.KanoaError as err:
            return Health("down", None, err.message)
        latency = time.monotonic() - t0
        if resp.status_code == 200:
            return Health("ok", latency, "/v1/models answered")
        if resp.status_code == 503:
            return Health("loading", latency, "The server is loading the model.")
        if resp.status_code in (401, 403):
            return Health("ok", latency, "The server answers but needs an API key.")
        if 300 <= resp.status_code < 400 or resp.status_code == 429:
            err = self._status_error(resp, resp.content)
            return Health("down", latency, f"{err.message} {err.hint}".strip())
        return Health("down", latency, f"The server answered {resp.status_code} to /v1/models.")

    async def router_status(self) -> RouterStatus | None:
        """A vLLM router's workers (health, load, model) when this address is a router;
        None for a plain server."""
        return await fetch_router_status(self._http, self.root)

    async def _json_or_none(self, url: str) -> Any:
        """The JSON of a small optional GET (``/version``, ``/props``), or None."""
        try:
            resp = await self._request("GET", url, kind="json", what="reply", read_s=5.0)
            return resp.json() if resp.status_code == 200 else None
        except (E.KanoaError, ValueError, RecursionError):
            return None

    async def server_info(self) -> ServerInfo:
        """Which kind of server this is, and its version when it tells."""
        owned = ""
        try:
            models = self._models_cache if self._models_cache is not None else await self.models()
            owned = models[0].owned_by if models else ""
        except E.KanoaError:
            pass
        data = await self._json_or_none(f"{self.root}/version")
        version = None
        if isinstance(data, dict) and data.get("version"):
            version = str(data["version"])[:100]
        if owned == "vllm" or (version and not owned):
            return ServerInfo("vllm", version)
        if owned == "llamacpp":
            props = await self._json_or_none(f"{self.root}/props")
            build = props.get("build_info") if isinstance(props, dict) else None
            return ServerInfo("llama.cpp", str(build)[:100] if build else None)
        data = await self._json_or_none(f"{self.root}/api/version")
        if isinstance(data, dict) and "version" in data:
            return ServerInfo("ollama", str(data["version"])[:100])
        return ServerInfo("other", version)

    async def embeddings(self, model: str, texts: list[str]) -> list[list[float]]:
        """Vectors for ``texts`` from ``POST /v1/embeddings`` (vLLM, llama.cpp with
        ``--embeddings``, Ollama), in the order given."""
        body = json.dumps({"model": model, "input": list(texts)}).encode()
        resp = await self._request(
            "POST", self._url("embeddings"), kind="embeddings", what="embeddings reply", body=body
        )
        if resp.status_code != 200:
            raise self._status_error(resp, resp.content, model=model)
        try:
            items = sorted(resp.json()["data"], key=lambda d: d.get("index", 0))
            vectors = [[float(x) for x in item["embedding"]] for item in items]
            if not all(math.isfinite(x) for v in vectors for x in v):
                raise ValueError("non-finite value in an embedding")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise E.ProtocolError(
                "The server's embeddings reply is not in the OpenAI format.",
                "Turn hybrid search off in Settings > Knowledge base, or check the model.",
                detail=resp.text[:300],
            ) from None
        if len(vectors) != len(texts):
            raise E.ProtocolError(
                f"The server returned {len(vectors)} embeddings for {len(texts)} texts.",
                "Turn hybrid search off in Settings > Knowledge base.",
            )
        return vectors

    async def probe_vision(self, model: str) -> bool:
        """Send a one-pixel image: True if the model accepted it, False if it cannot see.

        Other failures (server down, bad key) raise, since they say nothing about vision.
        llama.cpp says it itself (``/props`` ``modalities.vision``): no probe is sent then.
        """
        if self._models_cache and self._models_cache[0].owned_by == "llamacpp":
            props = await self._json_or_none(f"{self.root}/props")
            modalities = props.get("modalities") if isinstance(props, dict) else None
            if isinstance(modalities, dict) and isinstance(modalities.get("vision"), bool):
                return modalities["vision"]
        resp = await self._one_token_reply(
            model, [user_message("Reply with one word.", [ONE_PIXEL_PNG])]
        )
        if resp.status_code == 200:
            return True
        err = self._status_error(resp, resp.content, model=model)
        if isinstance(err, E.VisionUnsupported):
            return False
        if isinstance(err, E.TooManyImages):
            return True
        raise err

    async def _one_token_reply(self, model: str, messages: list) -> httpx.Response:
        """A non-streamed, one-token, deterministic chat request (the probes' shape); the
        response as it came, capped like any JSON body. The caller reads its status."""
        req = ChatRequest(model=model, messages=messages, max_tokens=1, temperature=0.0)
        return await self._request(
            "POST",
            self._url("chat/completions"),
            kind="json",
            what="reply",
            body=json.dumps(req.payload(stream=False)).encode(),
        )

    async def image_token_cost(self, model: str) -> int | None:
        """Prompt tokens one figure costs ``model`` on this server, measured once per client
        (two one-token requests, see :mod:`~kanoa_desktop.core.endpoint.vision`) and then
        remembered. None when the model cannot see or the server reports no usage; other
        failures (server down, bad key) raise."""
        if model in self._image_tokens:
            return self._image_tokens[model]
        counts: list[int | None] = []
        for with_figure in (False, True):
            resp = await self._one_token_reply(model, V.probe_messages(with_figure))
            if resp.status_code != 200:
                err = self._status_error(resp, resp.content, model=model)
                if isinstance(err, E.VisionUnsupported):
                    self._image_tokens[model] = None
                    return None
                raise err
            try:
                counts.append(V.prompt_tokens_of(resp.json()))
            except ValueError:
                counts.append(None)
        self._image_tokens[model] = cost = V.image_tokens(counts[1], counts[0])
        return cost

    def measured_image_tokens(self, model: str) -> int | None:
        """What :meth:`image_token_cost` measured for ``model`` (no request; None when it
        has not been measured, or could not be)."""
        return self._image_tokens.get(model)

    # -- streaming ------------------------------------------------------------------------

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Stream one chat completion as typed events (see :mod:`~kanoa_desktop.core.endpoint.events`).

        Raises a :class:`KanoaError` on failure, with the text received so far in
        ``partial_text``. Cancelling the consuming task, or closing the generator, closes
        the connection so the server stops generating. The first token must come within
        ``Timeouts.first_token`` and each next one within ``Timeouts.progress``
        (:class:`E.FirstTokenTimeout`, :class:`E.ProgressTimeout`); a stream that runs
        past ``runaway_limit(request.max_tokens)`` tokens is cut and finished with
        ``finish_reason="length"`` and a ``max_tokens_ignored`` notice.
        """
        payload = request.payload(stream=True)
        if self._no_prompt_cache and request.n_images:
            payload["cache_prompt"] = False  # llama.cpp only; see E.PromptCacheFault
        if self.is_llamacpp:
            # llama.cpp streams how far it has read the prompt (PromptProgress); other
            # servers may refuse an unknown field, so only llama.cpp is asked.
            payload["return_progress"] = True
        body = json.dumps(payload).encode()
        url = self._url("chat/completions")
        to = self.timeouts
        line_cap = BODY_CAPS["sse_line"]
        limit = runaway_limit(request.max_tokens)
        text_parts: list[str] = []
        reasoning_parts: list[str] = []
        usage: dict[str, Any] | None = None
        timings: dict[str, Any] = {}
        reported: tuple[int, int | None] | None = None  # the last usage yielded as it came
        finish_reason: str | None = None
        notices: list[Notice] = []
        content_chunks = 0
        token_chunks = 0  # content and reasoning chunks: what max_tokens counts
        chars = 0
        first_seen = False
        done = False
        last_token = 0.0

        def partial() -> str:
            return "".join(text_parts)

        def deadline() -> float:
            return last_token + to.progress if first_seen else t_sent + to.first_token

        def stalled() -> E.KanoaError:
            if first_seen:
                return E.ProgressTimeout(
                    f"The answer stalled: no new token for {to.progress:.0f} s "
                    "(the server kept the connection open without sending any).",
                    "The text received so far is kept; Retry asks again. The limit is "
                    "'Progress timeout' in Settings > Endpoint.",
                    partial_text=partial(),
                )
            return E.FirstTokenTimeout(
                f"The server sent no answer within {to.first_token:.0f} s of the question "
                "(it kept the connection open without sending a token).",
                "The server may be overloaded, or the prompt very long; try again, or raise "
                "'First-token timeout' in Settings > Endpoint.",
            )

        t_sent = time.monotonic()
        yield RequestSent(t_sent, url, request.model, request.n_images, len(body), payload)
        http_request = self._http.build_request(
            "POST", url, content=body, headers={"Content-Type": "application/json"}
        )
        try:
            resp = await _until(deadline(), self._send(http_request, stream=True))
        except _DeadlinePassed:
            raise stalled() from None
        except httpx.HTTPError as exc:
            raise self._send_error(exc, len(body)) from None
        watch = _Watch(deadline)  # one timer for the stream's reads
        try:
            if resp.status_code != 200:
                try:
                    raw = await _until(
                        deadline(),
                        read_capped(resp, BODY_CAPS["error"], "error reply", truncate=True),
                    )
                except _DeadlinePassed:
                    raw = b""  # the status says enough
                err = self._status_error(resp, raw, model=request.model)
                if isinstance(err, E.PromptCacheFault):
                    self._no_prompt_cache = True  # so that Retry works
                raise await refine_router_error(self._http, self.root, err, request.model)
            ctype = resp.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                # A server that ignored stream=true: take its whole answer as one piece.
                try:
                    raw = await _until(
                        t_sent + max(to.first_token, to.reply),
                        read_capped(resp, BODY_CAPS["json"], "reply"),
                    )
                except _DeadlinePassed:
                    raise stalled() from None
                for ev in self._non_streamed(raw, t_sent, request):
                    yield ev
                return
            # aclosing: leaving early ([DONE], an error, the runaway cut) closes both
            # generators here, inside this task, not later in the garbage collector.
            async with (
                contextlib.aclosing(resp.aiter_bytes()) as chunks,
                contextlib.aclosing(
                    iter_sse(chunks, max_line_bytes=line_cap, max_event_bytes=line_cap)
                ) as events,
            ):
                while True:
                    try:
                        sse = await watch.read(anext(events))
                    except StopAsyncIteration:
                        break
                    except _DeadlinePassed:
                        if done:
                            break  # [DONE] came; the server just did not close
                        raise stalled() from None
                    if isinstance(sse, SseComment):
                        continue  # keep-alive: bytes, not progress
                    data = sse.data
                    if not data:
                        continue
                    if data.strip() == "[DONE]":
                        # Read on to the end of the body (servers end it right after
                        # [DONE]) rather than break: leaving httpx's nested byte
                        # iterators half-read hands their closing to the GC.
                        done = True
                        continue
                    if done:
                        continue
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        raise E.ProtocolError(
                            "The server sent a piece of the answer that is not JSON.",
                            "The text received so far is kept. Check the server version; "
                            "retrying may help.",
                            detail=data[:300],
                            partial_text=partial(),
                        ) from None
                    except RecursionError:
                        raise E.ProtocolError(
                            "The server sent a piece of the answer nested too deeply to read.",
                            "The text received so far is kept.",
                            partial_text=partial(),
                        ) from None
                    if not isinstance(chunk, dict):
                        continue
                    if "error" in chunk:
                        message, fields = E.parse_error_body(json.dumps(chunk))
                        code = fields.get("code")
                        raise E.StreamError(
                            f"The server failed while answering: "
                            f"{message[: E.MAX_MESSAGE_CHARS] or 'no reason given'}.",
                            "The text received so far is kept; Retry asks again.",
                            status=code if isinstance(code, int) else None,
                            detail=message[: E.MAX_MESSAGE_CHARS],
                            partial_text=partial(),
                        )
                    progress = chunk.get("prompt_progress")
                    if isinstance(progress, dict) and not first_seen:
                        ev = _prompt_progress(progress)
                        if ev is not None:
                            yield ev
                    live = chunk.get("usage"), chunk.get("timings")
                    if isinstance(live[0], dict):
                        usage = live[0]
                    if isinstance(live[1], dict):
                        timings = live[1]
                    choices = chunk.get("choices")
                    for choice in choices if isinstance(choices, list) else ():
                        if not isinstance(choice, dict):
                            continue
                        delta = choice.get("delta")
                        delta = delta if isinstance(delta, dict) else {}
                        reasoning = delta.get("reasoning") or delta.get("reasoning_content")
                        content = delta.get("content")
                        reasoning = reasoning if isinstance(reasoning, str) else ""
                        content = content if isinstance(content, str) else ""
                        if (reasoning or content) and not first_seen:
                            first_seen = True
                            now = time.monotonic()
                            yield FirstToken(now, now - t_sent)
                        if reasoning:
                            reasoning = replace_surrogates(reasoning)
                            reasoning_parts.append(reasoning)
                            token_chunks += 1
                            chars += len(reasoning)
                            last_token = time.monotonic()
                            yield ReasoningDelta(last_token, reasoning)
                        if content:
                            content = replace_surrogates(content)
                            content_chunks += 1
                            token_chunks += 1
                            chars += len(content)
                            text_parts.append(content)
                            last_token = time.monotonic()
                            yield TextDelta(last_token, content)
                        reason = choice.get("finish_reason")
                        if isinstance(reason, str) and reason:
                            finish_reason = reason[:40]
                    counts = _server_counts(*live)
                    if counts is not None and counts[1] is not None:
                        # As it comes (every chunk when the server sends usage per chunk):
                        # an answer stopped halfway keeps the server's own count.
                        reported = counts
                        yield Usage(time.monotonic(), *counts, False, _finite_timings(timings))
                    if max(token_chunks, chars // RUNAWAY_CHARS_PER_TOKEN) > limit:
                        # The server ignores max_tokens: stop reading (closing the
                        # response makes it stop generating) and say so.
                        asked = request.max_tokens or UNBOUNDED_MAX_TOKENS
                        notices.append(
                            Notice(
                                "max_tokens_ignored",
                                f"The server kept generating past the {asked:,}-token limit; "
                                "kanoa desktop stopped reading the answer there.",
                            )
                        )
                        finish_reason, done, usage = "length", True, None
                        break
        except E.KanoaError:
            raise
        except SseTooLarge as exc:
            raise body_too_large(
                "stream (one line)" if exc.what == "line" else "stream (one event)",
                exc.cap,
                partial_text=partial(),
            ) from None
        except httpx.HTTPError as exc:
            raise self._network_error(exc, partial_text=partial(), streaming=first_seen) from None
        finally:
            watch.close()
            await resp.aclose()

        if not done and finish_reason is None:
            raise E.StreamTruncated(
                "The answer stopped before the server said it was finished.",
                "The text received so far is kept; Retry asks again.",
                partial_text=partial(),
            )
        text = partial()
        reasoning_text = "".join(reasoning_parts)
        if not text.strip() and reasoning_text.strip():
            notices.append(Notice("reasoning_only", REASONING_ONLY_NOTICE))
        now = time.monotonic()
        final = self._usage_event(now, usage, timings, request, content_chunks, text)
        if reported != (final.prompt_tokens, final.completion_tokens) or final.estimated:
            yield final  # not said already as it came
        yield Finished(now, finish_reason, text, reasoning_text, tuple(notices))

    def _usage_event(
        self,
        now: float,
        usage: dict[str, Any] | None,
        timings: dict[str, Any],
        request: ChatRequest,
        content_chunks: int,
        text: str,
    ) -> Usage:
        """The server's usage when its figures are plausible token counts; otherwise
        llama.cpp's timings; otherwise (or for the figure that is not) an estimate."""
        timings = _finite_timings(timings)
        estimate_out = max(content_chunks, estimate_text_tokens(text) if not content_chunks else 0)
        counts = _server_counts(usage, timings)
        if counts is not None and counts[1] is not None:
            return Usage(now, *counts, estimated=False, server_timings=timings)
        if counts is not None:
            return Usage(now, counts[0], estimate_out, estimated=True, server_timings=timings)
        return Usage(now, estimate_message_tokens(request.messages), estimate_out, True, timings)

    def _non_streamed(self, raw: bytes, t_sent: float, request: ChatRequest) -> list[StreamEvent]:
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            message = choice["message"]
            text = message.get("content") or ""
            reasoning = message.get("reasoning") or message.get("reasoning_content") or ""
            if not isinstance(text, str) or not isinstance(reasoning, str):
                raise TypeError
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
            raise E.ProtocolError(
                "The server did not stream and its reply is not a chat completion.",
                "Check that the API base URL points at an OpenAI-compatible server.",
                detail=raw[:300].decode("utf-8", "replace"),
            ) from None
        text, reasoning = replace_surrogates(text), replace_surrogates(reasoning)
        now = time.monotonic()
        events: list[StreamEvent] = [FirstToken(now, now - t_sent)]
        if reasoning:
            events.append(ReasoningDelta(now, reasoning))
        if text:
            events.append(TextDelta(now, text))
        usage = data.get("usage")
        events.append(
            self._usage_event(now, usage if isinstance(usage, dict) else None, {}, request, 0, text)
        )
        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        notices = (
            (Notice("reasoning_only", REASONING_ONLY_NOTICE),)
            if reasoning.strip() and not text.strip()
            else ()
        )
        events.append(
            Finished(now, reason if isinstance(reason, str) else None, text, reasoning, notices)
        )
        return events


def _prompt_progress(progress: dict[str, Any]) -> PromptProgress | None:
    """llama.cpp's ``prompt_progress`` ({total, cache, processed, time_ms}) as an event."""
    total, processed = token_count(progress.get("total")), token_count(progress.get("processed"))
    if total is None or processed is None or total <= 0:
        return None
    cached = token_count(progress.get("cache")) or 0
    return PromptProgress(time.monotonic(), min(processed, total), total, min(cached, total))


def _server_counts(usage: Any, timings: Any) -> tuple[int, int | None] | None:
    """The server's (prompt, completion) tokens from a usage object, else from llama.cpp's
    timings (exact even without usage); completion None when only the prompt is counted;
    None when neither counts."""
    prompt = completion = None
    if isinstance(usage, dict) and usage:
        prompt = token_count(usage.get("prompt_tokens"))
        completion = (
            token_count(usage.get("completion_tokens"))
            if "completion_tokens" in usage
            else (0 if prompt is not None else None)
        )
    if prompt is None and isinstance(timings, dict):
        # prompt_n counts what was computed; with cache_n, the whole prompt, as usage does.
        prompt, cached = (
            token_count(timings.get("prompt_n")),
            token_count(timings.get("cache_n", 0)),
        )
        prompt = prompt + (cached or 0) if prompt is not None else None
        completion = token_count(timings.get("predicted_n", 0)) if prompt is not None else None
    return None if prompt is None else (prompt, completion)


def _context_length(value: Any) -> int | None:
    # A context window is a positive integer of plausible size; anything else is unknown.
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 1 << 40:
        return value
    return None


def parse_model_entry(entry: dict[str, Any]) -> ModelInfo:
    ctx = _context_length(entry.get("max_model_len"))
    if ctx is None:
        meta = entry.get("meta")
        ctx = _context_length(meta.get("n_ctx")) if isinstance(meta, dict) else None
    if ctx is None:
        ctx = _context_length(entry.get("context_length"))
    root, parent = entry.get("root"), entry.get("parent")
    return ModelInfo(
        id=str(entry["id"]),
        context_length=ctx,
        owned_by=str(entry.get("owned_by") or ""),
        root=root if isinstance(root, str) else None,
        parent=parent if isinstance(parent, str) else None,
    )


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def network_error(
    exc: Exception,
    api_base: str,
    *,
    partial_text: str = "",
    streaming: bool = False,
    secret: str | None = None,
    start_hint: str | None = None,
) -> E.KanoaError:
    """Map an httpx transport exception to the matching :class:`KanoaError`. ``start_hint``
    is the hint when nothing listens (how to start that server)."""
    where = api_base
    text = " ".join(str(e) for e in _chain(exc)).lower()
    detail = E.scrub(str(exc) or type(exc).__name__, secret)
    kw: dict[str, Any] = {"detail": detail, "partial_text": partial_text}
    if isinstance(exc, BodyCapExceeded):
        return E.BodyTooLarge(
            f"The server at {where} sent a reply without end: {exc}.",
            "Check that the address points at the right server."
            + (" The text received so far is kept." if partial_text else ""),
            kind="reply",
            cap_bytes=TRANSPORT_CAP,
            **kw,
        )
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return E.ConnectTimeout(
            f"Connecting to {where} timed out.",
            "Check that the server is running and that the address and port are right; "
            "a firewall or VPN may be in the way.",
            **kw,
        )
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
        return E.ReadTimeout(
            f"The server at {where} stopped answering (no data for the read timeout).",
            "The server may be overloaded; try again or raise the request timeout in the profile.",
            **kw,
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return E.BadRequest(
            f"'{where}' is not a valid server address.",
            "Use a URL such as http://localhost:8000/v1.",
            **kw,
        )
    if (
        any(isinstance(e, ssl.SSLError) for e in _chain(exc))
        or "certificate" in text
        or "ssl" in text
    ):
        return E.TlsFailure(
            f"The secure connection to {where} failed: {detail}.",
            "If the server uses a private certificate, set its CA bundle in Settings > Endpoint.",
            **kw,
        )
    if any(
        s in text
        for s in (
            "name or service not known",
            "nodename nor servname",
            "getaddrinfo",
            "name resolution",
            "no address associated",
        )
    ):
        return E.DnsFailure(
            f"The host in {where} could not be found.",
            "Check the spelling of the server's name, or use its IP address.",
            **kw,
        )
    if "connection refused" in text or any(
        isinstance(e, ConnectionRefusedError) for e in _chain(exc)
    ):
        return E.ConnectionRefused(
            f"Nothing is listening at {where}.",
            start_hint
            or "Start the model server, or check the address and port in Settings > Endpoint.",
            **kw,
        )
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError) and (streaming or partial_text):
        return E.StreamTruncated(
            "The connection closed in the middle of the answer.",
            "The text received so far is kept; Retry asks again.",
            **kw,
        )
    return E.ConnectionFailed(
        f"The connection to {where} failed: {detail}.",
        "Check that the server is running and reachable.",
        **kw,
    )


async def collect(client: ChatClient, request: ChatRequest) -> list[StreamEvent]:
    """Run a stream to its end and return every event (for scripts and tests)."""
    events: list[StreamEvent] = []
    gen = client.stream_chat(request)
    try:
        async for ev in gen:
            events.append(ev)
    finally:
        await gen.aclose()
    return events


__all__ = [
    "BODY_CAPS",
    "ChatClient",
    "Reply",
    "read_capped",
    "runaway_limit",
    "token_count",
    "Health",
    "ModelInfo",
    "ServerInfo",
    "Timeouts",
    "collect",
    "network_error",
    "root_url",
    "DEFAULT_API_BASE",
]
