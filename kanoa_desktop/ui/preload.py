"""Import a heavy module on a worker thread, so the GUI thread never waits for it.

The window shows before its heavy parts load (issue 18): what it needs later (httpx for
the GPU panel's poller and the first-run probe) is imported here after the first paint.
Python's import lock makes this safe: a GUI-thread import of the same module meanwhile
waits for this one instead of importing it twice.
"""

from __future__ import annotations

import asyncio
import importlib
from types import ModuleType


async def import_off_thread(name: str) -> ModuleType:
    """``importlib.import_module(name)`` on a worker thread (at once when already loaded)."""
    import sys

    module = sys.modules.get(name)
    if module is not None:
        return module
    return await asyncio.to_thread(importlib.import_module, name)


__all__ = ["import_off_thread"]
