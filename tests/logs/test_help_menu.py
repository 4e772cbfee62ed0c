"""Help menu on a bare QMainWindow: log folder, diagnostics, About."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QUrl, qVersion
from PySide6.QtWidgets import QMainWindow, QMessageBox, QStatusBar

from kanoa_desktop import __version__
from kanoa_desktop.core.config.logs import log_path
from kanoa_desktop.ui.help_menu import install_help_menu


@pytest.fixture
def window(qtbot):
    w = QMainWindow()
    qtbot.addWidget(w)
    return w


def _titles(window) -> list[str]:
    return [a.text() for a in window.menuBar().actions()]


def test_help_menu_has_its_three_actions(window):
    help_menu = install_help_menu(window, open_url=lambda url: True)
    assert _titles(window) == ["&Help"]
    assert [a.text() for a in help_menu.menu.actions() if not a.isSeparator()] == [
        "Open log folder",
        "Copy diagnostics",
        "About kanoa desktop",
    ]


def test_open_log_folder_opens_the_log_folder(window, tmp_path):
    opened: list[QUrl] = []
    help_menu = install_help_menu(window, open_url=lambda url: opened.append(url) or True)
    help_menu.open_log_action.trigger()
    assert [Path(u.toLocalFile()) for u in opened] == [log_path().parent]
    assert log_path().parent.is_dir()
    assert help_menu.message_box is None  # opened: nothing to say


def test_without_a_folder_opener_the_log_path_is_shown(window, qtbot):
    help_menu = install_help_menu(window, open_url=lambda url: False)
    help_menu.open_log_action.trigger()
    box = help_menu.message_box
    assert isinstance(box, QMessageBox)
    qtbot.waitUntil(box.isVisible)
    assert str(log_path()) in box.text()
    assert box.windowModality() != Qt.WindowModality.ApplicationModal  # open(), not exec()
    box.close()


def test_copy_diagnostics_puts_versions_and_the_log_path_on_the_clipboard(window, qapp):
    window.setStatusBar(QStatusBar())
    help_menu = install_help_menu(window, open_url=lambda url: True)
    qapp.clipboard().setText("before")
    help_menu.copy_diagnostics_action.trigger()
    text = qapp.clipboard().text()
    assert __version__ in text
    assert qVersion() in text
    assert str(log_path()) in text
    assert "Keychain backend:" in text
    assert "copied" in window.statusBar().currentMessage()


def test_about_names_version_license_and_kanoa(window, qtbot):
    help_menu = install_help_menu(window, open_url=lambda url: True)
    help_menu.about_action.trigger()
    box = help_menu.message_box
    qtbot.waitUntil(box.isVisible)
    assert __version__ in box.text()
    assert "MIT" in box.text()
    assert "https://pypi.org/project/kanoa/" in box.text()
    box.close()
