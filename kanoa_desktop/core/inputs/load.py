"""Route a file the user chose to the loader for what it is, and load it.

:func:`load_input` is CPU work (decoding images, parsing tables, opening PDFs): run it off
the GUI thread. It returns one of four types, each a plain object the window, the command
line and a batch can use headless:

- :class:`~kanoa_desktop.core.inputs.figures.PreparedFigure`: an image or SVG;
- :class:`~kanoa_desktop.core.inputs.tables.LoadedTable`: CSV/TSV, Excel or Parquet;
- :class:`~kanoa_desktop.core.inputs.pdf.PdfDocument`: an open PDF (close it when done)
  to take pages, crops or embedded images from;
- :class:`~kanoa_desktop.core.inputs.notebook.NotebookFigures`: a notebook's image outputs,
  each with the source of its cell.

The extension and the content must agree: a text file named ``.png`` is "not an image",
never a table; a PNG named ``.csv`` is "not a table"; a file without a known extension is
routed by its content. Errors are the typed errors of each loader (FigureError, TableError,
PdfError, NotebookError), each with a message and a hint. What a file sends (which pages,
sheets and figures) is the input plan's to say: core/inputs/plan.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kanoa_desktop.core.inputs.figures import IMAGE_SUFFIXES, PreparedFigure, sniff_kind

if TYPE_CHECKING:
    from kanoa_desktop.core.inputs.notebook import NotebookFigures
    from kanoa_desktop.core.inputs.pdf import PdfDocument
    from kanoa_desktop.core.inputs.tables import LoadedTable

TEXT_TABLE_SUFFIXES = {".csv", ".tsv", ".tab", ".txt", ".dat", ".psv"}
SHEET_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".parquet", ".pq", ".parq"}
TABLE_SUFFIXES = TEXT_TABLE_SUFFIXES | SHEET_SUFFIXES
KINDS = ("figure", "table", "pdf", "notebook")


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(8192)
    except OSError:
        return b""


def input_kind(path: Path | str) -> str:
    """ "figure", "table", "pdf" or "notebook" for a file the user chose.

    A known extension decides (the loader then checks that the content agrees and says so
    when it does not); an unknown one is routed by content. Reads at most 8 KiB.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return "pdf"
    if suffix == ".ipynb":
        return "notebook"
    if suffix in TABLE_SUFFIXES:
        return "table"
    if suffix in IMAGE_SUFFIXES:
        return "figure"
    head = _head(path)
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PAR1"):
        return "table"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{") and (b'"cells"' in head or b'"worksheets"' in head):
        return "notebook"
    if sniff_kind(head) == "table":
        return "table"
    return "figure"  # prepare_figure says clearly when it is not an image


def load_input(
    path: Path | str, *, long_side: int = 1024, sheet: str | None = None
) -> PreparedFigure | LoadedTable | PdfDocument | NotebookFigures:
    """Load what the user chose: a figure, a table (``sheet`` for a workbook), an open PDF
    or a notebook's figures. Raises the loader's typed error on bad input."""
    path = Path(path)
    kind = input_kind(path)
    if kind == "table":
        from kanoa_desktop.core.inputs.tables import load_table

        return load_table(path, sheet=sheet)
    if kind == "pdf":
        from kanoa_desktop.core.inputs.pdf import open_pdf

        return open_pdf(path)
    if kind == "notebook":
        from kanoa_desktop.core.inputs.notebook import load_notebook

        return load_notebook(path, long_side=long_side)
    from kanoa_desktop.core.inputs.figures import prepare_figure

    return prepare_figure(path, long_side=long_side)
