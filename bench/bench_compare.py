"""Comparison and batch: four panes streaming against one, and a batch's concurrency.

Run: ``QT_QPA_PLATFORM=offscreen python -m bench.bench_compare [--quick]``.

1. **Four panes at 2,000 tokens/s each** (``--tokens`` per answer) in the comparison window,
   end to end: four vLLM test servers, each in its own process (so the server's work never
   shares this process's GIL), stream over loopback HTTP into a real
   :class:`~kanoa_desktop.ui.compare_view.CompareView` on a qasync loop (client, pipeline,
   events, four AnswerViews, the status timer). Measured on the GUI thread: CPU
   (``time.thread_time``) and the longest event-loop stall (the largest gap between ticks
   of a 1 ms heartbeat QTimer). Baseline: the same window with one pane streaming alone
   (a second pane asks a server that answers at once, as a comparison needs two).
   Ratio: four panes / one pane.
2. **A batch of 40 figures** at concurrency 1, 2 and 4 against one vLLM test server (own
   process): wall time of the whole batch. Baseline: concurrency 1 (one at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench.common import ROOT, machine_line, print_table, ratio  # noqa: E402

_SERVER = (
    "import sys, time\n"
    "from tests.servers.vllm_server import VLLMTestServer\n"
    "s = VLLMTestServer(model=sys.argv[1], tokens_per_second=float(sys.argv[2]),\n"
    "                   answer_tokens=int(sys.argv[3])).start()\n"
    "print(s.api_base, flush=True)\n"
    "sys.stdin.read()\n"
    "s.stop()\n"
)


class ServerProcess:
    """A vLLM test server in its own process; stops when stdin closes."""

    def __init__(self, model: str, rate: float, tokens: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, model, str(rate), str(tokens)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.api_base = self.proc.stdout.readline().strip()
        if not self.api_base.startswith("http"):
            raise RuntimeError("the vLLM test server did not start")

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# ---------------------------------------------------------------- 1. panes


async def _panes_run(api_bases: list[str], streaming: int, tokens: int) -> dict:
    from PySide6.QtCore import QTimer

    from kanoa_desktop.core.ask.interpret import Inputs
    from kanoa_desktop.core.config.profiles import Profile, ProfileStore
    from kanoa_desktop.core.endpoint.pool import ClientPool
    from kanoa_desktop.ui.compare_view import CompareView

    store = ProfileStore(Path(tempfile.mkdtemp()) / "profiles.json")
    profiles = [
        store.add(Profile(name=f"pane {i + 1}", api_base=base, max_tokens=tokens + 8,
                          temperature=0.0))
        for i, base in enumerate(api_bases)
    ]  # fmt: skip
    state = {"last": None, "gap": 0.0, "cpu_last": 0.0, "gap_cpu": 0.0, "gap_at": 0.0}

    def beat() -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if state["last"] is not None and now - state["last"] > state["gap"]:
            state["gap"] = now - state["last"]
            # GUI-thread CPU spent inside the longest gap: near the gap when our code ran
            # that long, near zero when the OS gave the CPU to another process.
            state["gap_cpu"] = cpu - state["cpu_last"]
            state["gap_at"] = now
        state["last"], state["cpu_last"] = now, cpu

    heartbeat = QTimer()
    heartbeat.setInterval(1)
    heartbeat.timeout.connect(beat)

    pool = ClientPool()
    for p in profiles:
        # Outside the timing: a new client loads the CA certificates and the model list is
        # fetched once per endpoint (one-time costs of the first question, not streaming).
        await pool.resolve_model(p)
    view = CompareView(store, pool=pool, inputs=lambda: Inputs(question="Interpret."))
    view.set_profiles(profiles)
    view.resize(1600, 900)
    view.show()
    await asyncio.sleep(0.2)
    cpu0, t0 = time.thread_time(), time.perf_counter()
    heartbeat.start()
    ended = await view.ask()
    heartbeat.stop()
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - t0
    out = sum(e.stats.output_tokens for e in ended[:streaming] if e.stats)
    await view.shutdown()
    view.close()
    view.deleteLater()
    await pool.aclose()
    return {"cpu": cpu, "wall": wall, "stall": state["gap"], "stall_cpu": state["gap_cpu"],
            "stall_at": state["gap_at"] - t0,
            "tokens": out,
            "states": [e.state for e in ended]}  # fmt: skip


def bench_panes(tokens: int, rate: float) -> None:
    from kanoa_desktop.ui.app import create_application, create_event_loop

    app = create_application([])
    app.setQuitOnLastWindowClosed(False)  # closing one run's window must not end the loop
    loop = create_event_loop(app)
    asyncio.set_event_loop(loop)
    servers = [ServerProcess(f"model-{i}", rate, tokens) for i in range(4)]
    instant = ServerProcess("instant", 100_000.0, 1)

    async def both() -> tuple[dict, dict]:
        # Warm-up, not reported: first-use imports.
        await _panes_run([instant.api_base, instant.api_base], 0, tokens)
        one = await _panes_run([servers[0].api_base, instant.api_base], 1, tokens)
        four = await _panes_run([s.api_base for s in servers], 4, tokens)
        await asyncio.get_running_loop().shutdown_asyncgens()
        return one, four

    try:
        with loop:
            one, four = loop.run_until_complete(both())
    finally:
        for s in (*servers, instant):
            s.stop()
    rows = []
    for name, r in (("1 pane streaming", one), ("4 panes streaming", four)):
        rows.append((name, r["tokens"], r["wall"], r["cpu"], r["cpu"] / r["wall"] * 100,
                     r["cpu"] / max(1, r["tokens"]) * 1e6, r["stall"] * 1e3,
                     r["stall_cpu"] * 1e3, r["stall_at"]))  # fmt: skip
    print_table(
        f"Comparison window: {tokens:,}-token answers at {rate:,.0f} tokens/s per pane "
        "(GUI thread, end to end over loopback HTTP)",
        [
            "run",
            "tokens",
            "wall s",
            "GUI CPU s",
            "GUI CPU %",
            "µs/token",
            "max stall ms",
            "CPU in it ms",
            "ended at s",
        ],
        rows,
        [
            f"ratio 4 panes / 1 pane: GUI CPU {ratio(four['cpu'], one['cpu'])}, "
            f"max stall {ratio(four['stall'], one['stall'])}, "
            f"tokens {ratio(four['tokens'], one['tokens'])}",
            "CPU: time.thread_time() on the GUI thread (HTTP client, pipeline, rendering).",
            "Not timed: a warm-up run, and each endpoint's client and model list (one-time).",
            "Stall: the longest gap between ticks of a 1 ms heartbeat QTimer; CPU in it: the "
            "GUI thread's CPU time during that gap (low: the OS ran another process).",
            f"States: 1 pane {one['states']}, 4 panes {four['states']}.",
            "The servers share the machine's CPUs with the GUI: while the GUI process waits "
            "for a CPU, chunks pile up and are handled in one pass (a stall with CPU in it).",
        ],
    )


# ---------------------------------------------------------------- 2. batch


def _figures(folder: Path, n: int) -> None:
    from PIL import Image

    for i in range(n):
        Image.new("RGB", (320, 240), (i * 6 % 255, 90, 160)).save(folder / f"fig{i:03d}.png")


def bench_batch(items: int, rate: float, tokens: int) -> None:
    from kanoa_desktop.core.batch.plan import Template
    from kanoa_desktop.core.batch.runner import Batch
    from kanoa_desktop.core.batch.store import BatchStore
    from kanoa_desktop.core.config.profiles import Profile
    from kanoa_desktop.core.endpoint.pool import ClientPool

    folder = Path(tempfile.mkdtemp()) / "figures"
    folder.mkdir()
    _figures(folder, items)
    server = ServerProcess("batch-model", rate, tokens)
    rows, walls = [], {}
    try:
        for n in (1, 2, 4):

            async def go(n: int = n) -> tuple[float, int]:
                pool = ClientPool()
                store = BatchStore(Path(tempfile.mkdtemp()) / "b.sqlite3")
                profile = Profile(name="bench", api_base=server.api_base, max_tokens=tokens + 8)
                batch = Batch([folder], profile, Template(question="Describe {item}."),
                              pool=pool, store=store, concurrency=n)  # fmt: skip
                await batch.prepare()
                t0 = time.perf_counter()
                ended = await batch.run()
                wall = time.perf_counter() - t0
                await pool.aclose()
                store.close()
                return wall, ended.progress.done

            wall, done = asyncio.run(go())
            walls[n] = wall
            rows.append((n, done, wall, wall / max(1, done), ratio(wall, walls[1])))
    finally:
        server.stop()
    print_table(
        f"Batch of {items} figures, {tokens}-token answers at {rate:,.0f} tokens/s "
        "(vLLM test server in its own process)",
        ["concurrency", "items done", "wall s", "s/item", "ratio (vs one at a time)"],
        rows,
        ["Wall: Batch.run() from the first item to the last result stored (planning excluded).",
         "Baseline: concurrency 1, one item at a time, same batch, same server."],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter answers, 20 items")
    parser.add_argument("--rate", type=float, default=2000.0, help="tokens/s per pane")
    args = parser.parse_args(argv)
    print(machine_line())
    bench_panes(2000 if args.quick else 8000, args.rate)
    bench_batch(20 if args.quick else 40, 100.0, 30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
