"""The "Loading…" line is said only for a load that lasts, and always taken back."""

from __future__ import annotations

import asyncio

from kanoa_desktop.ui import input_loader
from kanoa_desktop.ui.input_loader import InputLoader


def _loader(delay_s: float) -> tuple[InputLoader, list[str], list]:
    said: list[str] = []
    tasks: list = []

    async def run_cpu(fn, *args):
        await asyncio.sleep(delay_s)
        return fn(*args)

    loader = InputLoader(lambda coro: tasks.append(asyncio.ensure_future(coro)), run_cpu,
                         lambda: 1024)  # fmt: skip
    loader.loading.connect(said.append)
    return loader, said, tasks


def test_a_quick_load_says_nothing_and_a_slow_one_says_it_and_takes_it_back(
    run, sample_csv, monkeypatch
):
    from kanoa_desktop.core.ask.interpret import load_input
    from kanoa_desktop.core.inputs.plan import table_summary

    table_summary(load_input(sample_csv))  # warm: pandas imported, so "quick" is quick
    monkeypatch.setattr(input_loader, "LOADING_DELAY_MS", 1000)
    quick, quick_said, quick_tasks = _loader(0.0)
    slow, slow_said, slow_tasks = _loader(0.8)

    async def scenario():
        quick.open_paths([sample_csv])
        slow.open_paths([sample_csv])
        await asyncio.gather(*quick_tasks, *slow_tasks)
        await asyncio.sleep(1.1)  # past the delay: a taken-back line is not said late

    run(scenario())
    assert quick_said == []
    assert slow_said == [f"Loading {sample_csv.name}…", ""]
