"""Open the right picker for a loaded PDF or notebook: the window's one call.

``load_input`` returns a PdfDocument or a NotebookFigures for those files; the window hands
the result here and, when a picker opens, is told about figures (a notebook's with the code
of their cells) the user takes through a plain callback. Pickers are non-modal, parented to the window, and
deleted when closed (the PDF picker closes its document on the pool first).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QWidget


def show_picker_for(
    item: object,
    *,
    parent: QWidget,
    spawn: Callable[[Awaitable[Any]], Any],
    run_cpu: Callable[..., Awaitable[Any]],
    long_side: Callable[[], int],
    add_figure: Callable[..., None],
    on_error: Callable[[object], None],
) -> QDialog | None:
    """Show the picker for ``item`` and return it, or None when ``item`` needs none.

    ``add_figure(PreparedFigure, code)`` receives each figure the user takes, with its
    notebook cell's code ("" for a PDF's, or when the user turns "Send the cell's code as
    context" off); ``on_error(err)`` a typed error for the banner.
    """
    from kanoa_desktop.core.inputs.notebook import NotebookFigures
    from kanoa_desktop.core.inputs.pdf import PdfDocument

    dialog: QDialog
    if isinstance(item, PdfDocument):
        from kanoa_desktop.ui.pdf_picker import PdfPicker

        pdf = PdfPicker(item, spawn=spawn, run_cpu=run_cpu, long_side=long_side, parent=parent)
        pdf.figuresChosen.connect(lambda figures: [add_figure(f, "") for f in figures])
        pdf.failed.connect(on_error)
        dialog = pdf
    elif isinstance(item, NotebookFigures):
        from kanoa_desktop.ui.notebook_picker import NotebookPicker

        nb = NotebookPicker(item, spawn=spawn, run_cpu=run_cpu, parent=parent)

        nb.figureChosen.connect(add_figure)
        dialog = nb
    else:
        return None
    dialog.setWindowFlag(Qt.WindowType.Window, True)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    dialog.show()  # never exec(): no nested event loop under qasync
    dialog.raise_()
    return dialog
