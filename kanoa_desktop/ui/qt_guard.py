"""No exception leaves a Python override of a Qt virtual function.

Why this matters more than an ordinary bug: with shiboken6 6.11 on CPython 3.11, an
exception that escapes an override (``paintEvent``, ``sizeHint``, a model's ``data``...)
is handed to ``Shiboken::Errors::storePythonOverrideErrorOrPrint``, which prefixes its
message through ``PepException_GetArgs``. CPython 3.11 keeps an exception raised by C code
(``[][1]``, ``range(3)[5]``, ``1 / 0``) *unnormalized*: its value is still the message
string, not an exception object, and reading its ``args`` dereferences garbage. The process
dies with SIGSEGV and the log says nothing (issue 25: the table view's row header asked
the model for row 99,999 of a 30-row table during a model reset). An exception raised by a
``raise`` statement is normalized and survives; which one a bug raises is luck.

So every override of a Qt virtual in ``kanoa_desktop.ui`` either catches inside (the hot
model methods do it inline) or is wrapped by :func:`guarded`: the exception is logged with
its traceback (a few times per function, so a failing ``paintEvent`` cannot fill the log)
and Qt gets a harmless answer. ``tests/ui/test_qt_guard.py`` walks the ui classes and
fails on an override that is neither.

Tests see every swallowed error: :func:`caught` lists them, and the ui tests' fixture fails
a test that left one.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

GUARD_MARK = "__kanoa_guarded__"
LOG_LIMIT = 5  # tracebacks logged per function; later ones are counted
_CAUGHT_LIMIT = 100

_caught: list[tuple[str, BaseException]] = []
_counts: Counter[str] = Counter()


def report(where: str, exc: BaseException) -> None:
    """Record an exception a guard swallowed: logged (the first few per place, with the
    traceback) and kept for :func:`caught`. Never raises."""
    try:
        _counts[where] += 1
        n = _counts[where]
        if len(_caught) < _CAUGHT_LIMIT:
            _caught.append((where, exc))
        if n <= LOG_LIMIT:
            log.error(
                "Error in %s (Qt was given a default answer%s)",
                where,
                "; later ones are not logged" if n == LOG_LIMIT else "",
                exc_info=exc,
            )
    except Exception:  # noqa: BLE001, S110 - the reporter of last resort must not raise
        pass


def caught() -> list[tuple[str, BaseException]]:
    """The exceptions guards swallowed since the last :func:`clear` (at most 100)."""
    return list(_caught)


def clear() -> None:
    _caught.clear()
    _counts.clear()


def guarded(fallback: Any = None) -> Callable[[F], F]:
    """Wrap an override of a Qt virtual so an exception becomes a log record.

    ``fallback`` is what Qt gets instead: a value, or a callable taking the override's
    arguments (``lambda self, *a: QHeaderView.sizeHint(self)`` for the base class's
    answer). Event handlers need nothing (None); ``eventFilter`` wants False."""

    def decorate(fn: F) -> F:
        where = fn.__qualname__

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - see the module docstring
                report(where, exc)
                if callable(fallback):
                    try:
                        return fallback(*args, **kwargs)
                    except Exception as again:  # noqa: BLE001
                        report(f"{where} (fallback)", again)
                        return None
                return fallback

        setattr(wrapper, GUARD_MARK, True)
        return wrapper  # type: ignore[return-value]

    return decorate


def mark_guarded(fn: F) -> F:
    """For an override that catches inside (a hot path where a wrapper's call costs):
    marks it as guarded for the test that walks the ui classes."""
    setattr(fn, GUARD_MARK, True)
    return fn
