"""Figures from a Jupyter notebook: its image outputs, each with the cell that drew it.

Plain blocking functions (no Qt): the window runs :func:`load_notebook` on its worker pool;
the command line and a batch call it directly.

What a caller may rely on:

- Every image output of a code cell (``image/png``, ``image/jpeg``, ``image/svg+xml``; the
  first of these an output carries, in that order) becomes a :class:`NotebookFigure`: the
  prepared figure, the source of its cell (for context), the cell's 1-based number among
  all cells and its execution count. nbformat 4 and 3 are read.
- Bounded: files over ``MAX_NOTEBOOK_BYTES`` are refused unread, and so are files whose
  JSON would make more than ``MAX_NOTEBOOK_ITEMS`` objects, strings and numbers (counted
  before parsing: 110 MB of empty objects is 2.8 GB once parsed); at most ``max_figures``
  figures are prepared (a note says how many were left); each image goes through
  :func:`~kanoa_desktop.core.inputs.figures.prepare_figure` with its own limits; cell
  sources are cut at ``MAX_SOURCE_CHARS``.
- A damaged output (bad base64, a truncated PNG) is skipped with a note; the rest are kept.
- Bad files raise a :class:`NotebookError` subclass naming the file: empty, not JSON, not
  a notebook, too large, or with no image outputs.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path

from kanoa_desktop.core.inputs.chosen import read_chosen
from kanoa_desktop.core.inputs.figures import (
    MAX_FILE_BYTES,
    FigureError,
    PreparedFigure,
    prepare_figure,
)
from kanoa_desktop.core.safety import JsonTooLarge, code_fence, loads_json_bounded

MAX_NOTEBOOK_BYTES = 128 * 1024 * 1024
# Values and keys the parsed JSON may hold. A large real notebook (thousands of cells,
# their sources as lists of lines) holds a few hundred thousand; two million cost at most
# ~150 MB as Python objects.
MAX_NOTEBOOK_ITEMS = 2_000_000
MAX_FIGURES = 100
MAX_SOURCE_CHARS = 20_000
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml")
_V3_KEYS = {"png": "image/png", "jpeg": "image/jpeg", "svg": "image/svg+xml"}


class NotebookError(FigureError):
    """A notebook cannot be used. ``message`` names the file; ``hint`` says what next."""

    title = "Cannot use this notebook"


class EmptyNotebookError(NotebookError):
    """0 bytes."""


class CorruptNotebookError(NotebookError):
    """Not JSON, or JSON that is not a Jupyter notebook."""


class NotebookTooLargeError(NotebookError):
    """Larger than MAX_NOTEBOOK_BYTES, or more JSON values than MAX_NOTEBOOK_ITEMS."""


class NoNotebookFiguresError(NotebookError):
    """The notebook has no image outputs (never run, or cleared)."""


@dataclass(frozen=True)
class NotebookFigure:
    """One image output and the cell that drew it."""

    figure: PreparedFigure
    cell_source: str
    cell_number: int  # 1-based among all the notebook's cells
    output_number: int  # 1-based among the cell's outputs
    mime: str
    execution_count: int | None = None
    language: str = "python"

    @property
    def context(self) -> str:
        """The cell's source as context text for the question."""
        run = f", In [{self.execution_count}]" if self.execution_count is not None else ""
        # A fence longer than any in the cell: a ``` line in the source cannot end it.
        fence = code_fence(self.cell_source)
        return (
            f"The figure was drawn by cell {self.cell_number}{run} of the notebook:\n\n"
            f"{fence}{self.language}\n{self.cell_source.rstrip()}\n{fence}"
        )


