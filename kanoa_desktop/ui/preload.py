"""Import a heavy module on a worker thread, so the GUI thread never waits for it.

The window shows before its heavy parts load (issue 18): what it needs later (httpx for
the GPU panel's poller and the first-run probe) is imported here after the first paint.
Python's import lock makes this safe: a GUI-thread import of the same module meanwhile
waits for this one instead of importing it twice.

All of it runs on one worker thread, one job after another: the GUI thread then shares
the GIL with a single importer, not with several at once (two importers beside the
GUI's own start-up work made 60-100 ms gaps in its event loop).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

# What httpx imports only when its first request goes out (78 modules): preloaded with it,
# or the first poll, probe or question would import them on the GUI thread.
HTTP_STACK = ("httpx", "httpcore", "h11", "anyio", "anyio._backends._asyncio", "sniffio",
              "certifi")  # fmt: skip

_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kanoa-preload")


async def run_off_thread(fn, *args):
    """``fn(*args)`` on the preloading thread, after the jobs queued before it."""
    return await asyncio.get_running_loop().run_in_executor(_WORKER, fn, *args)


def load_modules(required: Sequence[str], optional: Sequence[str] = ()) -> None:
    """:func:`kanoa_desktop.core.lazy.load_all`, and with the HTTP stack also the one TLS
    context every client shares: reading the CA bundle takes 50-100 ms, without the GIL
    here, on the GUI thread a stall. For a worker thread."""
    from kanoa_desktop.core.lazy import load_all

    load_all(required, optional)
    if "httpx" in (*required, *optional):
        from kanoa_desktop.core.endpoint.tls import default_context

        default_context()


def _import_all(names: tuple[str, ...]) -> ModuleType:
    load_modules(names[:1], names[1:])  # only the first name is required
    return sys.modules[names[0]]


async def import_off_thread(name: str, *also: str) -> ModuleType:
    """``importlib.import_module`` of ``name`` and ``also`` on a worker thread (at once when
    all are loaded); returns ``name``'s module."""
    import sys

    names = (name, *also)
    if all(n in sys.modules for n in names):
        return sys.modules[name]
    return await run_off_thread(_import_all, names)


async def after_first_paint(widget, timeout_s: float = 2.0) -> None:
    """Return once the top-level ``widget`` has been painted (at once if it already was;
    after ``timeout_s`` at the latest), so deferred start-up work never delays the first
    frame."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    if widget.property("kanoaPainted"):
        return
    done = asyncio.get_running_loop().create_future()

    class _FirstPaint(QObject):
        def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
            # A top-level widget paints its whole tree while handling UpdateRequest.
            kinds = (QEvent.Type.Paint, QEvent.Type.UpdateRequest)
            if event.type() in kinds and not done.done():
                widget.setProperty("kanoaPainted", True)
                # After this paint is done, not from inside it.
                QTimer.singleShot(0, lambda: done.done() or done.set_result(None))
            return False

    spy = _FirstPaint(widget)
    widget.installEventFilter(spy)
    try:
        await asyncio.wait_for(done, timeout_s)
    except TimeoutError:
        pass  # never painted (hidden, or a platform without expose): go on anyway
    finally:
        widget.removeEventFilter(spy)
        spy.deleteLater()


__all__ = ["HTTP_STACK", "after_first_paint", "import_off_thread",
           "load_modules", "run_off_thread"]  # fmt: skip
