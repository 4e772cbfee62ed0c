"""PySide's per-import check answered from the module's namespace (ui/pyside_hook.py):
cheaper, and __feature__ selection still works for a module that makes one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_module_holding_pyside_objects_uses_it_and_one_naming_it_does_not():
    from PySide6.QtCore import Qt

    from kanoa_desktop.ui.pyside_hook import uses_pyside

    qt = types.ModuleType("qt_user")
    qt.Qt = Qt
    plain = types.ModuleType("plain")
    plain.__doc__ = "Mentions PySide6 in prose only."
    plain.value = 3
    assert uses_pyside(qt) and not uses_pyside(plain)


def test_features_still_work_and_the_source_is_no_longer_read(tmp_path):
    (tmp_path / "snake_mod.py").write_text(textwrap.dedent("""
        from __feature__ import snake_case  # noqa
        from PySide6.QtWidgets import QLabel

        def make():
            label = QLabel()
            label.set_text("snake")
            return label.text()
    """))
    (tmp_path / "camel_mod.py").write_text(textwrap.dedent("""
        from PySide6.QtWidgets import QLabel

        def make():
            label = QLabel()
            label.setText("camel")
            return label.text()
    """))
    code = textwrap.dedent("""
        import inspect, sys
        from kanoa_desktop.ui.app import create_application
        app = create_application([])
        feature = sys.modules["shibokensupport.feature"]
        assert feature._mod_uses_pyside.__module__ == "kanoa_desktop.ui.pyside_hook"
        reads = []
        real = inspect.getsource
        inspect.getsource = lambda obj: reads.append(obj) or real(obj)
        import camel_mod, snake_mod, json
        print(camel_mod.make(), snake_mod.make(), len(reads))
    """)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120)  # fmt: skip
    assert out.stdout.split() == ["camel", "snake", "0"], out.stderr[-2000:]


def test_a_check_of_another_shape_is_left_to_pyside(monkeypatch):
    """If PySide's check changes its signature, ours is not installed: PySide's stays."""
    from kanoa_desktop.ui import pyside_hook

    def two_args(module, extra):
        return 0

    fake = types.ModuleType("shibokensupport.feature")
    fake.pyside_feature_dict = {}
    fake._mod_uses_pyside = two_args
    monkeypatch.setitem(sys.modules, "shibokensupport.feature", fake)
    assert pyside_hook.lighten() is False
    assert fake._mod_uses_pyside is two_args

    def one_arg(module):
        return 0

    fake._mod_uses_pyside = one_arg
    assert pyside_hook.lighten() is True
    assert fake._mod_uses_pyside is pyside_hook.uses_pyside
    assert pyside_hook.lighten() is True  # a second call changes nothing