@dataclass
class NotebookFigures:
    """The figures of one notebook, in cell order, and notes about what was skipped."""

    path: Path
    figures: list[NotebookFigure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


def _text(value: object) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def _cells(nb: object) -> list | None:
    if not isinstance(nb, dict):
        return None
    if isinstance(nb.get("cells"), list):
        return nb["cells"]
    sheets = nb.get("worksheets")  # nbformat 3
    if isinstance(sheets, list):
        cells: list = []
        for sheet in sheets:
            if isinstance(sheet, dict) and isinstance(sheet.get("cells"), list):
                cells += sheet["cells"]
        return cells
    return None


def _image_of(output: object) -> tuple[str, object] | None:
    """(mime, payload) of the first image an output carries, or None."""
    if not isinstance(output, dict):
        return None
    data = output.get("data")
    if isinstance(data, dict):
        for mime in IMAGE_MIMES:
            if mime in data:
                return mime, data[mime]
    for key, mime in _V3_KEYS.items():  # nbformat 3 puts images on the output itself
        if key in output:
            return mime, output[key]
    return None


def _decode(mime: str, payload: object) -> bytes:
    text = _text(payload)
    if mime == "image/svg+xml":
        return text.encode("utf-8")
    return base64.b64decode("".join(text.split()), validate=True)


def load_notebook(
    path: Path | str, *, long_side: int = 1024, max_figures: int = MAX_FIGURES
) -> NotebookFigures:
    """Every image output of a notebook as a figure with its cell's source.

    Raises a NotebookError subclass for a bad file or a notebook with no image outputs.
    """
    path = Path(path)
    label = path.name
    raw = read_chosen(
        path,
        "a notebook",
        CorruptNotebookError,
        limit=MAX_NOTEBOOK_BYTES,
        too_large=NotebookTooLargeError,
        what="notebooks",
        hint="Clear the outputs you do not need (or save the figures as files) and try again.",
    )
    if not raw.strip():
        raise EmptyNotebookError(f"{label} is empty.", "Check that it finished saving.")
    try:
        nb = loads_json_bounded(raw, max_items=MAX_NOTEBOOK_ITEMS)
    except JsonTooLarge as exc:
        raise NotebookTooLargeError(
            f"{label} holds about {exc.items:,} JSON values, more than the {exc.limit:,} a "
            "notebook may hold here; it was not read (parsed, it would take gigabytes).",
            "Clear the outputs you do not need (or save the figures as files) and try again.",
        ) from exc
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise CorruptNotebookError(
            f"{label} is damaged: it is not valid JSON ({str(exc)[:120]}).",
            "Open it in Jupyter and save it again.",
        ) from exc
    del raw
    cells = _cells(nb)
    if cells is None:
        raise CorruptNotebookError(
            f"{label} is JSON but not a Jupyter notebook (it has no cells).",
            "Check that it is an .ipynb file saved by Jupyter.",
        )
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    lang_info = meta.get("language_info") if isinstance(meta.get("language_info"), dict) else {}
    language = str(lang_info.get("name") or "python")

    result = NotebookFigures(path)
    found = 0
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or not isinstance(cell.get("outputs"), list):
            continue
        source = _text(cell.get("source", cell.get("input", "")))
        if len(source) > MAX_SOURCE_CHARS:
            source = source[:MAX_SOURCE_CHARS] + "\n# … (cell source cut)"
        count = cell.get("execution_count", cell.get("prompt_number"))
        count = count if isinstance(count, int) else None
        for out_number, output in enumerate(cell["outputs"], start=1):
            image = _image_of(output)
            if image is None:
                continue
            found += 1
            if len(result.figures) >= max_figures:
                continue
            mime, payload = image
            where = f"cell {number}, output {out_number}"
            try:
                data = _decode(mime, payload)
                if len(data) > MAX_FILE_BYTES:
                    raise FigureError(
                        f"{label}, {where} is larger than the "
                        f"{MAX_FILE_BYTES // 2**20} MB figure limit.",
                        "",
                    )
                fig = prepare_figure(data, long_side=long_side, name=f"{label}, {where}")
            except (binascii.Error, ValueError) as exc:
                result.notes.append(f"The image in {where} is not valid base64 ({exc}).")
                continue
            except FigureError as exc:
                # prepare_figure's message names the file, the cell and the output.
                result.notes.append(f"Skipped: {exc.message}")
                continue
            result.figures.append(
                NotebookFigure(fig, source, number, out_number, mime, count, language)
            )
    if found > max_figures:
        result.notes.append(
            f"Only the first {max_figures} of {found} figures were taken from {label}."
        )
    if not result.figures:
        if found:
            raise CorruptNotebookError(
                f"None of the {found} image output(s) in {label} could be decoded.",
                "Re-run the notebook and save it again. " + " ".join(result.notes[:3]),
            )
        raise NoNotebookFiguresError(
            f"{label} has no figures: none of its cells has an image output.",
            "Run the notebook in Jupyter so that its plots are saved in it, then save it.",
        )
    return result
