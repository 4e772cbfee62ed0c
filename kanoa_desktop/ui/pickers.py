"""Open the right picker for a loaded PDF or notebook: the window's one call.

``load_input`` returns a PdfDocument or a NotebookFigures for those files; the window hands
the result here and, when a picker opens, is told about figures (and notebook context) the
user takes through plain callbacks. Pickers are non-modal, parented to the window, and
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
    add_figures: Callable[[list], None],
    add_context: Callable[[str], None],
    on_error: Callable[[object], None],
) -> QDialog | None:
    """Show the picker for ``item`` and return it, or None when ``item`` needs none.

    ``add_figures(list[PreparedFigure])`` receives what the user takes;
    ``add_context(text)`` a notebook cell's code (only when the user keeps "Send the cell's
    code as context" on); ``on_error(err)`` a typed error for the banner.
    """
    from kanoa_desktop.core.inputs.notebook import NotebookFigures
    from kanoa_desktop.core.inputs.pdf import PdfDocument

    dialog: QDialog
    if isinstance(item, PdfDocument):
        from kanoa_desktop.ui.pdf_picker import PdfPicker

        pdf = PdfPicker(item, spawn=spawn, run_cpu=run_cpu, long_side=long_side, parent=parent)
        pdf.figuresChosen.connect(add_figures)
        pdf.failed.connect(on_error)
        dialog = pdf
    elif isinstance(item, NotebookFigures):
        from kanoa_desktop.ui.notebook_picker import NotebookPicker

        nb = NotebookPicker(item, spawn=spawn, run_cpu=run_cpu, parent=parent)

        def taken(figure: object, context: str) -> None:
            add_figures([figure])
            if context:
                add_context(context)

        nb.figureChosen.connect(taken)
        dialog = nb
    else:
        return None
    dialog.setWindowFlag(Qt.WindowType.Window, True)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    dialog.show()  # never exec(): no nested event loop under qasync
    dialog.raise_()
    return dialog
