"""Guards on how the project is built: core without Qt, a safe PySide6 build."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap

import kanoa_desktop.core


def test_core_package_imports_no_qt_module():
    modules = sorted(
        m.name for m in pkgutil.walk_packages(kanoa_desktop.core.__path__, "kanoa_desktop.core.")
    )
    assert "kanoa_desktop.core.endpoint.client" in modules  # the walk really found the core
    code = textwrap.dedent(
        f"""
        import importlib, json, sys
        for name in {modules!r}:
            importlib.import_module(name)
        bad = sorted(m for m in sys.modules
                     if m.split(".")[0] in ("PySide6", "shiboken6", "qasync", "pyqtgraph", "PyQt5", "PyQt6"))
        print(json.dumps(bad))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_void_method_calls_do_not_leak_references_to_none():
    """PySide6 6.12.0 on CPython 3.11 dropped a reference to None on every call of a
    method returning void and aborted after ~5,000 calls (none_dealloc)."""
    code = textwrap.dedent(
        """
        import sys
        from PySide6.QtCore import QObject
        from PySide6.QtWidgets import QApplication, QWidget
        app = QApplication([])
        obj, w = QObject(), QWidget()
        before = sys.getrefcount(None)
        for i in range(100_000):
            obj.setObjectName("probe")   # void
            w.setEnabled(bool(i & 1))    # void
        after = sys.getrefcount(None)
        print(before, after)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": ""},
    )
    assert out.returncode == 0, f"process died (none_dealloc?): {out.stderr[-2000:]}"
    before, after = map(int, out.stdout.split())
    # 200,000 void calls; a leak of one per call would show as a drop of ~200,000.
    assert abs(after - before) < 1_000, (before, after)
