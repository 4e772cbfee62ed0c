"""Regenerate docs/screenshot.png and docs/screenshot-dark.png: the real window, light and dark.

Starts the real llama.cpp server (SmolLM2-135M, built by `make test-servers`) and a virtual
X server (Xvfb, 1,280 × 720: the smallest screen the window must fit), runs the window on
Qt's xcb platform with every dock open, loads a CSV, interprets it, and takes the X screen's
pixels in light and then dark.

    .venv/bin/python docs/make_screenshot.py

Needs Xvfb and the libraries Qt's xcb plugin links (`make test` installs both).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCREEN = "1280x720x24"
CHILD = "KANOA_SCREENSHOT_CHILD"


def write_csv(path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    hours = np.arange(0, 24, 0.5)
    od = 0.05 * np.exp(0.32 * hours) / (1 + 0.05 * (np.exp(0.32 * hours) - 1) / 1.8)
    rows = ["hour,od600,temperature_c"]
    for h, v in zip(hours, od, strict=True):
        rows.append(f"{h:.1f},{v + rng.normal(0, 0.01):.4f},{37 + rng.normal(0, 0.1):.2f}")
    path.write_text("\n".join(rows) + "\n")


async def until(predicate, seconds: float = 600.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the window did not get there in time")


async def shoot(api_base: str, out_dir: Path) -> None:
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QDockWidget

    from kanoa_desktop.ui.main_window import MainWindow

    w = MainWindow()
    try:
        p = w.store.active.with_user_values(
            name="llama.cpp (SmolLM2)", api_base=api_base, model="smollm2", max_tokens=150,
            temperature=0.3,
        )  # fmt: skip
        w.store.update(p)
        w.store.save()
        w.profile_switcher.refresh()
        w._on_profile_changed(w.store.active)
        w.resize(1280, 720)
        w.show()
        for dock in w.findChildren(QDockWidget):
            dock.show()
        w.gpu_dock.raise_()
        csv = Path(tempfile.mkdtemp()) / "growth_curve.csv"
        write_csv(csv)
        w.open_paths([csv])
        await until(lambda: w.outbox.table is not None)
        w.inputs.context.setPlainText(
            "E. coli K12 batch culture in LB at 37 °C, OD600 every 30 min"
        )
        w.inputs.focus.setText("growth phases and the doubling time")
        w.interpret()
        await until(lambda: w.streaming, 10)
        await until(lambda: not w.streaming)
        await asyncio.sleep(1.5)  # let the GPU panel scrape llama.cpp's /metrics
        state = w.status.state.text()
        print("state:", state, w.status.tokens.text(), file=sys.stderr)
        if "error" in state.lower():
            raise SystemExit(f"the interpretation failed ({state}): screenshots not kept")
        for theme, name in (("light", "screenshot.png"), ("dark", "screenshot-dark.png")):
            w.store.set_preferences(dataclasses.replace(w.store.preferences, theme=theme))
            w.apply_preferences()
            await asyncio.sleep(0.8)
            shot = QGuiApplication.primaryScreen().grabWindow(0)
            shot.save(str(out_dir / name))
            print("saved", out_dir / name, shot.width(), "x", shot.height(), file=sys.stderr)
    finally:
        await w.shutdown()
        w.close()


def child(api_base: str, out_dir: Path) -> None:
    from kanoa_desktop.ui.app import create_application, create_event_loop

    app = create_application()
    loop = create_event_loop(app)
    with loop:
        loop.run_until_complete(shoot(api_base, out_dir))


def main() -> int:
    from tests.servers.llama import LlamaServer

    out_dir = ROOT / "docs"
    logs = Path(tempfile.mkdtemp(prefix="kanoa-shot-"))
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", SCREEN, "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        display = ":" + pipe.readline().strip()
    server = LlamaServer().start(logs)
    try:
        env = {
            **os.environ,
            CHILD: "1",
            "DISPLAY": display,
            "QT_QPA_PLATFORM": "xcb",
            "KANOA_DESKTOP_HOME": str(logs / "home"),
        }
        env.pop("WAYLAND_DISPLAY", None)
        return subprocess.run(
            [sys.executable, __file__, server.api_base, str(out_dir)], env=env, check=False
        ).returncode
    finally:
        server.stop()
        xvfb.terminate()
        xvfb.wait()


if __name__ == "__main__":
    if os.environ.get(CHILD):
        child(sys.argv[1], Path(sys.argv[2]))
    else:
        sys.exit(main())
