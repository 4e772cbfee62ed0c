"""What "Test connection" asks for and what it found. Plain objects (no Qt).

The dialog emits a :class:`ConnectionRequest`; the window runs :func:`check_connection`
(or its own check) on the qasync loop and hands the :class:`ConnectionReport` back to
``SettingsDialog.show_connection_result``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from kanoa_desktop.core.config.secrets import Secret
from kanoa_desktop.core.endpoint.client import ChatClient, Health, ModelInfo, ServerInfo, Timeouts
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.endpoint.router import RouterStatus


@dataclass(frozen=True)
class ConnectionRequest:
    """Everything needed to test an endpoint. ``api_key`` is the key typed in the dialog
    and not yet saved, or None (then use the profile's key from the keychain)."""

    profile_id: str
    api_base: str
    model: str
    vision: str  # "auto" | "yes" | "no": probe only for "auto"
    api_key: Secret | None
    verify: bool | str  # False, True, or a CA bundle path
    timeout_s: float


@dataclass(frozen=True)
class ConnectionReport:
    """What the check found; any part may be missing when the server did not answer."""

    health: Health | None = None
    models: Sequence[ModelInfo] = ()
    server: ServerInfo | None = None
    vision: bool | None = None  # one-pixel probe result; None: not probed
    vision_model: str | None = None
    error: str | None = None  # plain words: what went wrong and what to do
    router: RouterStatus | None = None  # a vLLM router's workers; None: not a router
    image_tokens: int | None = None  # what one figure costs (measured); None: not known


# The last check of each profile this session, wherever it ran (Settings, the first-run
# card): Settings shows it instead of "Not tested yet" while the address is the same.
_LAST: dict[str, tuple[str, ConnectionReport, float]] = {}


def remember_result(profile_id: str, api_base: str, report: ConnectionReport) -> None:
    """Keep ``report`` as the profile's last connection check (this session)."""
    _LAST[profile_id] = (api_base, report, time.time())


def last_result(profile_id: str, api_base: str) -> tuple[ConnectionReport, float] | None:
    """The profile's last check and when it ran (Unix time), if it tested ``api_base``."""
    found = _LAST.get(profile_id)
    if found is None or found[0] != api_base:
        return None
    return found[1], found[2]


def passed(report: ConnectionReport) -> bool:
    """The server answered (or is loading its model) and nothing went wrong."""
    return report.error is None and report.health is not None and report.health.reachable


async def check_connection(
    request: ConnectionRequest, key: Secret | None = None
) -> ConnectionReport:
    """Health, model list, server kind/version and (vision "auto") the image probe.

    ``key`` is used when the request carries none (the keychain's key). Never raises for
    network or server problems: they come back in ``error``.
    """
    secret = request.api_key or key
    client = ChatClient(
        request.api_base,
        api_key=secret.reveal() if secret else None,
        verify=request.verify,
        timeouts=Timeouts(connect=min(request.timeout_s, 10.0), read=request.timeout_s),
    )
    health: Health | None = None
    models: list[ModelInfo] = []
    server: ServerInfo | None = None
    vision: bool | None = None
    router: RouterStatus | None = None
    try:
        health = await client.health()
        if health.state == "down":
            return ConnectionReport(health=health, error=health.detail)
        router = await client.router_status()
        models = await client.models()
        server = await client.server_info()
        model = request.model or (models[0].id if models else "")
        if request.vision == "auto" and model and health.state == "ok":
            vision = await client.probe_vision(model)
        image_tokens = None
        if vision:
            try:
                image_tokens = await client.image_token_cost(model)
            except KanoaError:
                pass  # the price is a nicety: the connection itself is fine
        return ConnectionReport(
            health, models, server, vision, model or None, router=router, image_tokens=image_tokens
        )
    except KanoaError as exc:
        error = str(exc)  # message + what to do next
        return ConnectionReport(health, models, server, vision, None, error, router)
    finally:
        await client.aclose()
