"""Regenerate docs/score.png and docs/score-dark.png: the Score models window after a run,
and docs/score-suite.png: a contact sheet of the suite's first charts.

Two profiles score the first 16 items of the chart suite (seed 0):

- "llama.cpp, random projector": the real llama.cpp server with SmolLM2-135M and the tiny
  random vision projector (built by `make test-servers`): every chart really goes through
  the server, and it reads nothing (near zero is the expected score);
- "test server, scripted 80 %": the vLLM test server whose answers come from
  tests/servers/score_oracle.py: right with probability 0.8 from the truths it is handed.
  No model reads anything there either; it shows what the window reports when one does.

    .venv/bin/python docs/make_score_screenshot.py [--small DIR]

The docs' shots are 1280x720; ``--small DIR`` also writes the window at 900x600, light and
dark, into DIR (to look at, not kept).
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DOCS = ROOT / "docs"
N = 16


async def shoot(llama_base: str, vllm_base: str, small: Path | None = None) -> None:
    from PySide6.QtWidgets import QApplication

    from kanoa_desktop.core.ask.services import Services
    from kanoa_desktop.core.config.profiles import Profile, ProfileStore
    from kanoa_desktop.core.endpoint.pool import ClientPool
    from kanoa_desktop.core.history.store import HistoryStore
    from kanoa_desktop.ui.score_view import ScoreView
    from kanoa_desktop.ui.theme import apply_appearance

    store = ProfileStore()
    store.load()
    profiles = [
        store.add(Profile(name="llama.cpp, random projector", api_base=llama_base,
                          max_tokens=32, temperature=0.0)),
        store.add(Profile(name="test server, scripted 80 %", api_base=vllm_base,
                          temperature=0.0)),
    ]  # fmt: skip
    pool = ClientPool()
    history = HistoryStore()
    view = ScoreView(store, Services(pool, history=history))
    view.set_profiles(profiles)
    view.items.setValue(N)
    view.concurrency.setValue(2)
    view.resize(1280, 720)
    view.show()
    ended = await view.start()
    print(f"run ended: {ended.state if ended else view.message.text()}")
    shots = [((1280, 720), DOCS, "")] + ([((900, 600), small, "-900x600")] if small else [])
    for (width, height), where, suffix in shots:
        view.resize(width, height)
        for theme, name in (("light", "score"), ("dark", "score-dark")):
            apply_appearance(QApplication.instance(), theme)
            await asyncio.sleep(0.5)
            path = where / f"{name}{suffix}.png"
            view.grab().save(str(path))
            print(f"wrote {path} ({view.width()}x{view.height()})")
    await view.shutdown()
    view.close()
    await pool.aclose()
    history.close()


def contact_sheet() -> None:
    """The suite's first ten charts, two columns, as the models see them."""
    from PIL import Image

    from kanoa_desktop.core.score.suite import chart_png, suite_items

    items = suite_items(10, 0)
    cell_w, cell_h = 560, 380
    sheet = Image.new("RGB", (2 * cell_w, 5 * cell_h), "white")
    for k, item in enumerate(items):
        with Image.open(io.BytesIO(chart_png(item.chart))) as im:
            im = im.convert("RGB")
            im.thumbnail((cell_w, cell_h))
            sheet.paste(im, ((k % 2) * cell_w, (k // 2) * cell_h))
    sheet.save(DOCS / "score-suite.png", optimize=True)
    print(f"wrote {DOCS / 'score-suite.png'}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=Path, help="also write 900x600 shots here")
    args = parser.parse_args(argv)
    from kanoa_desktop.core.score.run import suite_source
    from kanoa_desktop.ui.app import close_event_loop, create_application, create_event_loop
    from tests.servers.llama import LlamaServer, missing_reason
    from tests.servers.score_oracle import ScoreOracle
    from tests.servers.vllm_server import VLLMTestServer

    reason = missing_reason(vision=True)
    if reason:
        print(reason, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KANOA_DESKTOP_HOME"] = str(Path(tmp) / "home")
        contact_sheet()
        oracle = ScoreOracle(suite_source(N, 0).items, 0.8, seed=1)
        llama = LlamaServer(vision=True).start(Path(tmp))
        vllm = VLLMTestServer(tokens_per_second=120, answer_for=oracle).start()
        try:
            app = create_application([])
            app.setQuitOnLastWindowClosed(False)
            loop = create_event_loop(app)
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(shoot(llama.api_base, vllm.api_base, args.small))
            finally:
                close_event_loop(loop)
        finally:
            vllm.stop()
            llama.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
