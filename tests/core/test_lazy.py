"""Heavy imports run with the cyclic collector paused, and what they loaded is frozen
(core/gcpause.py): a full pass over it held the GIL for 58-71 ms and stalled the window."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading

from kanoa_desktop.core import gcpause


def test_no_collection_inside_and_the_collector_back_after():
    assert gc.isenabled()
    with gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():  # nested: still off
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_concurrent_uses_keep_it_off_until_the_last_ends():
    inside, release = threading.Event(), threading.Event()

    def other():
        with gcpause.paused():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    with gcpause.paused():
        t.start()
        assert inside.wait(10)
    assert not gc.isenabled()  # the other thread's block is still open
    release.set()
    t.join(10)
    assert gc.isenabled()


def test_what_was_loaded_is_frozen_and_a_disabled_collector_stays_disabled():
    code = (
        "import gc\n"
        "from kanoa_desktop.core import gcpause\n"
        "before = gc.get_freeze_count()\n"
        "m = gcpause.import_heavy('json')\n"
        "import json\n"
        "assert m is json and gc.get_freeze_count() > before, gc.get_freeze_count()\n"
        "gc.disable()\n"
        "with gcpause.paused():\n"
        "    pass\n"
        "assert not gc.isenabled()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
