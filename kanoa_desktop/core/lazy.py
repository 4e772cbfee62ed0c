"""Modules that load on first use: the one mechanism of the whole app.

Importing the window or a command must not import what only a later action needs (issue
18). Three shapes of the same idea, all here:

- :class:`LazyModule`: ``P = LazyModule("a.b")`` at the top of a module, ``P.Name`` later
  imports ``a.b`` on first use;
- :func:`attach`: a package's public names loaded from their submodules on first access
  (PEP 562; the shape of scientific Python's ``lazy_loader.attach``);
- :func:`load` and :func:`load_all`: import now, on whatever thread calls (start-up's
  worker preloads with them).

Every import they make runs with the cyclic garbage collector paused (:func:`paused`).
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
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
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


def load(name: str) -> ModuleType:
    """``importlib.import_module(name)`` inside :func:`paused` (at once when loaded)."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    with paused():
        return importlib.import_module(name)


def load_all(required: Sequence[str], optional: Sequence[str] = ()) -> None:
    """Import ``required`` (an ImportError is raised) and ``optional`` (what they *may*
    load later: a dependency's own dependencies change between versions, anyio 4.x dropped
    sniffio), all inside one :func:`paused`."""
    with paused():
        for name in optional:
            try:
                importlib.import_module(name)
            except ImportError:
                pass
        for name in required:
            importlib.import_module(name)


class LazyModule:
    """A module imported on its first attribute access: ``P = LazyModule("a.b")`` then
    ``P.Name`` imports ``a.b`` (once, with :func:`load`; thread-safe through Python's
    import lock). The window names what it uses later this way, so importing it does not
    import them; start-up imports them off the GUI thread after the first paint, so the
    first use finds them loaded."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str):
        module = self._module
        if module is None:
            module = self._module = load(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<LazyModule {self._name} ({state})>"


def attach(package: str, names: Mapping[str, str]):
    """PEP 562 hooks for ``package``: each of ``names`` (name -> submodule) loads from its
    submodule on first access, then stays in the package's namespace. Use as
    ``__getattr__, __dir__ = attach(__name__, {...})``; list the names in ``__all__`` and
    under ``if TYPE_CHECKING:`` imports for linters and readers."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str):  # noqa: N807 - the module hook's name
        where = names.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(load(f"{package}.{where}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return sorted({*namespace, *names})

    return __getattr__, __dir__


__all__ = ["LazyModule", "attach", "load", "load_all", "paused"]
