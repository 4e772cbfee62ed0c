"""Guards on how the project is built: core without Qt, a safe PySide6 build."""

from __future__ import annotations

import json
import os
import pkgutil
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import kanoa_desktop.core

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


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
                     if m.split(".")[0] in ("PySide6", "shiboken6", "qasync", "PyQt5", "PyQt6"))
        print(json.dumps(bad))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH first, so the package analysed is the one under root (not the editable one).
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )


def test_import_contracts_hold_for_the_tree():
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "4 kept, 0 broken" in out.stdout


def test_import_contracts_catch_qt_in_core_the_window_in_the_command_line_and_a_floor_upward(
    tmp_path,
):
    """The contracts are not vacuous: a copy of the tree whose core imports Qt (through
    a chain), whose command line imports the window, and whose HTTP client imports the
    question pipeline (a floor reaching up) breaks all four."""
    shutil.copytree(
        ROOT / "kanoa_desktop",
        tmp_path / "kanoa_desktop",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "kanoa_desktop" / "core" / "kb" / "sneaky.py").write_text(
        "from kanoa_desktop.ui import gpu_panel  # noqa\n"
    )
    (tmp_path / "kanoa_desktop" / "cli" / "sneaky.py").write_text(
        "import kanoa_desktop.ui.main_window  # noqa\n"
    )
    (tmp_path / "kanoa_desktop" / "core" / "endpoint" / "sneaky.py").write_text(
        "from kanoa_desktop.core.ask import pipeline  # noqa\n"
    )
    out = _lint_imports(tmp_path)
    assert out.returncode == 1, out.stdout[-3000:]
    assert "0 kept, 4 broken" in out.stdout, out.stdout[-3000:]
    assert "kanoa_desktop.core.kb.sneaky -> kanoa_desktop.ui.gpu_panel" in out.stdout
    assert "kanoa_desktop.cli.sneaky -> kanoa_desktop.ui.main_window" in out.stdout
    assert "kanoa_desktop.core.endpoint.sneaky -> kanoa_desktop.core.ask.pipeline" in out.stdout


def test_no_two_packages_of_core_import_each_other():
    """Floors hold in both directions: for every pair of core's sub-packages, at most one
    imports the other (function-level imports count too; grimp sees them)."""
    import itertools

    import grimp

    graph = grimp.build_graph("kanoa_desktop")
    subs = sorted(graph.find_children("kanoa_desktop.core"))
    assert "kanoa_desktop.core.ask" in subs and "kanoa_desktop.core.history" in subs
    both = [
        (a, b)
        for a, b in itertools.combinations(subs, 2)
        if graph.direct_import_exists(importer=a, imported=b, as_packages=True)
        and graph.direct_import_exists(importer=b, imported=a, as_packages=True)
    ]
    assert both == []


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
