"""What a question needs from outside it, built once per face and passed in.

The window, each command-line command, a comparison, a batch and the self-test build one
:class:`Services` and hand it to what they make (runners, comparisons, batches, views):
nothing reaches into another part for its client pool or its history.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kanoa_desktop.core.config.pricing import CostTracker, KanoaPricing

if TYPE_CHECKING:
    from kanoa_desktop.core.endpoint.pool import ClientPool

CpuRunner = Callable[[Callable[[], Any]], Awaitable[Any]]


class EnergySpans(Protocol):
    """Marks a GPU energy span around an answer (the GPU panel's poller, or none)."""

    def begin(self) -> Any: ...

    def end(self, handle: Any) -> float | None:  # watt-hours, None when unknown
        ...


class VisionCache(Protocol):
    """Remembers which models refused images (the profile store)."""

    def cached_vision(self, api_base: str, model: str) -> bool | None: ...

    def remember_vision(self, api_base: str, model: str, supported: bool) -> None: ...


class SessionVision(dict):
    """A vision cache for this run only (no profile store to remember it in)."""

    def cached_vision(self, api_base: str, model: str) -> bool | None:
        return self.get((api_base, model))

    def remember_vision(self, api_base: str, model: str, supported: bool) -> None:
        self[(api_base, model)] = supported


async def _to_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


@dataclass
class Services:
    """The collaborators of every question of one face.

    ``history`` None records nothing; ``knowledge_base()`` the knowledge base to ground in
    now (or None); ``energy`` GPU energy spans (or None); ``vision`` remembers models that
    refused images; ``costs`` this session's totals; ``run_cpu`` runs blocking work off the
    loop's thread.
    """

    pool: ClientPool
    history: Any = None
    pricing: KanoaPricing | None = None
    knowledge_base: Callable[[], Any] = lambda: None
    energy: EnergySpans | None = None
    vision: VisionCache = field(default_factory=SessionVision)
    costs: CostTracker = field(default_factory=CostTracker)
    run_cpu: CpuRunner = _to_thread

    def replace(self, **changes: Any) -> Services:
        """The same services with some changed (a batch records no history, say)."""
        return dataclasses.replace(self, **changes)

    async def aclose(self) -> None:
        """Close the pool's connections and the history (a command line's end)."""
        await self.pool.aclose()
        if self.history is not None:
            self.history.close()


def command_services(
    keys: Any = None, *, api_key: str | None = None, history: bool = True, **more: Any
) -> Services:
    """A command's services: a pool on ``keys`` (``api_key`` overrides them), the history
    opened without crash recovery (a window beside it keeps its streaming turn), kanoa's
    prices; ``more`` sets the others (vision, knowledge_base)."""
    from kanoa_desktop.core.config.pricing import load_kanoa_pricing
    from kanoa_desktop.core.endpoint.pool import ClientPool

    store = None
    if history:
        from kanoa_desktop.core.history.store import HistoryStore

        store = HistoryStore(recover=False)
    pool = ClientPool(keys, api_key=api_key)
    return Services(pool, history=store, pricing=load_kanoa_pricing(), **more)


__all__ = ["CpuRunner", "EnergySpans", "Services", "SessionVision", "VisionCache",
           "command_services"]  # fmt: skip
