"""Async client for OpenAI-compatible servers: vLLM, llama.cpp, Ollama and the like.

One :class:`ChatClient` owns one long-lived ``httpx.AsyncClient`` (a connection pool), so
successive questions reuse connections. Every failure surfaces as a
:class:`~kanoa_desktop.core.endpoint.errors.KanoaError`; text already streamed travels on it.

Streams are async generators. Consume them with ``contextlib.aclosing`` (or let a task be
cancelled): closing the generator closes the HTTP response at once, which makes vLLM and
llama.cpp abort the request instead of generating into the void.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from httpx_sse import EventSource, SSEError

from kanoa_desktop.core.ask.tokens import estimate_message_tokens, estimate_text_tokens
from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.core.endpoint.events import (
    Finished,
    FirstToken,
    ReasoningDelta,
    RequestSent,
    StreamEvent,
    TextDelta,
    Usage,
)

DEFAULT_API_BASE = "http://localhost:8000/v1"

# A 1x1 white PNG: the cheapest image that tells whether a model accepts images at all.
ONE_PIXEL_PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Connect fast, but let a stream wait long for its next token: a big prompt on a
    loaded 16 GB GPU can take a minute before the first one. Never infinite."""

    connect: float = 10.0
    read: float = 180.0
    write: float = 60.0
    pool: float = 10.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


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


