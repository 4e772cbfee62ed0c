"""Memory at rest on a real display, and what the first question costs.

Run: ``python -m bench.bench_memory [--repeat N]``.

Under Xvfb (Qt's xcb platform, as a user's desktop), with the active profile's server
answering (llama.cpp's ``llama-server`` with SmolLM2, or the vLLM test server when it is not
built), a fresh process opens the window; 2 s after the window is mapped (its first
expose) the process's resident memory is read. Baseline: the same for a bare
``QMainWindow`` (Python + PySide6 + qasync, the app's QApplication set-up, as
bench_startup's baseline) in the same run, and one on a plain ``QApplication``. Aim (issue
25): <= 2x.

Then the same window asks its first question: the time from Interpret to the first answer
token, which loading less at start must not lengthen, and the memory after that answer.
Also printed: which heavy modules are loaded at rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, machine_line, print_table, ratio

AIM_MEMORY = 2.0
SETTLE_S = 2.0
HEAVY = ("pandas", "numpy", "PIL", "matplotlib", "httpx", "pypdfium2", "keyring", "fpdf",
         "markdown_it", "sqlite3")  # fmt: skip
PYCACHE = Path(tempfile.gettempdir()) / "kanoa-desktop-bench-pycache"


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _child(kind: str, api_base: str, model: str) -> None:
    """Child process on the X display: a window at rest, then (the app) a first question.
    "plain": a QMainWindow on a bare QApplication and qasync loop, nothing of kanoa's."""
    if kind == "plain":
        import qasync
        from PySide6.QtWidgets import QApplication

        app = QApplication([])
        loop = qasync.QEventLoop(app)
    else:
        from kanoa_desktop.ui.app import create_application, create_event_loop

        app = create_application([])
        loop = create_event_loop(app)
    out: dict = {}

    async def main() -> None:
        from PySide6.QtCore import QEvent, QObject

        if kind in ("bare", "plain"):
            from PySide6.QtWidgets import QMainWindow

            w = QMainWindow()
            w.resize(1280, 720)
        else:
            from kanoa_desktop.ui.main_window import MainWindow

            w = MainWindow()
            p = w.store.active.with_user_values(api_base=api_base, model=model, max_tokens=16)
            w.store.update(p)
            w.store.save()
            w.profile_switcher.refresh()
            w._on_profile_changed(w.store.active)
        mapped: list[float] = []

        class Exposed(QObject):
            def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
                if not mapped and event.type() in (QEvent.Type.Expose, QEvent.Type.Paint):
                    mapped.append(time.monotonic())
                return False

        spy = Exposed()
        w.installEventFilter(spy)
        w.show()
        while not mapped:
            await asyncio.sleep(0.01)
        w.removeEventFilter(spy)
        await asyncio.sleep(SETTLE_S)
        out["rss_mb"] = _rss_mb()
        out["heavy"] = sorted(m for m in HEAVY if m in sys.modules)
        if kind == "app":
            w.inputs.question.setPlainText("Name one colour.")
            t0 = time.monotonic()
            w.interpret()
            while not (w.runner.stats is not None and w.runner.stats.t_first is not None):
                if time.monotonic() - t0 > 300:
                    break
                await asyncio.sleep(0.005)
            out["first_token_s"] = time.monotonic() - t0
            while w.streaming:
                await asyncio.sleep(0.02)
            out["state"] = w.status.state.text()
            out["rss_after_answer_mb"] = _rss_mb()
        print(json.dumps(out), flush=True)
        os._exit(0)

    with loop:
        loop.run_until_complete(main())


def _xvfb() -> tuple[subprocess.Popen, str]:
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        display = ":" + pipe.readline().strip()
    return xvfb, display


def _run_child(kind: str, display: str, api_base: str, model: str) -> dict:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": display,
               "KANOA_DESKTOP_HOME": home, "PYTHONPATH": str(ROOT),
               "PYTHONPYCACHEPREFIX": str(PYCACHE)}  # fmt: skip
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("WAYLAND_DISPLAY", None)
        proc = subprocess.run(
            [sys.executable, "-m", "bench.bench_memory", "--child", kind, api_base, model],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not line:
        raise RuntimeError(f"{kind} child failed: {proc.stderr[-1500:]}")
    return json.loads(line[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "API_BASE", "MODEL"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0

    from tests.servers.llama import LlamaServer, missing_reason
    from tests.servers.vllm_server import VLLMTestServer

    reason = missing_reason()
    logs = Path(tempfile.mkdtemp(prefix="kanoa-bench-mem-"))
    server = VLLMTestServer().start() if reason else LlamaServer(ctx_size=2048).start(logs)
    label = "vLLM test server (llama-server not built)" if reason else "llama.cpp (SmolLM2)"
    xvfb, display = _xvfb()
    try:
        runs: dict[str, list[dict]] = {"app": [], "bare": [], "plain": []}
        for _ in range(args.repeat):
            for kind in ("plain", "bare", "app"):  # interleaved: a machine's drift hits both alike
                runs[kind].append(_run_child(kind, display, server.api_base, server.model))
    finally:
        xvfb.terminate()
        xvfb.wait(10)
        server.stop()

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[kind] if key in r)

    app_mb, bare_mb = med("app", "rss_mb"), med("bare", "rss_mb")
    plain_mb = med("plain", "rss_mb")
    print(machine_line())
    print(f"server: {label}; RSS read {SETTLE_S:.0f} s after the window is mapped")
    print_table(
        f"Memory at rest on a real display (Xvfb), median of {args.repeat}",
        ["measure", "kanoa desktop", "bare QMainWindow", "ratio", "aim"],
        [
            ["RSS at rest (MB)", f"{app_mb:.1f}", f"{bare_mb:.1f}", ratio(app_mb, bare_mb),
             f"<= {AIM_MEMORY:g}x"],
            ["  against a QMainWindow on a plain QApplication", f"{app_mb:.1f}",
             f"{plain_mb:.1f}", ratio(app_mb, plain_mb), ""],
            ["RSS after the first answer (MB)", f"{med('app', 'rss_after_answer_mb'):.1f}",
             "", "", ""],
            ["Interpret -> first token (s)", f"{med('app', 'first_token_s'):.2f}", "", "", ""],
        ],
    )  # fmt: skip
    loaded = runs["app"][-1]["heavy"]
    print(f"heavy modules loaded at rest: {', '.join(loaded) or 'none'}")
    print(f"states after the first answer: {sorted({r.get('state') for r in runs['app']})}")
    holds = app_mb / bare_mb <= AIM_MEMORY
    print(f"aim memory <= {AIM_MEMORY:g}x: {'holds' if holds else 'does NOT hold'} "
          f"({app_mb / bare_mb:.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
