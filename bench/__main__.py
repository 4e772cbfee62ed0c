"""``python -m bench [--quick]``: run every benchmark and print every table.

Each bench runs in its own process (a fresh interpreter, its own QApplication), in order:
metrics, tables, kb, client, streaming, start-up, memory at rest (under Xvfb), fleet, compare,
score, reports, install (the .deb's frozen app beside the source install: size and start; it
needs ``make deb``, which ``make bench`` runs when the .deb is missing). ``--quick`` passes
smaller sizes to each
(about 2 minutes in all; the full run takes under about 10). A failing bench is reported
and the others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.common import ROOT


def plan(quick: bool) -> list[tuple[str, list[str]]]:
    """(name, argv after ``python``) for every bench."""
    if quick:
        return [
            ("metrics", ["bench/bench_metrics.py", "--repeat", "2", "--inner", "10"]),
            ("tables", ["bench/bench_tables.py", "--rows", "200000", "--repeat", "1"]),
            ("kb", ["bench/bench_kb.py", "--files", "300", "--queries", "10"]),
            ("client", ["-m", "bench.bench_client", "--quick"]),
            ("streaming", ["-m", "bench.bench_streaming", "--quick"]),
            ("startup", ["-m", "bench.bench_startup", "--quick"]),
            ("memory", ["-m", "bench.bench_memory", "--repeat", "1"]),
            ("fleet", ["-m", "bench.bench_fleet", "--quick"]),
            ("compare", ["-m", "bench.bench_compare", "--quick"]),
            ("score", ["-m", "bench.bench_score", "--quick"]),
            ("reports", ["bench/bench_reports.py", "--chars", "1000000"]),
            ("install", ["-m", "bench.bench_install", "--quick"]),
        ]
    return [
        ("metrics", ["bench/bench_metrics.py"]),
        ("tables", ["bench/bench_tables.py", "--rows", "1000000"]),
        ("kb", ["bench/bench_kb.py"]),
        ("client", ["-m", "bench.bench_client"]),
        ("streaming", ["-m", "bench.bench_streaming"]),
        ("startup", ["-m", "bench.bench_startup"]),
        ("memory", ["-m", "bench.bench_memory"]),
        ("fleet", ["-m", "bench.bench_fleet"]),
        ("compare", ["-m", "bench.bench_compare"]),
        ("score", ["-m", "bench.bench_score"]),
        ("reports", ["bench/bench_reports.py"]),
        ("install", ["-m", "bench.bench_install"]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 2 minutes)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these benches")
    args = parser.parse_args(argv)
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    failed = []
    t_all = time.perf_counter()
    for name, cmd in plan(args.quick):
        if args.only and name not in args.only:
            continue
        print(f"\n######## {name} ########", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call([sys.executable, *cmd], cwd=ROOT, env=env)
        print(f"({name}: {time.perf_counter() - t0:.0f} s)", flush=True)
        if code != 0:
            failed.append(name)
    print(f"\nall benches: {time.perf_counter() - t_all:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
