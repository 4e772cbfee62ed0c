"""An exception in a Qt override is a log record, never a native crash (issue 25).

The root cause of the table segfault, shown on its own: with shiboken6 6.11 on CPython
3.11 an exception raised by C code (an IndexError from indexing a range or a list) that
escapes a Python override of a C++ virtual crashes the process in shiboken's error
reporting. The guard (ui/qt_guard.py) turns it into a log record; every override in
``kanoa_desktop.ui`` is guarded, which the last test checks.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
import signal
import subprocess
import sys
import textwrap

import pytest

import kanoa_desktop.ui
from kanoa_desktop.ui import qt_guard

# Names shadowing a Qt method that Qt never calls back (not C++ virtuals): a Python
# override of them is an ordinary method.
NOT_VIRTUAL = {"append"}

_OVERRIDE = textwrap.dedent(
    """
    import faulthandler, logging, sys
    faulthandler.enable()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget
    from kanoa_desktop.ui.qt_guard import guarded

    app = QApplication([])
    armed = False

    class Box(QWidget):
        {decorator}
        def sizeHint(self):
            if armed:
                return range(3)[5]  # IndexError raised by C code: left unnormalized
            return super().sizeHint()

    parent = QWidget()
    layout = QVBoxLayout(parent)
    layout.addWidget(Box())
    armed = True
    parent.show()  # a C++ call from Python that asks the override
    app.processEvents()
    print("survived", flush=True)
    """
)


def _run_override(decorator: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _OVERRIDE.replace("{decorator}", decorator)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_index_error_escaping_an_override_kills_the_process_in_shiboken():
    """The root cause, reproduced without any app code. If a PySide6 update fixes
    shiboken, this fails: the guard then stays as a safety net and this test goes."""
    out = _run_override("")
    assert out.returncode == -signal.SIGSEGV, (out.returncode, out.stdout, out.stderr[-2000:])
    assert "survived" not in out.stdout


def test_the_guard_turns_it_into_a_logged_error_and_the_process_lives():
    out = _run_override("@guarded(fallback=lambda self: QWidget.sizeHint(self))")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "survived" in out.stdout
    assert "Error in Box.sizeHint" in out.stdout
    assert "IndexError: range object index out of range" in out.stdout


def test_the_guard_logs_a_few_tracebacks_per_place_then_counts(caplog):
    calls = []

    @qt_guard.guarded(fallback=lambda *a: "fallback")
    def paint(n):
        calls.append(n)
        return [][n]

    caplog.set_level(logging.ERROR, logger="kanoa_desktop.ui.qt_guard")
    results = [paint(i) for i in range(3 * qt_guard.LOG_LIMIT)]
    assert results == ["fallback"] * (3 * qt_guard.LOG_LIMIT)
    assert len(calls) == 3 * qt_guard.LOG_LIMIT
    assert len(caplog.records) == qt_guard.LOG_LIMIT
    assert "later ones are not logged" in caplog.records[-1].getMessage()
    assert len(qt_guard.caught()) == 3 * qt_guard.LOG_LIMIT
    qt_guard.clear()  # seen: not a failure of this test


def _ui_modules() -> list:
    names = [m.name for m in pkgutil.walk_packages(kanoa_desktop.ui.__path__, "kanoa_desktop.ui.")]
    return [importlib.import_module(n) for n in names]


def _overrides():
    """(qualified name, function) for every method of a ui class that shadows a method
    of a PySide6 base class."""
    import shiboken6
    from PySide6.QtCore import Signal

    found = []
    for module in _ui_modules():
        for cls in vars(module).values():
            if not (
                inspect.isclass(cls)
                and cls.__module__ == module.__name__
                and issubclass(cls, shiboken6.Object)
            ):
                continue
            qt_bases = [b for b in cls.__mro__ if b.__module__.startswith("PySide6.")]
            for name, value in vars(cls).items():
                if name.startswith("__") or isinstance(value, Signal) or not callable(value):
                    continue
                if name in NOT_VIRTUAL:
                    continue
                if any(callable(getattr(b, name, None)) for b in qt_bases):
                    found.append((f"{module.__name__}.{cls.__qualname__}.{name}", value))
    return found


def test_every_override_of_a_qt_virtual_in_the_ui_is_guarded(qapp):
    overrides = _overrides()
    names = {n for n, _ in overrides}
    # The walk really finds the overrides (the model, its header, event handlers).
    assert "kanoa_desktop.ui.table_view.DataFrameModel.data" in names
    assert "kanoa_desktop.ui.table_view.RowHeader.sizeHint" in names
    assert "kanoa_desktop.ui.sparkline.Sparkline.paintEvent" in names
    bare = [n for n, fn in overrides if not getattr(fn, qt_guard.GUARD_MARK, False)]
    assert bare == [], (
        "Qt overrides that can let an exception reach shiboken (a segfault on Python "
        f"3.11): {bare}. Wrap them with ui.qt_guard.guarded."
    )


@pytest.mark.parametrize("fallback", [None, False])
def test_a_guarded_override_returns_its_fallback(fallback):
    @qt_guard.guarded(fallback=fallback)
    def event_filter(obj, event):
        raise ZeroDivisionError

    assert event_filter(None, None) is fallback
    assert [type(e) for _, e in qt_guard.caught()] == [ZeroDivisionError]
    qt_guard.clear()
