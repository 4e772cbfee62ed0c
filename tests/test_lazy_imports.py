"""The window starts without its heavy libraries: they load when first used.

Each check runs in a fresh interpreter (``sys.modules`` of this test process already holds
everything), offscreen, with a temporary ``KANOA_DESKTOP_HOME``. Not timed: it checks which
modules are loaded, so a top-level import that slips back in fails here whatever the
machine's speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Never needed to show the window: loaded by the first table, figure, plot, PDF or request.
NOT_AT_IMPORT = ("pandas", "matplotlib", "numpy", "PIL", "pypdfium2", "httpx",
                 "keyring", "prometheus_client", "openpyxl", "pyarrow")  # fmt: skip
# Still absent after the window is shown and the loop has run a while (the GPU panel's
# poller may bring httpx in by then, on a worker thread).
NOT_WHILE_IDLE = ("pandas", "matplotlib", "numpy", "pypdfium2", "openpyxl",
                  "pyarrow")  # fmt: skip

CHILD = """
import asyncio, json, sys
heavy = {heavy!r}
import kanoa_desktop.ui.main_window
at_import = sorted(m for m in heavy if m in sys.modules)
from kanoa_desktop.ui.app import create_application, create_event_loop
app = create_application([])
loop = create_event_loop(app)
asyncio.set_event_loop(loop)
out = {{"at_import": at_import}}

async def main():
    from kanoa_desktop.ui.main_window import MainWindow
    w = MainWindow()
    w.show()
    await asyncio.sleep(1.5)  # first paint, deferred start-up work, a few poll attempts
    out["shown"] = w.isVisible()
    out["idle"] = sorted(m for m in heavy if m in sys.modules)
    await w.shutdown()

with loop:
    loop.run_until_complete(main())
print("RESULT " + json.dumps(out), flush=True)
"""


def _run_child(tmp_path: Path) -> dict:
    heavy = sorted(set(NOT_AT_IMPORT) | set(NOT_WHILE_IDLE))
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "KANOA_DESKTOP_HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(heavy=heavy)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"child failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def child(tmp_path_factory) -> dict:
    return _run_child(tmp_path_factory.mktemp("home"))


def test_importing_the_window_module_loads_no_heavy_library(child):
    loaded = [m for m in child["at_import"] if m in NOT_AT_IMPORT]
    assert loaded == [], f"imported with kanoa_desktop.ui.main_window: {loaded}"


def test_showing_the_window_and_idling_loads_neither_pandas_nor_matplotlib(child):
    assert child["shown"]
    loaded = [m for m in child["idle"] if m in NOT_WHILE_IDLE]
    assert loaded == [], f"loaded by showing the window and idling: {loaded}"
