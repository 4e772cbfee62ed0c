"""Import heavy code without a full garbage collection in the middle of it.

An import creates long-lived objects by the tens of thousands (classes, functions, enum
members), and CPython's cyclic collector runs a full pass over every tracked object when
enough of them pile up: 58-71 ms here, holding the GIL, collecting nothing. Run on a worker
thread during start-up (issue 18), that pass froze the window: its GUI thread could not
get the GIL. :func:`paused` keeps the collector off while heavy code loads and then
moves everything loaded so far out of its reach (:func:`gc.freeze`), so later full passes,
while the window streams an answer, no longer walk the application's own modules either.

What a frozen object never gets is collection as part of a garbage cycle: modules,
classes and the window are meant to live until the process ends. Reference counting still
frees everything else as usual.
"""

from __future__ import annotations

import gc
import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

_lock = threading.Lock()
_depth = 0
_was_enabled = True


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside the block (nested and concurrent uses are counted);
    on leaving the outermost one, everything tracked so far is frozen and the collector
    is back as it was."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.freeze()
                if _was_enabled:
                    gc.enable()


def import_heavy(name: str) -> ModuleType:
    """``importlib.import_module(name)`` inside :func:`paused` (at once when loaded)."""
    import sys

    module = sys.modules.get(name)
    if module is not None:
        return module
    with paused():
        return importlib.import_module(name)


__all__ = ["import_heavy", "paused"]
