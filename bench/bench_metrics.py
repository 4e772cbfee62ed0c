"""Benchmark parse-and-derive of a vLLM /metrics body against prometheus_client's bare parse.

Run: ``python bench/bench_metrics.py [--repeat N] [--file PATH]``. Prints a table; asserts
nothing about time. The issue's aim: under 5 ms per scrape, so a 1 s poll costs under 1 % of
a core.

Rows:
- bare parse: ``list(text_string_to_metric_families(body))`` on the whole body (the floor
  a naive implementation pays before deriving anything);
- parse_scrape: our parse (filters to the families we show, then prometheus_client);
- parse + derive: ``parse_scrape`` + ``MetricsDeriver.update`` with a 60-scrape window
  already filled, as in a panel that has been polling for a minute;
- parse + derive (all samples): the same with ``keep_all=True`` (no filtering).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import version as package_version
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kanoa_desktop.core.monitor.metrics import MetricsDeriver, parse_scrape  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "vllm-0.33-metrics.prom"


def _per_call(fn: Callable[[], object], repeat: int, inner: int) -> float:
    """Best of ``repeat`` runs of ``inner`` calls, in seconds per call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--inner", type=int, default=50)
    parser.add_argument("--file", type=Path, default=REFERENCE)
    args = parser.parse_args()

    body = args.file.read_text()
    version = package_version("prometheus-client")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, prometheus_client {version}".replace("  ", " ")
    )
    print(f"body: {args.file.name}, {len(body.splitlines())} lines, {len(body):,} bytes")

    clock = iter(range(10**9))

    def derive_with(keep_all: bool) -> Callable[[], object]:
        deriver = MetricsDeriver()
        for _ in range(60):  # fill the one-minute window as a 1 s poll would
            deriver.update(parse_scrape(body, float(next(clock)), keep_all=keep_all))
        return lambda: deriver.update(parse_scrape(body, float(next(clock)), keep_all=keep_all))

    base = _per_call(lambda: list(text_string_to_metric_families(body)), args.repeat, args.inner)
    rows = [
        ("bare prometheus_client parse", base),
        ("parse_scrape", _per_call(lambda: parse_scrape(body, 0.0), args.repeat, args.inner)),
        ("parse + derive", _per_call(derive_with(False), args.repeat, args.inner)),
        ("parse + derive (all samples)", _per_call(derive_with(True), args.repeat, args.inner)),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'step':<{width}}  {'ms/scrape':>9}  {'vs bare':>7}  {'1 s poll':>9}")
    for name, seconds in rows:
        print(
            f"{name:<{width}}  {seconds * 1e3:9.2f}  {seconds / base:6.2f}x  "
            f"{seconds * 100:8.2f}%"  # seconds per 1 s poll, as a share of one core
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
