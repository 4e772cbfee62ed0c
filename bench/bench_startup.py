"""Start-up, idle memory, import time, and the GUI stall while a big CSV loads.

Run: ``python -m bench.bench_startup [--quick] [--repeat N] [--csv-rows N]``.

- Start-up: process start (just before ``Popen``) to the main window shown, in a fresh
  subprocess that imports the app, builds ``MainWindow`` offscreen on the qasync loop (as
  ``run_app`` does) and prints a wall-clock timestamp once the window is exposed; then its
  resident memory after one idle second. Baseline: the same for an empty ``QMainWindow``
  (Python + PySide6, the floor any Qt app pays). ``KANOA_DESKTOP_HOME`` is a temporary
  folder, so no real profile is read.
- ``import kanoa_desktop.core.endpoint.client`` in a fresh process, against ``import kanoa``.
- CSV: loading N rows × 10 columns (bench_tables' generator) through the window's path
  (``open_paths``: thread pool + qasync), the longest gap of a 1 ms heartbeat QTimer on
  the GUI thread while it loads and summarises; baseline: ``load_table`` called on the GUI
  thread (what a naive window would do).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, machine_line, print_table, ratio

CHILD_ENV = {"QT_QPA_PLATFORM": "offscreen"}


def _child_window(kind: str) -> None:
    """Child process: build and show a window, print JSON timings, exit."""
    t_import0 = time.time()
    from PySide6.QtCore import QTimer  # noqa: F401

    from kanoa_desktop.ui.app import create_application, create_event_loop

    app = create_application([])
    loop = create_event_loop(app)
    import asyncio

    asyncio.set_event_loop(loop)
    out: dict[str, float] = {"imported": time.time() - t_import0}

    async def main() -> None:
        if kind == "app":
            from kanoa_desktop.ui.main_window import MainWindow

            w = MainWindow()
        else:
            from PySide6.QtWidgets import QMainWindow

            w = QMainWindow()
            w.resize(1200, 800)
        w.show()
        app.processEvents()
        out["shown"] = time.time()
        await asyncio.sleep(1.0)
        from bench.common import rss_mb

        out["rss_mb"] = rss_mb()
        print(json.dumps(out), flush=True)
        os._exit(0)  # the timing is taken; skip a slow teardown

    with loop:
        loop.run_until_complete(main())


def _startup(kind: str, home: str) -> dict:
    env = {**os.environ, **CHILD_ENV, "KANOA_DESKTOP_HOME": home, "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "bench.bench_startup", "--child", kind],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not line:
        raise RuntimeError(f"start-up child failed: {proc.stderr[-800:]}")
    data = json.loads(line[-1])
    return {"start_to_shown": data["shown"] - t0, "rss_mb": data["rss_mb"]}


def _import_time(module: str) -> float | None:
    code = f"import time;t=time.perf_counter();import {module};print(time.perf_counter()-t)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    if proc.returncode != 0:
        return None
    return float(proc.stdout.strip().splitlines()[-1])


def _csv_stall(rows: int) -> tuple[float, float, float, float]:
    """(window path wall s, its max stall s, naive wall s, naive max stall s)."""
    import asyncio

    from PySide6.QtCore import QTimer

    from bench.bench_tables import _make_csv
    from kanoa_desktop.core.inputs.tables import load_table, summarise_table
    from kanoa_desktop.ui.app import create_application, create_event_loop
    from kanoa_desktop.ui.main_window import MainWindow

    app = create_application([])
    loop = create_event_loop(app)
    asyncio.set_event_loop(loop)
    tmp = Path(tempfile.mkdtemp())
    csv_path = tmp / "big.csv"
    _make_csv(csv_path, rows)
    gaps: list[float] = []
    last = [time.perf_counter()]

    def beat() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    heartbeat = QTimer()
    heartbeat.setInterval(1)
    heartbeat.timeout.connect(beat)

    async def main() -> tuple[float, float, float, float]:
        w = MainWindow()
        w.show()
        await asyncio.sleep(0.3)
        gaps.clear()
        last[0] = time.perf_counter()
        heartbeat.start()
        t0 = time.perf_counter()
        w.open_paths([csv_path])
        while w.table is None:
            await asyncio.sleep(0.005)
        ours_wall = time.perf_counter() - t0
        ours_stall = max(gaps) if gaps else 0.0
        # Baseline: the same work on the GUI thread, between two heartbeats.
        await asyncio.sleep(0.2)
        gaps.clear()
        last[0] = time.perf_counter()
        t1 = time.perf_counter()
        table = load_table(csv_path)
        summarise_table(table, token_budget=1500)
        await asyncio.sleep(0.05)
        base_wall = time.perf_counter() - t1
        base_stall = max(gaps) if gaps else 0.0
        heartbeat.stop()
        await w.shutdown()
        return ours_wall, ours_stall, base_wall, base_stall

    with loop:
        return loop.run_until_complete(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 200,000 CSV rows")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--csv-rows", type=int, default=None)
    parser.add_argument("--child", choices=["app", "empty"], help=argparse.SUPPRESS)
    parser.add_argument("--csv-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child_window(args.child)
        return 0
    if args.csv_child:
        print(json.dumps(_csv_stall(args.csv_child)))
        return 0
    repeat = args.repeat or (2 if args.quick else 5)
    rows = args.csv_rows or (200_000 if args.quick else 1_000_000)

    print(machine_line())
    with tempfile.TemporaryDirectory() as home:
        app = [_startup("app", home) for _ in range(repeat)]
        empty = [_startup("empty", home) for _ in range(repeat)]
    med = statistics.median
    a_t, e_t = med(r["start_to_shown"] for r in app), med(r["start_to_shown"] for r in empty)
    a_m, e_m = med(r["rss_mb"] for r in app), med(r["rss_mb"] for r in empty)
    imp = [_import_time("kanoa_desktop.core.endpoint.client") for _ in range(repeat)]
    kimp = [_import_time("kanoa") for _ in range(repeat)]
    imp_m = med([x for x in imp if x is not None]) if any(x is not None for x in imp) else None
    kimp_ok = [x for x in kimp if x is not None]
    kimp_m = med(kimp_ok) if kimp_ok else None
    print_table(
        "Start-up and idle memory (offscreen, fresh process each time)",
        ["measure", "kanoa desktop", "baseline", "baseline is", "ratio"],
        [
            ("process start -> main window shown (s)", a_t, e_t, "empty QMainWindow",
             ratio(a_t, e_t)),
            ("idle RSS after 1 s (MB)", a_m, e_m, "empty QMainWindow", ratio(a_m, e_m)),
            ("import kanoa_desktop.core.endpoint.client (s)", imp_m, kimp_m, "import kanoa 0.6",
             ratio(imp_m, kimp_m)),
        ],
        [f"median of {repeat}; KANOA_DESKTOP_HOME is a temporary folder."
         + ("" if kimp_ok else " kanoa is not installed: pip install kanoa (bench extra).")],
    )  # fmt: skip

    env = {**os.environ, **CHILD_ENV, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as home:
        env["KANOA_DESKTOP_HOME"] = home
        proc = subprocess.run([sys.executable, "-m", "bench.bench_startup", "--csv-child",
                               str(rows)], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
    if not line:
        print(f"\nCSV stall bench failed: {proc.stderr[-800:]}")
        return 1
    ow, os_, bw, bs = json.loads(line[-1])
    print_table(
        f"CSV {rows:,} rows × 10 columns: load + summarise, longest GUI stall",
        ["path", "wall s", "max stall ms", "baseline", "wall s", "max stall ms", "stall ratio"],
        [("window (thread pool + qasync)", ow, os_ * 1e3, "on the GUI thread", bw, bs * 1e3,
          ratio(os_, bs))],
        ["stall: longest gap of a 1 ms heartbeat QTimer while the file loads;",
         "bench_tables prints load_table / summarise_table timings against pandas."],
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
