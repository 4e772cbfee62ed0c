"""Regenerate docs/screenshot.png: the window after a real interpretation.

Starts the real llama.cpp server (SmolLM2-135M, built by `make test-servers`), loads a CSV,
draws a quick plot, interprets, and grabs the window offscreen.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_screenshot.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("KANOA_DESKTOP_HOME", tempfile.mkdtemp(prefix="kanoa-shot-"))
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kanoa_desktop.ui.app import create_application, create_event_loop  # noqa: E402
from tests.servers.llama import LlamaServer  # noqa: E402


def write_csv(path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    hours = np.arange(0, 24, 0.5)
    od = 0.05 * np.exp(0.32 * hours) / (1 + 0.05 * (np.exp(0.32 * hours) - 1) / 1.8)
    rows = ["hour,od600,temperature_c"]
    for h, v in zip(hours, od, strict=True):
        rows.append(f"{h:.1f},{v + rng.normal(0, 0.01):.4f},{37 + rng.normal(0, 0.1):.2f}")
    path.write_text("\n".join(rows) + "\n")


async def main(out: Path) -> None:
    from kanoa_desktop.ui.main_window import MainWindow

    logs = Path(tempfile.mkdtemp())
    server = LlamaServer().start(logs)
    try:
        w = MainWindow()
        p = w.store.active.with_user_values(
            name="llama.cpp (SmolLM2)", api_base=server.api_base, model="smollm2", max_tokens=220,
            temperature=0.3,
        )
        w.store.update(p)
        w.store.save()
        w.profile_switcher.refresh()
        w._on_profile_changed(w.store.active)
        w.resize(1400, 860)
        w.show()
        csv = Path(tempfile.mkdtemp()) / "growth_curve.csv"
        write_csv(csv)
        w.open_paths([csv])
        while w.table is None:
            await asyncio.sleep(0.05)
        w.inputs.context.setPlainText("E. coli K12 batch culture in LB at 37 °C, OD600 every 30 min")
        w.inputs.focus.setText("growth phases and the doubling time")
        w.interpret()
        while w.streaming:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # let the GPU panel scrape llama.cpp's /metrics
        w.grab().save(str(out))
        print("saved", out, "state:", w.status.state.text(), w.status.tokens.text())
        await w.shutdown()
    finally:
        server.stop()


if __name__ == "__main__":
    app = create_application()
    loop = create_event_loop(app)
    with loop:
        loop.run_until_complete(main(ROOT / "docs" / "screenshot.png"))
