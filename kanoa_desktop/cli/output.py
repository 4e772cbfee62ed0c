"""The one way a command writes text: :func:`echo`.

Everything the command line prints (answers, tables, progress, warnings, errors) goes
through :func:`echo`, which shows control characters as visible escapes (``\\x1b``,
``\\x9b``, ``\\u202e``): an answer, a file name, a server's label or a title cannot send
an escape sequence (an OSC that retitles the window or writes the clipboard, a CSI that
moves the cursor or clears the screen, a bidi override that reorders a line) to the
terminal. The same applies when the output is a pipe or a file, which must not carry
them either. Newlines and tabs are kept, so an answer reads as it was written.

The app's own control sequences (the progress line rewritten in place on a terminal) go
through :func:`progress` only, which adds them around already escaped text.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from kanoa_desktop.core.safety import escape_control, escape_name


def safe(text: Any) -> str:
    """``text`` as the terminal may show it: control characters escaped, newlines and
    tabs kept."""
    return escape_control(str(text), keep="\n\t")


def name(text: Any) -> str:
    """One field on one line (a file name, a label, a title): every control character
    escaped, newlines too, and bytes that are not UTF-8 shown as ``\\xNN``."""
    return escape_name(text if isinstance(text, str | bytes) else str(text))


def _write(stream: TextIO, text: str) -> None:
    try:
        stream.write(text)
    except UnicodeEncodeError:  # a terminal that cannot show a character: shown escaped
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(encoding, "backslashreplace").decode(encoding))


def echo(
    text: Any = "", *, err: bool = False, end: str = "\n", flush: bool = False,
    file: TextIO | None = None,
) -> None:  # fmt: skip
    """Write ``text`` and ``end`` to stdout (``err``: stderr; or ``file``), control
    characters shown escaped whatever the stream is (a terminal, a pipe, a file)."""
    stream = file if file is not None else sys.stderr if err else sys.stdout
    if stream is None:  # pythonw: no console
        return
    _write(stream, safe(text) + end)
    if flush:
        stream.flush()


def error(message: Any, hint: Any = "", *, status: int = 1, lead: str = "") -> int:
    """Say an error (and what to do) on stderr; returns ``status`` (the exit status)."""
    echo(f"{lead}error: {message}", err=True)
    if hint:
        echo(f"hint: {hint}", err=True)
    return status


def table(headers: Any, rows: Any, align: str = "") -> str:
    """Rows of cells as aligned columns under ``headers``, two spaces apart; ``align`` one
    letter per column ("r": right, else left). Each cell is escaped by :func:`name` before
    the columns are measured (cells come from servers, models and files)."""
    cells = [[name(c) for c in r] for r in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  ".join(c.rjust(w) if align[i : i + 1] == "r" else c.ljust(w)
                  for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    )  # fmt: skip


# Code points a JSON string may hold raw but a terminal would act on or hide: written as
# JSON's own \uXXXX escapes, so the text stays valid JSON and reads the same once parsed.
_JSON_ESCAPES = {
    cp: f"\\u{cp:04x}"
    for cp in (
        *range(0x7F, 0xA0),
        0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2028, 0x2029, 0xFEFF,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        *range(0xD800, 0xE000),
    )
}  # fmt: skip


def echo_json(
    obj: Any, *, indent: int | None = None, allow_nan: bool = True, flush: bool = False
) -> None:
    """``obj`` as JSON on stdout (one value), non-ASCII text kept readable, every control
    or invisible character written as a ``\\uXXXX`` escape."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent, allow_nan=allow_nan)
    echo(text.translate(_JSON_ESCAPES), flush=flush)


def is_terminal(err: bool = True) -> bool:
    stream = sys.stderr if err else sys.stdout
    isatty = getattr(stream, "isatty", None)
    return bool(callable(isatty) and isatty())


def progress(line: Any, *, done: bool = False) -> None:
    """A progress line on stderr: on a terminal rewritten in place (``\\r`` and erase to
    the end of the line, the app's own sequence around the escaped text) and ended when
    ``done``; elsewhere one line each time."""
    if sys.stderr is None:
        return
    if is_terminal():
        _write(sys.stderr, "\r\x1b[K" + name(line) + ("\n" if done else ""))
    else:
        _write(sys.stderr, name(line) + "\n")
    sys.stderr.flush()


__all__ = ["echo", "echo_json", "error", "is_terminal", "name", "progress", "safe", "table"]
