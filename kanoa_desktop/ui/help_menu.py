"""The Help menu: the log folder, diagnostics for a problem report, and About.

``install_help_menu(window)`` adds it to any QMainWindow's menu bar. Dialogs are non-modal
(``open()``, never a nested ``exec()``: safe under qasync).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QUrl, qVersion
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QMainWindow, QMenu, QStatusBar

from kanoa_desktop import APP_NAME, __version__
from kanoa_desktop.core.lazy import LazyModule

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMessageBox

logs = LazyModule("kanoa_desktop.core.config.logs")  # when the menu is used, not at start

KANOA_URL = "https://pypi.org/project/kanoa/"
LICENSE = "MIT"


class HelpMenu:
    """The menu and its three actions (kept so tests and the window can reach them)."""

    def __init__(self, window: QMainWindow, open_url: Callable[[QUrl], bool] | None = None) -> None:
        self.window = window
        self._open_url = open_url or QDesktopServices.openUrl
        self.menu: QMenu = window.menuBar().addMenu("&Help")
        self.menu.setObjectName("helpMenu")
        self.open_log_action = QAction("Open log folder", window, objectName="openLogFolderAction")
        self.copy_diagnostics_action = QAction(
            "Copy diagnostics", window, objectName="copyDiagnosticsAction"
        )
        self.copy_diagnostics_action.setToolTip(
            "Versions, platform, log file and keychain backend (never a key), for a report"
        )
        self.about_action = QAction(f"About {APP_NAME}", window, objectName="aboutAction")
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.open_log_action.triggered.connect(self.open_log_folder)
        self.copy_diagnostics_action.triggered.connect(self.copy_diagnostics)
        self.about_action.triggered.connect(self.show_about)
        self.menu.addAction(self.open_log_action)
        self.menu.addAction(self.copy_diagnostics_action)
        self.menu.addSeparator()
        self.menu.addAction(self.about_action)
        self.message_box: QMessageBox | None = None

    def open_log_folder(self) -> None:
        folder = logs.log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        if not self._open_url(QUrl.fromLocalFile(str(folder))):
            # No file manager registered (a bare window manager, a container): say where.
            self._show(
                "Log folder",
                f"No application could open the folder. The log file is:\n\n{logs.log_path()}",
            )

    def copy_diagnostics(self) -> None:
        QGuiApplication.clipboard().setText(logs.diagnostics_text(qt_version=qVersion()))
        if self.window.findChild(QStatusBar) is not None:  # statusBar() would create one
            self.window.statusBar().showMessage(
                "Diagnostics copied to the clipboard (no keys included).", 5000
            )

    def show_about(self) -> None:
        self._show(
            f"About {APP_NAME}",
            f"<h3>{APP_NAME} {__version__}</h3>"
            "<p>Streamed interpretations of scientific figures and tables from local "
            "multimodal models (vLLM, llama.cpp, Ollama or any OpenAI-compatible server).</p>"
            f"<p>The desktop face of the <a href='{KANOA_URL}'>kanoa</a> library's local "
            f"backend. License: {LICENSE}. Qt {qVersion()}.</p>"
            f"<p>Log file: {logs.log_path()}</p>",
            rich=True,
        )

    def _show(self, title: str, text: str, *, rich: bool = False) -> None:
        from PySide6.QtWidgets import QMessageBox  # its enums cost start-up time (issue 18)

        box = QMessageBox(self.window)
        box.setObjectName("helpMessageBox")
        box.setIcon(QMessageBox.Icon.Information)
        box.setWindowTitle(title)
        box.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
        box.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.LinksAccessibleByMouse
        )
        box.setText(text)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.message_box = box
        box.open()  # non-modal to the loop: no nested exec() under qasync


def install_help_menu(
    window: QMainWindow, *, open_url: Callable[[QUrl], bool] | None = None
) -> HelpMenu:
    """Add Help (Open log folder, Copy diagnostics, About) to ``window``'s menu bar.

    ``open_url`` opens the log folder (default ``QDesktopServices.openUrl``); when it returns
    False the folder's path is shown in a message instead. The returned object keeps the
    actions; the window may keep it as an attribute."""
    help_menu = HelpMenu(window, open_url)
    window._help_menu = help_menu  # the actions' slots live as long as the window
    return help_menu
