"""The one way the window asks where to save an export.

Every export (a conversation, a comparison, a batch report, a benchmark table, profiles)
opens in the folder the user last saved an export to, or in their Documents folder the
first time (``QStandardPaths.DocumentsLocation``), never in the program's working folder.
The dialog is non-modal (``open()``, never ``exec()``: qasync keeps running).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths
from PySide6.QtWidgets import QFileDialog, QWidget

from kanoa_desktop.core.config import paths

_KEY = "lastExportFolder"


def _settings() -> QSettings:
    return QSettings(str(paths.config_dir() / "window.ini"), QSettings.Format.IniFormat)


def documents_folder() -> str:
    """The user's Documents folder (their home when the platform has none)."""
    found = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return found if found and Path(found).is_dir() else str(Path.home())


def export_folder() -> str:
    """Where the next export dialog opens: the last export's folder while it exists,
    else Documents."""
    last = _settings().value(_KEY, "")
    if isinstance(last, str) and last and Path(last).is_dir():
        return last
    return documents_folder()


def remember_export_folder(path: str | Path) -> None:
    folder = Path(path).parent
    settings = _settings()
    settings.setValue(_KEY, str(folder))
    settings.sync()


def save_dialog(
    parent: QWidget,
    title: str,
    file_name: str,
    name_filters: Sequence[str],
    on_selected: Callable[[str], object],
    *,
    default_suffix: str = "",
) -> QFileDialog:
    """Open a non-modal save dialog in :func:`export_folder` proposing ``file_name``;
    ``on_selected(path)`` runs with the chosen path, whose folder is remembered."""
    dialog = QFileDialog(parent, title)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setNameFilters(list(name_filters))
    if default_suffix:
        dialog.setDefaultSuffix(default_suffix)
    dialog.setDirectory(export_folder())
    if file_name:
        dialog.selectFile(str(Path(export_folder()) / file_name))

    def chosen(path: str) -> None:
        if path:
            remember_export_folder(path)
        on_selected(path)

    dialog.fileSelected.connect(chosen)
    dialog.open()
    return dialog


__all__ = ["documents_folder", "export_folder", "remember_export_folder", "save_dialog"]
