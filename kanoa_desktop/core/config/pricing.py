"""What an answer cost: tokens times the profile's prices, or kanoa's override prices.

Prices are US dollars per million tokens, as in kanoa. kanoa users may keep their own
prices in ``~/.config/kanoa/pricing.json`` (kanoa reads exactly that path; we also honour
``$XDG_CONFIG_HOME/kanoa/pricing.json`` first when XDG_CONFIG_HOME is set). Its format,
as kanoa's ``kanoa/pricing.py`` and bundled ``pricing.json`` define it::

    {"_metadata": {...},
     "<backend>": {"<model>": {"input_price": 0.5, "output_price": 3.0, ...},
                   "<model>": {"tiers": {"default": {"input_price": ..., ...}, ...}}}}

kanoa calls local OpenAI-compatible servers the ``vllm`` backend, so a model is looked up
under ``vllm`` first, then under every other backend. A model matches by exact id, then
case-insensitively, then by the part after the last ``/`` (vLLM may serve
``allenai/Molmo-7B-D-0924`` under its short name). Only ``input_price`` and ``output_price``
are used (kanoa's cached and >128k prices do not apply to local servers).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanoa_desktop.core.config.profiles import Profile

KANOA_LOCAL_BACKEND = "vllm"


@dataclass(frozen=True)
class Prices:
    """Dollars per million tokens and where the numbers came from (for a tooltip)."""

    input_per_million: float
    output_per_million: float
    source: str = "profile"


@dataclass(frozen=True)
class KanoaPricing:
    """kanoa's override table: backend -> model -> Prices; ``problem`` when unreadable."""

    table: Mapping[str, Mapping[str, Prices]] = field(default_factory=dict)
    path: Path | None = None
    problem: str | None = None


def kanoa_pricing_paths() -> list[Path]:
    """Where kanoa's user override may be, in the order we look."""
    candidates = []
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg:
        candidates.append(Path(xdg).expanduser() / "kanoa" / "pricing.json")
    candidates.append(Path.home() / ".config" / "kanoa" / "pricing.json")
    seen: list[Path] = []
    for path in candidates:
        if path not in seen:
            seen.append(path)
    return seen


def _prices_from_entry(entry: Any, source: str) -> Prices | None:
    if not isinstance(entry, Mapping):
        return None
    if "input_price" not in entry and isinstance(entry.get("tiers"), Mapping):
        entry = entry["tiers"].get("default")
        if not isinstance(entry, Mapping):
            return None
    inp, out = entry.get("input_price"), entry.get("output_price")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (inp, out)):
        return None
    if inp < 0 or out < 0:
        return None
    return Prices(float(inp), float(out), source)


def parse_kanoa_pricing(doc: Any, path: Path | None = None) -> KanoaPricing:
    """Turn a parsed kanoa pricing document into a table; malformed entries are skipped."""
    if not isinstance(doc, Mapping):
        return KanoaPricing(path=path, problem="the top level is not a JSON object")
    source = f"kanoa pricing ({path})" if path else "kanoa pricing"
    table: dict[str, dict[str, Prices]] = {}
    for backend, models in doc.items():
        if backend.startswith("_") or not isinstance(models, Mapping):
            continue
        for model, entry in models.items():
            prices = _prices_from_entry(entry, source)
            if prices is not None:
                table.setdefault(backend.lower(), {})[model] = prices
    return KanoaPricing(table=table, path=path)


def load_kanoa_pricing(path: Path | None = None) -> KanoaPricing:
    """Read kanoa's override file (the first that exists). Missing: an empty table and no
    problem. Unreadable or invalid JSON: an empty table and a plain ``problem``. Plain
    file I/O: call it off the GUI thread if you like, it never raises."""
    candidates = [Path(path)] if path is not None else kanoa_pricing_paths()
    for candidate in candidates:
        try:
            text = candidate.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            return KanoaPricing(path=candidate, problem=f"could not read {candidate}: {exc}")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            return KanoaPricing(
                path=candidate,
                problem=f"{candidate} is not valid JSON (line {exc.lineno}); profile prices are used",
            )
        return parse_kanoa_pricing(doc, candidate)
    return KanoaPricing()


def _match(models: Mapping[str, Prices], model: str) -> Prices | None:
    if model in models:
        return models[model]
    lower = model.lower()
    for name, prices in models.items():
        if name.lower() == lower:
            return prices
    short = lower.rsplit("/", 1)[-1]
    for name, prices in models.items():
        if name.lower().rsplit("/", 1)[-1] == short:
            return prices
    return None


def prices_for(
    profile: Profile, kanoa: KanoaPricing | None = None, *, model: str | None = None
) -> Prices:
    """kanoa's override prices when the model is listed there, else the profile's.

    ``model`` is the model actually asked (the server's first when the profile names
    none); it defaults to the profile's.
    """
    model = model or profile.model
    if kanoa is not None and model:
        order = [KANOA_LOCAL_BACKEND] + sorted(b for b in kanoa.table if b != KANOA_LOCAL_BACKEND)
        for backend in order:
            found = _match(kanoa.table.get(backend, {}), model)
            if found is not None:
                return found
    return Prices(profile.price_input_per_million, profile.price_output_per_million, "profile")


def answer_cost(prompt_tokens: int, output_tokens: int, prices: Prices) -> float:
    """Dollars for one answer. Negative token counts count as zero."""
    return (
        max(prompt_tokens, 0) * prices.input_per_million
        + max(output_tokens, 0) * prices.output_per_million
    ) / 1_000_000


def energy_cost(energy_wh: float, price_per_kwh: float | None) -> float | None:
    """Electricity cost of ``energy_wh`` watt-hours (the unit history and the GPU panel use)
    at ``price_per_kwh``; None when no price is set."""
    if price_per_kwh is None:
        return None
    return max(energy_wh, 0.0) / 1000.0 * price_per_kwh


@dataclass(frozen=True)
class AnswerCost:
    """One answer's tokens and cost."""

    prompt_tokens: int
    output_tokens: int
    cost: float
    prices: Prices


class CostTracker:
    """Running totals for this session (answers, tokens, dollars). Plain object; the
    status bar reads its properties after each :meth:`add`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.answers = 0
        self.prompt_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0
        self.estimated = False  # some answer's figures were estimates

    def add(
        self, prompt_tokens: int, output_tokens: int, prices: Prices, *, estimated: bool = False
    ) -> AnswerCost:
        """Count one answer and return its own cost."""
        prompt_tokens, output_tokens = max(prompt_tokens, 0), max(output_tokens, 0)
        cost = answer_cost(prompt_tokens, output_tokens, prices)
        self.estimated = self.estimated or (estimated and cost > 0)
        self.answers += 1
        self.prompt_tokens += prompt_tokens
        self.output_tokens += output_tokens
        self.cost += cost
        return AnswerCost(prompt_tokens, output_tokens, cost, prices)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


def format_cost(dollars: float, estimated: bool = False) -> str:
    """The app's one cost format: ``$1.23`` (``$1,234.56``), or two significant digits below
    a cent (``$0.000054``): a local model's answer costs hundredths of a cent, which must
    not read as $0.00 or $0.0001. ``estimated`` marks an estimate ``~$0.0012`` (never a
    zero: nothing done costs exactly nothing)."""
    if dollars == 0:
        return "$0.00"
    mark = "~" if estimated else ""
    if dollars < 0.01:
        digits = 1 - math.floor(math.log10(dollars))
        return f"{mark}${dollars:.{digits}f}"
    return f"{mark}${dollars:,.2f}"
