"""The vLLM router (PyPI ``vllm-router``) in front of several model servers.

A profile may point at a router instead of one server: chat streams pass through it
unchanged, so the client needs nothing special to ask. What differs, and lives here:

- detection: a router answers ``GET /workers`` with ``{"workers": [...], "total": N}``
  (a vLLM or llama.cpp server answers 404 there);
- :class:`RouterStatus`: its workers with url, model, health and load, and whether it runs
  in the default mode (``/v1/models`` is one worker's list, the model name does not steer
  routing) or in ``--enable-igw`` mode (routing follows the model, ``/v1/models`` answers
  ``{"models": [...]}``);
- :func:`refine_router_error`: the router's own failures ("No available workers ...",
  "Request failed: ...") become sentences naming what is down, using ``/workers``.

Plain asyncio + httpx; no Qt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.bodies import get_json

__all__ = [
    "RouterStatus",
    "RouterWorker",
    "fetch_router_status",
    "parse_workers",
    "refine_router_error",
]

RouterMode = Literal["default", "igw"]


@dataclass(frozen=True, slots=True)
class RouterWorker:
    """One server behind the router. ``model`` is None when the router does not know it
    (the default mode reports ``model_id: "unknown"``)."""

    url: str
    model: str | None
    healthy: bool
    load: int | None


@dataclass(frozen=True, slots=True)
class RouterStatus:
    """What ``/workers`` said."""

    url: str
    mode: RouterMode
    workers: tuple[RouterWorker, ...]

    @property
    def total(self) -> int:
        return len(self.workers)

    @property
    def healthy(self) -> int:
        return sum(1 for w in self.workers if w.healthy)

    @property
    def models(self) -> tuple[str, ...]:
        """Models the router knows (igw mode), sorted; empty in the default mode."""
        return tuple(sorted({w.model for w in self.workers if w.model}))

    def serving(self, model: str) -> tuple[RouterWorker, ...]:
        """The workers the router lists for ``model`` (igw mode; empty when unknown)."""
        return tuple(w for w in self.workers if w.model == model)

    def summary(self) -> str:
        """One line: "vLLM router (routes by model): 2 of 3 servers healthy"."""
        how = "routes by model" if self.mode == "igw" else "any server for any model"
        noun = "server" if self.total == 1 else "servers"
        return f"vLLM router ({how}): {self.healthy} of {self.total} {noun} healthy"


def parse_workers(url: str, data: Any) -> RouterStatus | None:
    """A :class:`RouterStatus` from a ``/workers`` body, or None if it is not a router's."""
    if not isinstance(data, dict) or not isinstance(data.get("workers"), list):
        return None
    if "total" not in data:
        return None
    workers: list[RouterWorker] = []
    for entry in data["workers"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        model = entry.get("model_id")
        load = entry.get("load")
        workers.append(
            RouterWorker(
                url=entry["url"],
                model=model if isinstance(model, str) and model and model != "unknown" else None,
                healthy=bool(entry.get("is_healthy")),
                load=load if isinstance(load, int) and not isinstance(load, bool) else None,
            )
        )
    stats = data.get("stats") if isinstance(data.get("stats"), dict) else {}
    igw = "total_models" in stats or any(w.model for w in workers)
    return RouterStatus(url=url, mode="igw" if igw else "default", workers=tuple(workers))


async def fetch_router_status(
    http: httpx.AsyncClient, root: str, *, timeout_s: float = 5.0
) -> RouterStatus | None:
    """Ask ``root/workers``; None when the server there is not a vLLM router (or does not
    answer). Never raises for network problems."""
    try:
        # Capped and deadlined: a hostile /workers cannot grow memory or hang the check.
        status, data = await get_json(
            http, f"{root.rstrip('/')}/workers", cap=4 * 1024 * 1024, timeout_s=timeout_s
        )
    except httpx.HTTPError:
        return None
    if status != 200 or data is None:
        return None
    return parse_workers(root, data)


# --- errors ------------------------------------------------------------------------------


def _names(workers: Sequence[RouterWorker]) -> str:
    return ", ".join(w.url for w in workers) or "none"


async def refine_router_error(
    http: httpx.AsyncClient,
    root: str,
    err: E.KanoaError,
    model: str = "",
    *,
    status: RouterStatus | None = None,
) -> E.KanoaError:
    """Make a router's error say what is down, from its ``/workers`` list.

    Only :class:`~kanoa_desktop.core.endpoint.errors.RouterNoWorkers`,
    :class:`~kanoa_desktop.core.endpoint.errors.RouterRequestFailed` and a
    :class:`~kanoa_desktop.core.endpoint.errors.ModelNotFound` that came through a router are
    refined; any other error, or a server that is not a router, is returned unchanged.
    """
    if not isinstance(err, E.RouterNoWorkers | E.RouterRequestFailed | E.ModelNotFound):
        return err
    if status is None:
        status = await fetch_router_status(http, root)
    if status is None:
        return err
    kw: dict[str, Any] = {
        "status": err.status,
        "detail": err.detail,
        "partial_text": err.partial_text,
    }
    healthy = [w for w in status.workers if w.healthy]
    down = [w for w in status.workers if not w.healthy]
    if isinstance(err, E.ModelNotFound):
        if status.mode == "igw" and model and not status.serving(model):
            return E.RouterModelUnavailable(
                f"The router has no server for model '{model}'.",
                f"The servers behind it serve: {', '.join(status.models) or 'nothing yet'}. "
                "Choose one of them in Settings > Endpoint, or add a server for this model "
                "to the router (POST /workers).",
                model=model,
                **kw,
            )
        if status.mode == "default":
            err.hint += (
                " This is a vLLM router in its default mode: it sends each request to any "
                "of its servers whatever the model, so they must all serve the same model "
                "(or start it with --enable-igw to route by model)."
            )
        return err
    if not healthy:
        return E.RouterNoWorkers(
            f"All servers behind the router are down ({len(down)} of {status.total}: "
            f"{_names(down)}).",
            "Start the model servers again; the router sends requests as soon as its "
            "health check sees one up (a few seconds).",
            **kw,
        )
    if model and status.mode == "igw":
        for_model = status.serving(model)
        if not for_model:
            return E.RouterModelUnavailable(
                f"The router has no server for model '{model}'.",
                f"The servers behind it serve: {', '.join(status.models) or 'nothing'}. "
                "Choose one of them in Settings > Endpoint.",
                model=model,
                **kw,
            )
        if not any(w.healthy for w in for_model):
            return E.RouterModelUnavailable(
                f"The router has no working server for model '{model}': "
                f"{_names(for_model)} {'is' if len(for_model) == 1 else 'are'} down.",
                "Start that server again, or choose a model whose server is up: "
                f"{', '.join(sorted({w.model for w in healthy if w.model})) or 'none'}.",
                model=model,
                **kw,
            )
    if isinstance(err, E.RouterRequestFailed):
        return E.RouterRequestFailed(
            f"The router could not reach the server it picked; {len(healthy)} of "
            f"{status.total} servers behind it look healthy.",
            "Retry: the router will try another server, and stops sending to a dead one "
            "once its health check notices (a few seconds).",
            **kw,
        )
    return err
