"""A file the user chose: its size, or its bytes within a budget, or one sentence.

Every loader (figures, tables, PDFs, notebooks) starts here, so a missing file, a folder,
an unreadable file and a file over its limit read the same whatever its kind. ``error`` is
the loader's own error class (a KanoaError: message and hint), so callers still catch
FigureError, TableError, PdfError or NotebookError.
"""

from __future__ import annotations

from pathlib import Path

from kanoa_desktop.core.endpoint.errors import KanoaError


def chosen_size(path: Path, kind: str, error: type[KanoaError]) -> int:
    """The size of ``path`` in bytes; ``error`` when it is missing, a folder or unreadable.
    ``kind`` names what it should be ("an image", "a PDF")."""
    label = path.name
    try:
        if path.is_dir():
            raise error(f"{label} is a folder, not {kind}.", "Choose a file.")
        return path.stat().st_size
    except FileNotFoundError as exc:
        raise error(
            f"{label} was not found.", "Check that the file still exists and try again."
        ) from exc
    except OSError as exc:
        raise unreadable(path, exc, error) from exc


def unreadable(path: Path, exc: OSError, error: type[KanoaError]) -> KanoaError:
    """The error for a file that exists but cannot be read (permissions, I/O)."""
    return error(
        f"{path.name} cannot be read ({exc.strerror or exc}).",
        "Check the file's permissions, or copy it somewhere readable.",
    )


def read_chosen(
    path: Path,
    kind: str,
    error: type[KanoaError],
    *,
    limit: int,
    too_large: type[KanoaError],
    what: str,
    hint: str,
) -> bytes:
    """The bytes of ``path``, which may be at most ``limit`` bytes: ``too_large`` (with
    ``hint``) over it, saying the limit "for ``what``" ("figures", "notebooks")."""
    size = chosen_size(path, kind, error)
    if size > limit:
        raise too_large(
            f"{path.name} is {size / 1e6:.0f} MB, more than the {limit / 1e6:.0f} MB limit "
            f"for {what}.",
            hint,
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise unreadable(path, exc, error) from exc
