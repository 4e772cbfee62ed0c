"""The window shows in two phases (issue 18): what the first frame does not show is built
after it, or on first use, and nothing of it is lost.

Import checks run in a fresh interpreter (this process has every module loaded). Nothing
here is timed: the checks are which modules and parts exist at each moment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Code the first frame does not need: imported after the first paint, on a worker thread.
DEFERRED_CODE = (
    "kanoa_desktop.core.ask.pipeline",
    "kanoa_desktop.core.history.store",
    "kanoa_desktop.core.kb.index",
    "kanoa_desktop.core.endpoint.client",
    "kanoa_desktop.ui.window_dialogs",
    "kanoa_desktop.ui.input_loader",
    "kanoa_desktop.ui.kb_panel",
    "kanoa_desktop.ui.fleet_panel",
    "kanoa_desktop.ui.gpu_panel",
    "kanoa_desktop.core.monitor.metrics",
)

CHILD = """
import asyncio, json, sys
deferred = {deferred!r}
from kanoa_desktop.ui.app import create_application, create_event_loop
app = create_application([])
loop = create_event_loop(app)
asyncio.set_event_loop(loop)
from kanoa_desktop.ui import window_parts
from kanoa_desktop.ui.main_window import MainWindow
out = {{}}

async def main():
    w = MainWindow()
    out["built_by_constructor"] = sorted(p for p in (*window_parts.DEFERRED_PARTS,
                                         "fleet_panel", "clients", "gpu_panel")
                                         if p in w.__dict__)
    # The history panel is built with the first frame (it sets the docks' width), empty.
    out["history_panel_empty"] = w.history_panel.store is None
    out["dock_width_first"] = None
    out["code_at_construction"] = sorted(m for m in deferred if m in sys.modules)
    w.show()
    from kanoa_desktop.ui.preload import after_first_paint
    await after_first_paint(w)
    out["dock_width_first"] = w.gpu_dock.width()
    for _ in range(200):  # the second phase: up to 20 s on a busy machine
        await asyncio.sleep(0.1)
        if all(p in w.__dict__ for p in window_parts.DEFERRED_PARTS):
            break
    out["built_after_paint"] = sorted(p for p in window_parts.DEFERRED_PARTS
                                      if p in w.__dict__)
    out["fleet_built_while_hidden"] = "fleet_panel" in w.__dict__
    out["history_in_dock"] = w.history_dock.widget().widget() is w.history_panel
    out["history_has_store"] = w.history_panel.store is w.history
    out["gpu_in_dock"] = w.gpu_dock.widget().widget() is w.__dict__.get("gpu_panel")
    out["gpu_poller"] = w.monitor.panel is w.__dict__.get("gpu_panel")
    out["dock_width_after"] = w.gpu_dock.width()
    out["kb_in_dock"] = w.kb_dock.widget().widget() is w.kb_panel
    w.fleet_dock.raise_()
    for _ in range(50):
        await asyncio.sleep(0.1)
        if "fleet_panel" in w.__dict__:
            break
    out["fleet_built_when_shown"] = "fleet_panel" in w.__dict__
    out["fleet_knows_it_is_seen"] = bool(getattr(w.__dict__.get("fleet_panel"), "_seen", False))
    out["fleet_in_dock"] = w.fleet_dock.widget().widget() is w.__dict__.get("fleet_panel")
    await w.shutdown()

with loop:
    loop.run_until_complete(main())
print("RESULT " + json.dumps(out), flush=True)
"""


def _child(tmp_path: Path) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "KANOA_DESKTOP_HOME": str(tmp_path),
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", CHILD.format(deferred=DEFERRED_CODE)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"child failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def test_the_first_frame_waits_for_no_deferred_code_and_the_rest_follows(tmp_path):
    out = _child(tmp_path)
    assert out["built_by_constructor"] == []
    assert out["code_at_construction"] == []
    from kanoa_desktop.ui.window_parts import DEFERRED_PARTS

    assert out["built_after_paint"] == sorted(DEFERRED_PARTS)
    assert out["history_in_dock"] and out["kb_in_dock"] and out["gpu_in_dock"]
    assert out["history_panel_empty"] and out["history_has_store"] and out["gpu_poller"]
    # Nothing built later changes the layout of the frame already shown.
    assert out["dock_width_first"] == out["dock_width_after"]
    # The fleet panel is built when its tab is first shown, and knows it is on screen.
    assert not out["fleet_built_while_hidden"]
    assert out["fleet_built_when_shown"] and out["fleet_in_dock"]
    assert out["fleet_knows_it_is_seen"]


def test_a_table_dropped_before_the_second_phase_loads(make_window, run, sample_csv):
    """Early user actions build what they need on the spot: the window is usable at once."""
    from tests.ui.conftest import wait_until

    w = make_window("http://127.0.0.1:9/v1")
    # make_window ran the loop once: the second phase has not built the loader yet.
    assert "loader" not in w.__dict__ and "runner" not in w.__dict__
    w.open_paths([sample_csv])

    async def loaded():
        await wait_until(lambda: bool(w.outbox.table_summary), 60, "the table and its summary")

    run(loaded(), timeout=90)
    assert w.outbox.table.name == sample_csv.name and w.outbox.table_summary
    assert w.runner.conversation.turns == [] and not w.streaming
    # Built on first use if the second phase has not reached it yet (read it first: the
    # dock holds a placeholder until then), and then it is what the dock shows.
    panel = w.kb_panel
    assert w.kb_dock.widget().widget() is panel


def test_a_question_asked_during_start_up_starts_after_it_and_can_be_stopped_first(
    make_window, run
):
    from tests.servers.vllm_server import VLLMTestServer
    from tests.ui.conftest import wait_until

    with VLLMTestServer(tokens_per_second=500, answer_tokens=5) as server:
        w = make_window(server.api_base, server.model)
        assert not w._started.is_set()  # make_window ran the loop once: phase two is on
        w.inputs.question.setPlainText("first")
        w.interpret()
        assert w.stop_action.isEnabled() and not w.interpret_action.isEnabled()
        w.stop()  # before it started: nothing is sent, nothing recorded
        assert not w.stop_action.isEnabled() and w.interpret_action.isEnabled()
        w.inputs.question.setPlainText("second")
        w.interpret()

        async def answered():
            await wait_until(lambda: w.conversation.turns and not w.streaming, 60, "answer")

        run(answered(), timeout=90)
        chats = [r for r in server.received if r.path.endswith("/chat/completions")]
    assert len(chats) == 1 and "second" in str(chats[0].body["messages"])
    assert len(w.conversation.turns) == 1
    assert w.monitor.poller is not None  # the poller was up before the answer began
