"""A cheaper answer to the question PySide6 asks after every import.

Once ``PySide6.QtCore`` is imported, PySide calls ``shibokensupport.feature.
feature_imported(module)`` after every import in the process, and, for a module it has
not seen, ``_mod_uses_pyside(module)``: ``inspect.getsource`` of the whole module and a
search for "PySide6" in it, to know whether the module may select a ``__feature__``
(snake_case, true_property). The source is otherwise never read. Measured here: ``import
pandas`` after PySide read 455 source files in 199 ms (860 ms in all, 570 ms without
PySide), the window's own start-up 67 files in 12-18 ms (issue 18; also napari#8584).

:func:`lighten` answers the same question from the module's namespace, which is complete
by then: a module that uses PySide holds PySide objects (a class, an enum, a feature flag
from ``from __feature__ import ...``, the module itself). A module that only names PySide
in a comment, or imports it inside functions, is now "does not use PySide" (PySide's -1,
"ignore this module") instead of 0 ("uses it, no feature selected"); both leave its Qt
calls exactly as they are unless it selects a feature, which needs the names above. If
PySide's internals differ from this (no such function, or one that takes other arguments),
nothing is changed: PySide's own check stays.
"""

from __future__ import annotations

import inspect
import sys
from types import ModuleType

_PYSIDE_PREFIXES = ("PySide6", "shiboken6", "__feature__", "shibokensupport")


def uses_pyside(module: ModuleType) -> bool:
    """Whether ``module``'s namespace holds anything from PySide6 (or its feature flags)."""
    try:
        values = list(vars(module).values())
    except TypeError:
        return False
    for value in values:
        if isinstance(value, ModuleType):
            name = value.__name__
        else:
            try:
                name = getattr(value, "__module__", None)
            except Exception:  # noqa: BLE001 - an object whose attribute access fails
                continue
        if isinstance(name, str) and name.startswith(_PYSIDE_PREFIXES):
            return True
    return False


def _takes_one_module(check) -> bool:
    try:
        params = list(inspect.signature(check).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return len(params) == 1 and params[0].kind in positional


def lighten() -> bool:
    """Install :func:`uses_pyside` as PySide's check; True when it was installed.

    Only over a check of the shape it replaces (one positional argument, beside PySide's
    ``pyside_feature_dict``); a PySide whose check takes other arguments keeps its own.
    """
    feature = sys.modules.get("shibokensupport.feature")
    original = getattr(feature, "_mod_uses_pyside", None) if feature is not None else None
    if original is uses_pyside:
        return True
    if not callable(original) or not _takes_one_module(original):
        return False
    if not isinstance(getattr(feature, "pyside_feature_dict", None), dict):
        return False
    feature._mod_uses_pyside = uses_pyside
    return True


__all__ = ["lighten", "uses_pyside"]
