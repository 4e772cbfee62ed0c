"""Answer cost from profile prices and from kanoa's pricing override file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kanoa_desktop.core.config.pricing import (
    CostTracker,
    Prices,
    answer_cost,
    energy_cost,
    format_cost,
    load_kanoa_pricing,
    prices_for,
)
from kanoa_desktop.core.config.profiles import Profile

MOLMO = "allenai/Molmo-7B-D-0924"

pytestmark = pytest.mark.usefixtures("user_home")


def write_kanoa_pricing(config_home: Path, doc) -> Path:
    path = config_home / "kanoa" / "pricing.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def test_local_profile_costs_ten_cents_per_million_tokens_without_overrides():
    prices = prices_for(Profile(model=MOLMO), load_kanoa_pricing())
    assert prices == Prices(0.10, 0.10, "profile")
    assert answer_cost(600_000, 400_000, prices) == pytest.approx(0.10)


def test_kanoa_user_override_prices_are_used_when_the_model_matches():
    path = write_kanoa_pricing(
        Path.home() / ".config",
        {
            "_metadata": {"last_updated": "2025-12-17"},
            "vllm": {MOLMO: {"input_price": 0.02, "output_price": 0.08}},
        },
    )
    kanoa = load_kanoa_pricing()
    assert kanoa.path == path and kanoa.problem is None
    prices = prices_for(Profile(model=MOLMO), kanoa)
    assert (prices.input_per_million, prices.output_per_million) == (0.02, 0.08)
    assert "kanoa pricing" in prices.source
    assert answer_cost(1_000_000, 1_000_000, prices) == pytest.approx(0.10)
    # vLLM may serve the model under its short name
    short = prices_for(Profile(model="Molmo-7B-D-0924"), kanoa)
    assert short.input_per_million == 0.02
    # another model still uses the profile's prices
    assert prices_for(Profile(model="google/gemma-3-12b-it"), kanoa).source == "profile"


def test_kanoa_tiered_entries_use_the_default_tier(monkeypatch, tmp_path):
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    write_kanoa_pricing(
        xdg,
        {
            "gemini": {
                "gemini-2.5-flash": {
                    "tiers": {
                        "default": {"input_price": 0.10, "output_price": 0.40},
                        "free": {"input_price": 0.0, "output_price": 0.0},
                    }
                }
            }
        },
    )
    prices = prices_for(Profile(model="gemini-2.5-flash"), load_kanoa_pricing())
    assert (prices.input_per_million, prices.output_per_million) == (0.10, 0.40)


def test_an_invalid_kanoa_file_falls_back_to_profile_prices_with_a_problem():
    write_kanoa_pricing(Path.home() / ".config", "{oops")
    kanoa = load_kanoa_pricing()
    assert "not valid JSON" in kanoa.problem
    assert prices_for(Profile(model=MOLMO), kanoa).source == "profile"


def test_malformed_kanoa_entries_are_skipped():
    write_kanoa_pricing(
        Path.home() / ".config",
        {"vllm": {MOLMO: {"input_price": "cheap"}, "ok": {"input_price": 1, "output_price": 2}}},
    )
    kanoa = load_kanoa_pricing()
    assert set(kanoa.table["vllm"]) == {"ok"}


def test_cost_tracker_sums_a_session():
    tracker = CostTracker()
    prices = Prices(1.0, 3.0)
    first = tracker.add(1000, 500, prices)
    assert first.cost == pytest.approx(0.0025)
    tracker.add(2000, 0, prices)
    assert tracker.answers == 2
    assert tracker.total_tokens == 3500
    assert tracker.cost == pytest.approx(0.0045)
    tracker.reset()
    assert (tracker.answers, tracker.cost) == (0, 0.0)


def test_energy_cost_and_cost_formatting():
    assert energy_cost(1000.0, 0.30) == pytest.approx(0.30)  # watt-hours: 1 kWh
    assert energy_cost(3.0, 0.25) == pytest.approx(0.00075)  # one answer's GPU energy
    assert energy_cost(1000, None) is None
    assert format_cost(1234.5) == "$1,234.50"
    assert format_cost(0.00012) == "$0.00012"
    assert format_cost(0.000054) == "$0.000054"  # one local answer: never "$0.00"
    assert format_cost(1.234) == "$1.23"
    assert format_cost(0) == "$0.00"
