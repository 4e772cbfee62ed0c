"""Heavy imports run with the cyclic collector paused, and what they loaded is frozen
(core/lazy.py): a full pass over it held the GIL for 58-71 ms and stalled the window."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading

from kanoa_desktop.core import lazy


def test_no_collection_inside_and_the_collector_back_after():
    assert gc.isenabled()
    with lazy.paused():
        assert not gc.isenabled()
        with lazy.paused():  # nested: still off
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_concurrent_uses_keep_it_off_until_the_last_ends():
    inside, release = threading.Event(), threading.Event()

    def other():
        with lazy.paused():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    with lazy.paused():
        t.start()
        assert inside.wait(10)
    assert not gc.isenabled()  # the other thread's block is still open
    release.set()
    t.join(10)
    assert gc.isenabled()


def test_what_was_loaded_is_frozen_and_a_disabled_collector_stays_disabled():
    code = (
        "import gc\n"
        "from kanoa_desktop.core import lazy\n"
        "before = gc.get_freeze_count()\n"
        "m = lazy.load('json')\n"
        "import json\n"
        "assert m is json and gc.get_freeze_count() > before, gc.get_freeze_count()\n"
        "gc.disable()\n"
        "with lazy.paused():\n"
        "    pass\n"
        "assert not gc.isenabled()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_lazy_module_and_attached_names_load_on_first_use_only():
    """LazyModule and attach() import nothing until a name is used, then once."""
    code = (
        "import sys\n"
        "from kanoa_desktop.core.lazy import LazyModule\n"
        "P = LazyModule('kanoa_desktop.core.ask.prompts')\n"
        "assert 'kanoa_desktop.core.ask.prompts' not in sys.modules\n"
        "import kanoa_desktop.core.kb as kb\n"
        "assert 'kanoa_desktop.core.kb.index' not in sys.modules\n"
        "assert 'KnowledgeBase' in dir(kb)\n"
        "assert 'kanoa_desktop.core.kb.index' not in sys.modules\n"
        "text = P.DEFAULT_SYSTEM_PROMPT\n"
        "assert 'kanoa_desktop.core.ask.prompts' in sys.modules and text\n"
        "K = kb.KnowledgeBase\n"
        "assert 'kanoa_desktop.core.kb.index' in sys.modules and kb.KnowledgeBase is K\n"
        "assert 'KnowledgeBase' in vars(kb)\n"  # cached in the package after the first use
        "try:\n"
        "    kb.NoSuchName\n"
        "except AttributeError as exc:\n"
        "    print('ok', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.startswith("ok module 'kanoa_desktop.core.kb' has no attribute"), out.stderr