def root_url(api_base: str) -> str:
    """The server root for an API base: ``http://h:8000/v1`` -> ``http://h:8000``."""
    base = api_base.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base


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
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.root = root_url(self.api_base)
        self.timeouts = timeouts or Timeouts()
        self._api_key = api_key or None
        headers = {"User-Agent": "kanoa-desktop"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        verify_arg: bool | ssl.SSLContext = verify
        if isinstance(verify, str):
            verify_arg = ssl.create_default_context(cafile=verify)
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=self.timeouts.httpx(),
            verify=verify_arg,
            transport=transport,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=4),
        )
        self._models_cache: list[ModelInfo] | None = None

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
            exc, self.api_base, partial_text=partial_text, streaming=streaming, secret=self._api_key
        )

    async def _send(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        """Send, retrying once when a pooled keep-alive connection turns out to have been
        closed by the server: it answers nothing ("Server disconnected without sending a
        response"), so the request was not served and sending it again is safe."""
        try:
            return await self._http.send(request, stream=stream)
        except httpx.RemoteProtocolError:
            return await self._http.send(request, stream=stream)

    @contextlib.asynccontextmanager
    async def _streaming(self, method: str, url: str, body: bytes) -> AsyncIterator[httpx.Response]:
        request = self._http.build_request(
            method, url, content=body, headers={"Content-Type": "application/json"}
        )
        resp = await self._send(request, stream=True)
        try:
            yield resp
        finally:
            await resp.aclose()

    async def _get(self, url: str) -> httpx.Response:
        try:
            return await self._send(self._http.build_request("GET", url), stream=False)
        except httpx.HTTPError as exc:
            raise self._network_error(exc) from None

    # -- models, health, server -----------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        """The models the server serves, each with its context length when it tells."""
        resp = await self._get(self._url("models"))
        if resp.status_code != 200:
            raise E.error_from_status(resp.status_code, resp.content, api_base=self.api_base)
        try:
            data = resp.json()
            entries = data["data"]
        except (ValueError, KeyError, TypeError):
            raise E.ProtocolError(
                f"{self._url('models')} did not answer with a model list.",
                "Check that the API base URL points at an OpenAI-compatible server (ending in /v1).",
                detail=resp.text[:300],
            ) from None
        out = [parse_model_entry(e) for e in entries if isinstance(e, dict) and "id" in e]
        self._models_cache = out
        return out

    async def health(self) -> Health:
        """reachable (ok) / loading / down, with the round-trip latency.

        vLLM and llama.cpp answer ``/health``; servers without it (Ollama,
        llama-cpp-python) are checked through ``/v1/models``.
        """
        t0 = time.monotonic()
        try:
            resp = await self._http.get(
                f"{self.root}/health", timeout=min(self.timeouts.connect, 10.0)
            )
        except httpx.HTTPError as exc:
            err = self._network_error(exc)
            detail = err.message
            if isinstance(err, E.ConnectionRefused):
                detail += " (vLLM opens its port only once the model has loaded.)"
            return Health("down", None, detail)
        latency = time.monotonic() - t0
        if resp.status_code == 200:
            return Health("ok", latency, "/health answered")
        if resp.status_code == 503:
            message, fields = E.parse_error_body(resp.content)
            if "loading" in message.lower() or fields.get("type") == "unavailable_error":
                return Health("loading", latency, "The server is loading the model.")
            return Health("down", latency, "The server's engine is not running (503 on /health).")
        # No /health here: ask for the model list instead.
        t0 = time.monotonic()
        try:
            resp = await self._http.get(
                self._url("models"), timeout=min(self.timeouts.connect, 10.0)
            )
        except httpx.HTTPError as exc:
            return Health("down", None, self._network_error(exc).message)
        latency = time.monotonic() - t0
        if resp.status_code == 200:
            return Health("ok", latency, "/v1/models answered")
        if resp.status_code == 503:
            return Health("loading", latency, "The server is loading the model.")
        if resp.status_code in (401, 403):
            return Health("ok", latency, "The server answers but needs an API key.")
        return Health("down", latency, f"The server answered {resp.status_code} to /v1/models.")

    async def server_info(self) -> ServerInfo:
        """Which kind of server this is, and its version when it tells."""
        owned = ""
        try:
            models = self._models_cache if self._models_cache is not None else await self.models()
            owned = models[0].owned_by if models else ""
        except E.KanoaError:
            pass
        version: str | None = None
        try:
            resp = await self._http.get(f"{self.root}/version", timeout=5.0)
            if resp.status_code == 200 and isinstance(resp.json(), dict):
                version = str(resp.json().get("version")) if resp.json().get("version") else None
        except (httpx.HTTPError, ValueError):
            pass
        if owned == "vllm" or (version and not owned):
            return ServerInfo("vllm", version)
        if owned == "llamacpp":
            build = None
            try:
                resp = await self._http.get(f"{self.root}/props", timeout=5.0)
                if resp.status_code == 200:
                    build = resp.json().get("build_info")
            except (httpx.HTTPError, ValueError, AttributeError):
                pass
            return ServerInfo("llama.cpp", build)
        try:
            resp = await self._http.get(f"{self.root}/api/version", timeout=5.0)
            if resp.status_code == 200 and "version" in resp.json():
                return ServerInfo("ollama", str(resp.json()["version"]))
        except (httpx.HTTPError, ValueError, TypeError):
            pass
        return ServerInfo("other", version)

    async def embeddings(self, model: str, texts: list[str]) -> list[list[float]]:
        """Vectors for ``texts`` from ``POST /v1/embeddings`` (vLLM, llama.cpp with
        ``--embeddings``, Ollama), in the order given."""
        body = json.dumps({"model": model, "input": list(texts)}).encode()
        request = self._http.build_request(
            "POST", self._url("embeddings"), content=body,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            resp = await self._send(request, stream=False)
        except httpx.HTTPError as exc:
            raise self._network_error(exc) from None
        if resp.status_code != 200:
            raise E.error_from_status(
                resp.status_code, resp.content, model=model, api_base=self.api_base
            )
        try:
            items = sorted(resp.json()["data"], key=lambda d: d.get("index", 0))
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (ValueError, KeyError, TypeError):
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
        """
        req = ChatRequest(
            model=model,
            messages=[user_message("Reply with one word.", [ONE_PIXEL_PNG])],
            max_tokens=1,
            temperature=0.0,
        )
        try:
            resp = await self._http.post(
                self._url("chat/completions"), json=req.payload(stream=False)
            )
        except httpx.HTTPError as exc:
            raise self._network_error(exc) from None
        if resp.status_code == 200:
            return True
        err = E.error_from_status(
            resp.status_code, resp.content, model=model, api_base=self.api_base
        )
        if isinstance(err, E.VisionUnsupported):
            return False
        if isinstance(err, E.TooManyImages):
            return True
        raise err

    # -- streaming ------------------------------------------------------------------------

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Stream one chat completion as typed events (see :mod:`~kanoa_desktop.core.endpoint.events`).

        Raises a :class:`KanoaError` on failure, with the text received so far in
        ``partial_text``. Cancelling the consuming task, or closing the generator, closes
        the connection so the server stops generating.
        """
        payload = request.payload(stream=True)
        body = json.dumps(payload).encode()
        url = self._url("chat/completions")
        text_parts: list[str] = []
        reasoning_parts: list[str] = []
        usage: dict[str, Any] | None = None
        timings: dict[str, Any] = {}
        finish_reason: str | None = None
        content_chunks = 0
        first_seen = False
        done = False

        def partial() -> str:
            return "".join(text_parts)

        t_sent = time.monotonic()
        yield RequestSent(t_sent, url, request.model, request.n_images, len(body))
        try:
            async with self._streaming("POST", url, body) as resp:
                if resp.status_code != 200:
                    raw = await resp.aread()
                    raise E.error_from_status(
                        resp.status_code, raw, model=request.model, api_base=self.api_base
                    )
                ctype = resp.headers.get("content-type", "")
                if "text/event-stream" not in ctype:
                    # A server that ignored stream=true: take its whole answer as one piece.
                    async for ev in self._non_streamed(resp, t_sent):
                        yield ev
                    return
                # aclosing: leaving the loop early ([DONE], an error) must close the SSE
                # generator here, inside this task, not later in the garbage collector.
                async with contextlib.aclosing(EventSource(resp).aiter_sse()) as events:
                    async for sse in events:
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
                        if not isinstance(chunk, dict):
                            continue
                        if "error" in chunk:
                            message, fields = E.parse_error_body(json.dumps(chunk))
                            raise E.StreamError(
                                f"The server failed while answering: {message or 'no reason given'}.",
                                "The text received so far is kept; Retry asks again.",
                                status=fields.get("code")
                                if isinstance(fields.get("code"), int)
                                else None,
                                detail=message,
                                partial_text=partial(),
                            )
                        if isinstance(chunk.get("usage"), dict):
                            usage = chunk["usage"]
                        if isinstance(chunk.get("timings"), dict):
                            timings = chunk["timings"]
                        for choice in chunk.get("choices") or ():
                            delta = choice.get("delta") or {}
                            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
                            content = delta.get("content")
                            if (reasoning or content) and not first_seen:
                                first_seen = True
                                now = time.monotonic()
                                yield FirstToken(now, now - t_sent)
                            if reasoning:
                                reasoning_parts.append(reasoning)
                                yield ReasoningDelta(time.monotonic(), reasoning)
                            if content:
                                content_chunks += 1
                                text_parts.append(content)
                                yield TextDelta(time.monotonic(), content)
                            if choice.get("finish_reason"):
                                finish_reason = choice["finish_reason"]
        except E.KanoaError:
            raise
        except SSEError as exc:
            raise E.ProtocolError(
                "The server's stream is not in the expected format.",
                "Check that the API base URL points at an OpenAI-compatible server.",
                detail=str(exc),
                partial_text=partial(),
            ) from None
        except httpx.HTTPError as exc:
            raise self._network_error(exc, partial_text=partial(), streaming=first_seen) from None

        if not done and finish_reason is None:
            raise E.StreamTruncated(
                "The answer stopped before the server said it was finished.",
                "The text received so far is kept; Retry asks again.",
                partial_text=partial(),
            )
        now = time.monotonic()
        yield self._usage_event(now, usage, timings, request, content_chunks, partial())
        yield Finished(now, finish_reason, partial(), "".join(reasoning_parts))

    def _usage_event(
        self,
        now: float,
        usage: dict[str, Any] | None,
        timings: dict[str, Any],
        request: ChatRequest,
        content_chunks: int,
        text: str,
    ) -> Usage:
        if usage and isinstance(usage.get("prompt_tokens"), int):
            return Usage(
                now,
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
                estimated=False,
                server_timings=timings,
            )
        if timings and isinstance(timings.get("prompt_n"), int):
            # llama.cpp's timings count exactly, even without a usage chunk.
            return Usage(
                now, int(timings["prompt_n"]), int(timings.get("predicted_n") or 0), False, timings
            )
        completion = max(content_chunks, estimate_text_tokens(text) if not content_chunks else 0)
        return Usage(now, estimate_message_tokens(request.messages), completion, True, timings)

    async def _non_streamed(
        self, resp: httpx.Response, t_sent: float
    ) -> AsyncIterator[StreamEvent]:
        raw = await resp.aread()
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise E.ProtocolError(
                "The server did not stream and its reply is not a chat completion.",
                "Check that the API base URL points at an OpenAI-compatible server.",
                detail=raw[:300].decode("utf-8", "replace"),
            ) from None
        now = time.monotonic()
        yield FirstToken(now, now - t_sent)
        if text:
            yield TextDelta(now, text)
        usage = data.get("usage") or {}
        if isinstance(usage.get("prompt_tokens"), int):
            yield Usage(now, usage["prompt_tokens"], int(usage.get("completion_tokens") or 0))
        else:
            yield Usage(now, 0, estimate_text_tokens(text), estimated=True)
        yield Finished(now, choice.get("finish_reason"), text)


def parse_model_entry(entry: dict[str, Any]) -> ModelInfo:
    ctx = entry.get("max_model_len")
    if not isinstance(ctx, int):
        meta = entry.get("meta")
        ctx = meta.get("n_ctx") if isinstance(meta, dict) else None
    if not isinstance(ctx, int):
        ctx = entry.get("context_length") if isinstance(entry.get("context_length"), int) else None
    return ModelInfo(
        id=str(entry["id"]),
        context_length=ctx,
        owned_by=str(entry.get("owned_by") or ""),
        root=entry.get("root"),
        parent=entry.get("parent"),
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
) -> E.KanoaError:
    """Map an httpx transport exception to the matching :class:`KanoaError`."""
    where = api_base
    text = " ".join(str(e) for e in _chain(exc)).lower()
    detail = E.scrub(str(exc) or type(exc).__name__, secret)
    kw: dict[str, Any] = {"detail": detail, "partial_text": partial_text}
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
            "Start the model server (e.g. `vllm serve MODEL`), or check the port in Settings > Endpoint.",
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
    "ChatClient",
    "Health",
    "ModelInfo",
    "ServerInfo",
    "Timeouts",
    "collect",
    "network_error",
    "root_url",
    "DEFAULT_API_BASE",
]
