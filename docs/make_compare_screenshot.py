"""Regenerate docs/compare.png: the comparison window after two real answers.

Starts the real llama.cpp server (SmolLM2-135M, built by `make test-servers`) and the vLLM
test server (tests/servers/vllm_server.py), loads a growth-curve CSV, asks both the same
question in the comparison window (offscreen), waits for both answers and the comparison
table, and saves the window's pixels.

    .venv/bin/python docs/make_compare_screenshot.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "compare.png"


async def shoot(llama_base: str, vllm_base: str, csv: Path) -> None:
    from kanoa_desktop.core.ask.interpret import load_input
    from kanoa_desktop.core.ask.outbox import Outbox
    from kanoa_desktop.core.ask.services import Services
    from kanoa_desktop.core.config.profiles import Profile, ProfileStore
    from kanoa_desktop.core.endpoint.pool import ClientPool
    from kanoa_desktop.core.history.store import HistoryStore
    from kanoa_desktop.core.inputs.plan import table_summary
    from kanoa_desktop.ui.compare_view import CompareView

    table = load_input(csv)
    context = "E. coli growth in LB at 37 °C, optical density every 30 min"
    inputs = Outbox(table=table, table_summary=table_summary(table, 300), context=context)
    store = ProfileStore()
    store.load()
    profiles = [
        store.add(Profile(name="llama.cpp", api_base=llama_base, max_tokens=120,
                          temperature=0.3)),
        store.add(Profile(name="vLLM", api_base=vllm_base, max_tokens=400,
                          temperature=0.3)),
    ]  # fmt: skip
    pool = ClientPool()
    history = HistoryStore()
    view = CompareView(store, Services(pool, history=history), inputs=lambda: inputs)
    view.set_profiles(profiles)
    view.resize(1280, 760)
    view.show()
    view.question.setText("Describe the growth phases.")
    await view.ask()
    for _ in range(100):
        if view.table.isVisible():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    view.grab().save(str(OUT))
    print(f"wrote {OUT}")
    await view.shutdown()
    view.close()
    await pool.aclose()
    history.close()


def main() -> int:
    from docs.make_screenshot import write_csv
    from kanoa_desktop.ui.app import close_event_loop, create_application, create_event_loop
    from tests.servers.llama import LlamaServer, missing_reason
    from tests.servers.vllm_server import VLLMTestServer

    reason = missing_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KANOA_DESKTOP_HOME"] = str(Path(tmp) / "home")
        csv = Path(tmp) / "growth.csv"
        write_csv(csv)
        llama = LlamaServer().start(Path(tmp))
        vllm = VLLMTestServer(tokens_per_second=120).start()
        try:
            app = create_application([])
            app.setQuitOnLastWindowClosed(False)
            loop = create_event_loop(app)
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(shoot(llama.api_base, vllm.api_base, csv))
            finally:
                close_event_loop(loop)
        finally:
            vllm.stop()
            llama.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
