"""A module the preload thread is still importing is never handed out half made (seen: a
question asked right after start met "partially initialized module ... has no attribute
'Inputs'")."""

from __future__ import annotations

import sys
import threading
import time

from kanoa_desktop.core.lazy import LazyModule, load


def test_a_module_being_imported_elsewhere_is_waited_for(tmp_path, monkeypatch):
    (tmp_path / "slow_to_import_kanoa.py").write_text(
        "import time\nSTARTED = True\ntime.sleep(0.5)\nINPUTS = 'complete'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    name = "slow_to_import_kanoa"
    worker = threading.Thread(target=lambda: __import__(name))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while name not in sys.modules:  # the other thread has begun, not finished
            assert time.monotonic() < deadline
            time.sleep(0.001)
        assert LazyModule(name).INPUTS == "complete"
        assert load(name).INPUTS == "complete"
    finally:
        worker.join(30)
        sys.modules.pop(name, None)
