"""Bounded HTTP bodies for every client the app makes.

:class:`CappedTransport` wraps an httpx transport so that no response body on that client
can grow past ``max_body_bytes`` (raw bytes on the wire) or keep arriving past
``deadline_s`` after the request was sent (a body dripped one byte at a time defeats a
per-read timeout, not this). Both failures are ``httpx`` errors
(:class:`BodyCapExceeded` is an ``httpx.ReadError``, the deadline an
``httpx.ReadTimeout``), so code that already handles ``httpx.HTTPError`` handles them
without change, and never holds more than the cap in memory.

Use it where a client is made::

    httpx.AsyncClient(timeout=..., transport=CappedTransport(max_body_bytes=16 * MiB))

The readers in :mod:`~kanoa_desktop.core.endpoint.client` add caps per kind of body on
top (``BODY_CAPS``), measured after decompression.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

KiB = 1024
MiB = 1024 * KiB


class BodyCapExceeded(httpx.ReadError):
    """A response body passed the transport's cap; reading stopped there."""


def _size(n: int) -> str:
    return f"{n // MiB} MB" if n >= MiB else f"{n // KiB} KB"


class _CappedStream(httpx.AsyncByteStream):
    def __init__(
        self,
        inner: httpx.AsyncByteStream,
        request: httpx.Request,
        cap: int,
        started: float,
        deadline_s: float | None,
    ) -> None:
        self._inner = inner
        self._request = request
        self._cap = cap
        self._started = started
        self._deadline_s = deadline_s

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._cap:
                raise BodyCapExceeded(
                    f"the reply from {self._request.url.host} is larger than "
                    f"{_size(self._cap)}; stopped reading it",
                    request=self._request,
                )
            if self._deadline_s is not None and time.monotonic() - self._started > self._deadline_s:
                raise httpx.ReadTimeout(
                    f"the reply from {self._request.url.host} was still arriving after "
                    f"{self._deadline_s:.0f} s",
                    request=self._request,
                )
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


#: Seconds an idle kept-alive connection is reused. Below the servers' own idle timeouts
#: (cpp-httplib in llama-server, uvicorn in vLLM: 5 s), which equal httpx's default: a poll
#: every 5 s then reused a connection the server was closing at that very moment, and the
#: GPU panel said "Stale ... Server disconnected without sending a response" while the
#: server was healthy.
KEEPALIVE_EXPIRY_S = 2.0
# What reusing a connection the server has just closed looks like, before any response.
_STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def _short_keepalive(limits: httpx.Limits | None) -> httpx.Limits:
    if limits is None:
        return httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S)
    expiry = limits.keepalive_expiry
    return httpx.Limits(
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=KEEPALIVE_EXPIRY_S if expiry is None else min(expiry, KEEPALIVE_EXPIRY_S),
    )


class CappedTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose response bodies stop at ``max_body_bytes`` and, with
    ``deadline_s``, must be complete that many seconds after the request was sent.

    Kept-alive connections expire after :data:`KEEPALIVE_EXPIRY_S`, and a GET or HEAD that
    meets a connection the server closed under it (no response at all) is sent once more,
    on another connection: a server's idle close is not the server being down.

    ``inner`` defaults to ``httpx.AsyncHTTPTransport(**transport_kwargs)`` (pass
    ``verify``, ``limits`` and the like there: a client given a transport does not
    configure one itself). Its ``verify`` defaults to the app's one shared TLS context
    (:mod:`.tls`): building a context per client cost 50-100 ms each time."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        max_body_bytes: int,
        deadline_s: float | None = None,
        **transport_kwargs: Any,
    ) -> None:
        if inner is None:
            from kanoa_desktop.core.endpoint.tls import shared_verify

            transport_kwargs["verify"] = shared_verify(transport_kwargs.get("verify", True))
            transport_kwargs["limits"] = _short_keepalive(transport_kwargs.get("limits"))
            inner = httpx.AsyncHTTPTransport(**transport_kwargs)
        self._inner = inner
        self.max_body_bytes = max_body_bytes
        self.deadline_s = deadline_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.monotonic()
        try:
            response = await self._inner.handle_async_request(request)
        except _STALE_CONNECTION:
            if request.method not in ("GET", "HEAD"):
                raise  # a question is never sent twice
            # The pool dropped the dead connection: this goes on a live or a new one.
            response = await self._inner.handle_async_request(request)
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        response.stream = _CappedStream(
            stream, request, self.max_body_bytes, started, self.deadline_s
        )
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __getattr__(self, name: str) -> Any:
        # A transparent wrapper: the connection pool and the like stay inspectable.
        return getattr(self._inner, name)


async def get_json(
    http: httpx.AsyncClient,
    url: str,
    *,
    cap: int,
    timeout_s: float,
    method: str = "GET",
    **kwargs: Any,
) -> tuple[int, Any]:
    """``(status, JSON)`` of a small request: the body is read up to ``cap`` bytes (after
    decompression) and must be complete within ``max(3 * timeout_s, 10)`` seconds.

    The JSON is None when the body is not JSON (or nested too deeply to read). Raises
    :class:`BodyCapExceeded` past the cap and ``httpx.ReadTimeout`` at the deadline (both
    ``httpx.HTTPError``), like any transport failure. Redirects are not followed."""
    import asyncio
    import json

    budget = max(3.0 * timeout_s, 10.0)
    request = http.build_request(method, url, timeout=timeout_s, **kwargs)
    try:
        async with asyncio.timeout(budget) as cm:
            response = await http.send(request, stream=True, follow_redirects=False)
            try:
                buf = bytearray()
                async for chunk in response.aiter_bytes():
                    buf += chunk
                    if len(buf) > cap:
                        raise BodyCapExceeded(
                            f"the reply from {request.url.host} is larger than {_size(cap)}; "
                            "stopped reading it",
                            request=request,
                        )
            finally:
                await response.aclose()
    except TimeoutError:
        if cm.expired():
            raise httpx.ReadTimeout(
                f"the reply from {request.url.host} took more than {budget:.0f} s",
                request=request,
            ) from None
        raise
    try:
        return response.status_code, json.loads(bytes(buf))
    except (ValueError, RecursionError):
        return response.status_code, None


__all__ = ["BodyCapExceeded", "CappedTransport", "KiB", "MiB", "get_json"]
