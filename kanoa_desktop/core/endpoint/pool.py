"""Shared clients and model lists for every conversation on one event loop.

A :class:`ClientPool` hands out one :class:`ChatClient` per (endpoint, key, TLS, timeouts),
so the window, a comparison's panes and a batch's workers reuse connections, and it caches
each endpoint's model list. Keys come from a key store (the OS keychain); the pool never
writes them anywhere.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from kanoa_desktop.core.endpoint import errors as E

# The client (and httpx under it) loads with the first request, not with the window.
if TYPE_CHECKING:
    from kanoa_desktop.core.endpoint.client import ChatClient, ModelInfo, Timeouts


class KeySource(Protocol):
    def get(self, profile_id: str) -> Any: ...  # an object with reveal(), or None


def timeouts_for(profile: Any) -> Timeouts:
    """The client timeouts a profile asks for (every deadline it sets, never infinite)."""
    from kanoa_desktop.core.endpoint.client import Timeouts

    values: dict[str, float] = {"read": max(float(profile.request_timeout_s), 5.0)}
    for name in ("first_token", "progress"):
        value = getattr(profile, f"{name}_timeout_s", None)
        if value is not None and name in Timeouts.__dataclass_fields__:
            values[name] = float(value)
    return Timeouts(**values)


class ClientPool:
    """Clients and model lists shared by every conversation running on one loop."""

    def __init__(self, keys: KeySource | None = None, *, api_key: str | None = None) -> None:
        self.keys = keys
        self.api_key = api_key  # overrides the key store (the command line's --api-key-env)
        self._clients: dict[tuple, ChatClient] = {}
        self._models: dict[str, list[ModelInfo]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._image_tokens: dict[str, int] = {}  # api_base -> measured price of a figure

    def _secret(self, profile: Any) -> str | None:
        if self.api_key:
            return self.api_key
        if self.keys is None:
            return None
        key = self.keys.get(profile.id)
        return key.reveal() if key else None

    def client_for(self, profile: Any) -> ChatClient:
        secret = self._secret(profile)
        verify: bool | str = (profile.ca_bundle or True) if profile.verify_tls else False
        timeouts = timeouts_for(profile)
        ident = (profile.api_base, hash(secret) if secret else None, verify, timeouts)
        client = self._clients.get(ident)
        if client is None or client.closed:
            from kanoa_desktop.core.config.profiles import start_server_hint
            from kanoa_desktop.core.endpoint.client import ChatClient

            client = ChatClient(
                profile.api_base,
                api_key=secret,
                verify=verify,
                timeouts=timeouts,
                start_hint=start_server_hint(profile),
            )
            self._clients[ident] = client
        return client

    def cached_models(self, api_base: str) -> list[ModelInfo] | None:
        return self._models.get(api_base)

    def first_model(self, api_base: str) -> str:
        models = self._models.get(api_base)
        return models[0].id if models else ""

    def forget_models(self) -> None:
        self._models.clear()

    async def resolve_model(self, profile: Any) -> tuple[str, ModelInfo | None]:
        """The model to ask (the profile's, or the first the server lists) and its info.

        The model list is fetched once per endpoint (again when the profile names a model
        the cached list lacks); concurrent callers share one request.
        """
        lock = self._locks.setdefault(profile.api_base, asyncio.Lock())
        async with lock:
            models = self._models.get(profile.api_base)
            if models is None or (profile.model and profile.model not in {m.id for m in models}):
                models = await self.client_for(profile).models()
                self._models[profile.api_base] = models
        if not profile.model:
            if not models:
                raise E.BadRequest(
                    "The server lists no model.",
                    "Load a model on the server, or set one in Settings > Endpoint.",
                )
            return models[0].id, models[0]
        return profile.model, next((m for m in models if m.id == profile.model), None)

    async def measure_image_tokens(self, profile: Any, model: str) -> int | None:
        """Measure what one figure costs ``model`` on the profile's endpoint (two one-token
        requests, once per client: ``ChatClient.image_token_cost``) and remember it for
        :meth:`image_tokens`. None when the model cannot see or the server reports no
        usage; never raises (the guess stays in use)."""
        try:
            cost = await self.client_for(profile).image_token_cost(model)
        except E.KanoaError:
            return None
        if cost:
            self._image_tokens[profile.api_base] = cost
        return cost

    def image_tokens(self, api_base: str) -> int | None:
        """What one figure costs on ``api_base``, once :meth:`measure_image_tokens` ran."""
        return self._image_tokens.get(api_base)

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.aclose()


__all__ = ["ClientPool", "KeySource", "timeouts_for"]
