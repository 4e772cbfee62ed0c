"""Load a table (CSV/TSV, Excel, Parquet), summarise it for a model within a token budget,
and draw a quick plot.

Plain synchronous functions (no Qt): the UI runs them on a thread pool. pandas and numpy
are imported inside the functions, so importing this module costs nothing at start.

- :func:`load_table` reads delimited text (encoding, delimiter and decimal comma found by
  :mod:`kanoa_desktop.core.inputs.delimited`, parsed with pandas' C engine), Excel
  workbooks (``.xlsx``/``.xlsm``, one sheet at a time, :func:`list_sheets` names them) and
  Parquet (fastparquet). The extension and the content must agree. Files over
  ``max_bytes`` are refused before any read; workbooks and Parquet are also budgeted by
  what they become (cells, inflated XML, shared strings, text bytes; see the constants),
  checked while a workbook is streamed and from a Parquet footer before it is read.
- Date and time columns written as text are parsed into datetimes (so a quick plot has a
  time axis); numbers keep the number of decimals they were written with for display
  (:meth:`LoadedTable.format_cell`: 37.00 stays 37.00).
- Rows that cannot be read (more fields than the header) are skipped and *counted in*
  ``notes``, which the window and the command line show.
- :func:`summarise_table` writes Markdown that never exceeds its token budget.
- :func:`quick_plot` renders PNG bytes with matplotlib's Agg canvas (no pyplot state, so it
  is safe off the GUI thread).

Every failure is a :class:`TableError` with a plain ``message`` and a ``hint``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import warnings
import zipfile
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

from kanoa_desktop.core import lazy
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.inputs import delimited
from kanoa_desktop.core.inputs.chosen import chosen_size, unreadable
from kanoa_desktop.core.inputs.delimited import DELIMITER_NAMES, SAMPLE_BYTES
from kanoa_desktop.core.tokens import CHARS_PER_TOKEN, estimate_text_tokens

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1_000_000_000  # 1 GB: pandas needs several times this in memory
LINE_PLOT_MAX_POINTS = 5_000  # min/max buckets keep peaks visible below this
SCATTER_MAX_POINTS = 100_000
# An .xlsx is a zip of XML: a small file can expand without bound (a zip bomb). Workbooks
# whose zip directory claims more than this, uncompressed, are refused before any read.
MAX_XLSX_UNCOMPRESSED = 512 * 1024 * 1024
# What a workbook may become, counted while it is read (see the Excel section): the XML a
# worksheet really inflates to, that of any other part (styles, shared strings), the
# shared strings themselves, and the cells that hold values (also the cells of the table
# made of the rows and columns that hold them).
MAX_XLSX_SHEET_BYTES = 256_000_000
MAX_XLSX_PART_BYTES = 64_000_000
MAX_SHARED_STRINGS = 1_000_000
MAX_XLSX_CELLS = 2_000_000
# Parquet is compressed too: refuse more cells than this unless only the first rows are
# asked for (``max_rows``).
MAX_PARQUET_CELLS = 100_000_000
# ... and more text than this, by the sizes its footer gives, before anything is read
# (a few MB of compressed Parquet can hold gigabytes of long strings).
MAX_PARQUET_TEXT_BYTES = 256_000_000
# A table that will take more memory than this (by the footer's sizes) says so first.
LARGE_TABLE_BYTES = 200_000_000
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
DEFAULT_TABLE_TOKEN_BUDGET = 1500  # of a table's summary, when no other is asked
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
# At most this many values of a text column are tried as dates; 90 % must parse.
DATE_SAMPLE = 200
DATE_SHARE = 0.9
# Work over Python objects (text cells) that pandas does in one C call holding the GIL is
# done this many rows at a time, so a worker never stalls the GUI thread for long (a
# million-row call is ~35 ms and more; 3 frames is 50 ms).
GIL_ROWS = 100_000

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_PARQUET_MAGIC = b"PAR1"


class TableError(KanoaError):
    """A table could not be loaded or plotted. ``message`` says what, ``hint`` what next."""

    title = "Cannot use this table"


class TableNotFoundError(TableError):
    """The file does not exist or cannot be read."""


class TableTooLargeError(TableError):
    """The file is larger than ``max_bytes`` (or expands beyond a cap); nothing was read."""


class EmptyTableError(TableError):
    """The file is empty, holds only blank lines, or a workbook has no data."""


class NotATableError(TableError):
    """The file is binary or has no recognisable delimited structure, or its content does
    not match its extension."""


class TableParseError(TableError):
    """The file could not be parsed even after the fallbacks (a damaged workbook, ...)."""


class PlotError(TableError):
    """The chosen columns cannot be plotted (missing, not numeric, no values)."""


# --------------------------------------------------------------------------- display


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:
        import pandas as pd

        return value is pd.NA or value is pd.NaT or (pd.isna(value) is True)
    except (TypeError, ValueError):
        return False


def _plain_number(value: float) -> str:
    """The shortest text that reads back as the same float (no digit is lost)."""
    if value != 0 and not (1e-6 <= abs(value) < 1e16):
        return repr(float(value))
    return _format_positional()(value, trim="-")


def _format_positional():
    # Looked up once: an import statement per cell costs more than the formatting (and
    # PySide6 wraps __import__), and the table view formats every cell it paints.
    global _positional
    if _positional is None:
        import numpy as np

        _positional = np.format_float_positional
    return _positional


_positional = None


def format_value(value: object, fmt: str | None = None, decimal: str = ".") -> str:
    """Text for one cell. ``fmt`` is a column format from :attr:`LoadedTable.formats`:
    ``"fixed:N"`` (N decimals, as the file wrote them), ``"date"``, ``"time"``,
    ``"datetime"`` or None (numbers in their shortest exact form, anything else as str).
    ``decimal`` is the decimal separator floats are shown with (the file's)."""
    if type(value) is str:  # the common text cell: never blank (pandas' isna is False)
        return value
    if _blank(value):
        return ""
    if isinstance(value, bool):
        return str(value)
    # A NumPy scalar, not an array: a Parquet list column holds arrays, shown as str().
    if isinstance(value, float) or (
        type(value).__module__ == "numpy" and not getattr(value, "ndim", 0)
    ):
        kind = getattr(getattr(value, "dtype", None), "kind", "f")
        if kind == "f":
            if fmt and fmt.startswith("fixed:"):
                text = f"{float(value):.{int(fmt[6:])}f}"
            else:
                text = _plain_number(float(value))
            return text.replace(".", decimal) if decimal != "." else text
        if kind in "iub":
            return str(value)
        if kind == "M":
            import pandas as pd

            value = pd.Timestamp(value)
    if isinstance(value, datetime):
        if fmt == "date":
            return value.strftime("%Y-%m-%d")
        if fmt == "time":
            return value.strftime("%H:%M:%S") + (
                f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
            )
        text = value.isoformat(sep=" ")
        return text[:-6] if text.endswith(".000000") else text
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


@dataclass
class LoadedTable:
    """A parsed table and how it was read.

    ``notes`` are sentences worth showing the user (how it was read, skipped rows,
    fallbacks); ``warnings`` are those of them that say data was skipped, cut or read
    differently than written, to show prominently (a banner, stderr). ``kind`` is
    "csv", "excel" or "parquet"; ``sheet``/``sheets`` name the workbook sheet shown and
    all of them (Excel only). ``formats`` maps a column's position to its display format
    (see :func:`format_value`).
    """

    frame: pd.DataFrame
    path: Path
    delimiter: str
    encoding: str
    decimal: str
    notes: list[str] = field(default_factory=list)
    kind: str = "csv"
    sheet: str | None = None
    sheets: tuple[str, ...] = ()
    formats: dict[int, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def columns(self) -> int:
        return self.frame.shape[1]

    @property
    def name(self) -> str:
        if self.kind == "excel" and self.sheet and len(self.sheets) > 1:
            return f"{self.path.name} [{self.sheet}]"
        return self.path.name

    @property
    def delimiter_name(self) -> str:
        return DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))

    @property
    def source_label(self) -> str:
        """How the file was read, in words: "comma-separated, UTF-8", "Excel, sheet …"."""
        if self.kind == "excel":
            return f"Excel workbook, sheet {self.sheet!r}" if self.sheet else "Excel workbook"
        if self.kind == "parquet":
            return "Parquet"
        how = f"{self.delimiter_name}-separated, {self.encoding}"
        return how + (", decimal comma" if self.decimal == "," else "")

    def format_cell(self, column: int, value: object) -> str:
        """Text of ``value`` in the column at position ``column``, as the file wrote it."""
        return format_value(value, self.formats.get(column), self.decimal)

    def formatter(self, column: int) -> Callable[[object], str]:
        """``format_cell`` for one column, for a view that formats many of its cells.

        Gives the same text as ``format_cell`` for every value; a float column written
        with N decimals gets a direct path (the view formats every cell it paints, on the
        GUI thread)."""
        fmt, decimal = self.formats.get(column), self.decimal
        if fmt and fmt.startswith("fixed:") and self.frame.dtypes.iloc[column].kind == "f":
            spec = f".{int(fmt[6:])}f"

            def fixed(value: object) -> str:
                if not isinstance(value, float):  # np.float64 is a float
                    return format_value(value, fmt, decimal)
                if value != value:  # NaN
                    return ""
                text = format(float(value), spec)
                return text.replace(".", decimal) if decimal != "." else text

            return fixed
        return lambda value: format_value(value, fmt, decimal)


# --------------------------------------------------------------------------- loading


def load_table(
    path: Path | str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int | None = None,
    sheet: str | None = None,
) -> LoadedTable:
    """Read a table file into a DataFrame: delimited text, Excel or Parquet.

    Refuses files over ``max_bytes`` without reading them (TableTooLargeError) unless
    ``max_rows`` is given, in which case only the first ``max_rows`` rows are read and a
    note says so. ``sheet`` names the Excel sheet (default: the first with data). Raises a
    TableError subclass for missing, empty, binary, mislabelled or unparseable files.
    Header-only files load as 0 rows with a note; rows with too many fields are skipped with
    a note naming how many.
    """
    # pandas' first import, with the collector paused: its full pass over every loaded
    # object held the GIL for tens of ms and stalled the window (core/lazy.py).
    lazy.load("pandas")
    path = Path(path)
    label = path.name
    size = chosen_size(path, "a table file", TableNotFoundError)
    notes: list[str] = []
    if size > max_bytes:
        if max_rows is None:
            raise TableTooLargeError(
                f"{label} is {_human_bytes(size)}, more than the {_human_bytes(max_bytes)} "
                "limit for tables; it was not read.",
                "Load only the first rows (for example 1,000,000), split the file, or raise "
                "the limit in Settings if this machine has the memory.",
            )
        notes.append(
            f"The file is {_human_bytes(size)}; only the first {max_rows:,} rows were read."
        )
    if size == 0:
        raise EmptyTableError(f"{label} is empty (0 bytes).", "Check that it finished saving.")
    try:
        with path.open("rb") as fh:
            sample = fh.read(SAMPLE_BYTES)
    except OSError as exc:
        raise unreadable(path, exc, TableNotFoundError) from exc
    suffix = path.suffix.lower()
    if suffix == ".xls" or (sample.startswith(_OLE_MAGIC) and suffix in EXCEL_SUFFIXES):
        raise NotATableError(
            f"{label} is an encrypted (password-protected) workbook or an old Excel 97–2003 "
            "file, which kanoa desktop does not read.",
            "Open it in a spreadsheet, remove the password, and save it as .xlsx or CSV.",
        )
    if suffix in EXCEL_SUFFIXES:
        if not sample.startswith(_ZIP_MAGIC):
            raise NotATableError(
                f"{label} is named {suffix} but is not an Excel workbook.",
                "Check the file, or rename it to what it holds.",
            )
        table = _load_excel(path, label, sheet, max_rows)
    elif suffix in PARQUET_SUFFIXES or sample.startswith(_PARQUET_MAGIC):
        if not sample.startswith(_PARQUET_MAGIC):
            raise NotATableError(
                f"{label} is named {suffix} but is not a Parquet file.",
                "Check the file, or rename it to what it holds.",
            )
        table = _load_parquet(path, label, max_rows)
    else:
        table = _load_delimited(path, label, sample, size, max_rows)
    table.notes[:0] = notes
    table.warnings[:0] = notes  # only "the first rows were read" is said up here
    return table


def _load_delimited(
    path: Path, label: str, sample: bytes, size: int, max_rows: int | None
) -> LoadedTable:
    notes: list[str] = []
    cautions: list[str] = []
    full_read = size <= SAMPLE_BYTES
    dialect = delimited.sniff(sample, suffix=path.suffix.lower(), complete=full_read)
    if dialect.binary:
        raise NotATableError(
            f"{label} is a binary file, not a CSV or TSV table.",
            "Export the data as CSV (comma- or semicolon-separated) or TSV.",
        )
    if not dialect.lines:
        raise EmptyTableError(f"{label} holds only blank lines.", "Check the file's contents.")
    encoding, enc_label = dialect.encoding.codec, dialect.encoding.label
    delim, decimal = dialect.delimiter, dialect.decimal
    if enc_label == "UTF-16":
        notes.append("The file is UTF-16; it was converted while reading.")

    frame, skipped = _read(path, label, delim, decimal, encoding, max_rows)
    if frame is None:  # a UTF-8 sample, but the rest of the file is not UTF-8
        encoding, enc_label = delimited.CP1252.codec, delimited.CP1252.label
        frame, skipped = _read(path, label, delim, decimal, encoding, max_rows)
        if frame is None:
            encoding, enc_label = delimited.LATIN1.codec, delimited.LATIN1.label
            frame, skipped = _read(path, label, delim, decimal, encoding, max_rows)
        cautions.append("The file is not UTF-8 throughout; it was read as " + enc_label + ".")
        notes.append(cautions[-1])
    assert frame is not None
    if skipped:
        cautions.append(skipped)
        notes.append(skipped)
    if frame.shape[1] == 1 and len(dialect.lines) > 1 and delim == ",":
        notes.append("Only one column was found; the file may not be delimited.")
    if len(frame) == 0:
        notes.append("The file has a header row but no data rows.")
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed: ")]
    if unnamed:
        notes.append(f"{len(unnamed)} column(s) had no header name.")
    if decimal == ",":
        notes.append("Numbers use a comma as the decimal separator.")
    formats = _written_decimals(frame, dialect.rows, decimal)
    formats.update(_parse_dates(frame, notes, cautions))
    return LoadedTable(
        frame=frame,
        path=path,
        delimiter=delim,
        encoding=enc_label,
        decimal=decimal,
        notes=notes,
        formats=formats,
        warnings=cautions,
    )


_SKIPPING = re.compile(r"Skipping line (\d+)")


def _read(
    path: Path, label: str, delim: str, decimal: str, encoding: str, max_rows: int | None
) -> tuple[pd.DataFrame | None, str]:
    """Parse with the C engine. Returns (None, "") on a decode error so the caller falls back.

    Rows with more fields than the header are skipped; pandas warns once per skipped line,
    and those warnings are counted into the returned note.
    """
    import pandas as pd

    kwargs = dict(
        sep=delim,
        decimal=decimal,
        encoding=encoding,
        engine="c",
        nrows=max_rows,
        skip_blank_lines=True,
    )
    try:
        # low_memory=False would avoid mixed-type chunks but doubles the parse time; a
        # DtypeWarning is turned into a note instead.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.DtypeWarning)
            warnings.simplefilter("always", pd.errors.ParserWarning)
            try:
                # on_bad_lines="warn" makes pandas' C parser twice as slow on every file
                # (1M x 10: 0.38 s -> 0.78 s), so it is only for a file that has a row
                # with too many fields: the fast parse stops there, the second one counts.
                frame = pd.read_csv(path, **kwargs, on_bad_lines="error")
            except pd.errors.ParserError as exc:
                if not _TOO_MANY_FIELDS.search(str(exc)):
                    raise
                frame = pd.read_csv(path, **kwargs, on_bad_lines="warn")
    except UnicodeDecodeError:
        return None, ""
    except pd.errors.EmptyDataError as exc:
        raise EmptyTableError(
            f"{label} has no columns to read.", "Check that the file is a CSV or TSV table."
        ) from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise TableParseError(
            f"{label} could not be parsed as a table ({str(exc).splitlines()[0]}).",
            "Open it in a spreadsheet, check the delimiter and quoting, and save as CSV.",
        ) from exc
    except OSError as exc:
        raise unreadable(path, exc, TableNotFoundError) from exc
    notes = []
    lines: list[int] = []
    for w in caught:
        if issubclass(w.category, pd.errors.ParserWarning):
            lines += [int(n) for n in _SKIPPING.findall(str(w.message))]
    if lines:
        shown = ", ".join(str(n) for n in lines[:5]) + (", …" if len(lines) > 5 else "")
        notes.append(
            f"{len(lines):,} row(s) with more fields than the header were skipped "
            f"(line{'s' if len(lines) > 1 else ''} {shown})."
        )
    if any(issubclass(w.category, pd.errors.DtypeWarning) for w in caught):
        notes.append("Some columns mix numbers and text; they are kept as text.")
    return frame, " ".join(notes)


# pandas' error for a row with more fields than the header (C parser).
_TOO_MANY_FIELDS = re.compile(r"Expected \d+ fields in line \d+, saw \d+")

# Cells pandas reads as missing by default: they say nothing about a column's decimals.
_NA_TEXT = frozenset(
    {"#N/A", "#N/A N/A", "#NA", "-NaN", "-nan", "<NA>", "N/A", "NA", "NULL", "NaN", "None"}
    | {"n/a", "nan", "null", "-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN"}
)
_WRITTEN_NUMBER = {
    ".": re.compile(r"^[-+]?\d*(?:\.(\d*))?$"),
    ",": re.compile(r"^[-+]?[\d.]*(?:,(\d*))?$"),
}


def _written_decimals(frame: pd.DataFrame, rows: list[list[str]], decimal: str) -> dict[int, str]:
    """``fixed:N`` for each float column whose sampled cells all show N decimals.

    Only the sniffed rows (the first 200 lines) are looked at: a column that mixes 1.5 and
    2.25 there, or writes exponents, keeps the shortest exact form instead.
    """
    import pandas as pd

    pattern = _WRITTEN_NUMBER.get(decimal, _WRITTEN_NUMBER["."])
    formats: dict[int, str] = {}
    width = frame.shape[1]
    body = [r for r in rows[1:] if len(r) == width]
    for j in range(width):
        if not pd.api.types.is_float_dtype(frame.dtypes.iloc[j]):
            continue
        seen: set[int] = set()
        for row in body:
            cell = row[j].strip().strip('"').strip()
            if not cell or cell in _NA_TEXT:
                continue
            m = pattern.match(cell)
            if m is None:  # an exponent, "NaN", "n/a"...
                seen.add(-1)
                break
            seen.add(len(m.group(1) or ""))
        if len(seen) == 1 and -1 not in seen:
            formats[j] = f"fixed:{seen.pop()}"
    return formats


_DATE_START = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[ T]\d{1,2}:\d{2}.*)?\s*$")
_TIME_ONLY = re.compile(r"^\s*\d{1,2}:\d{2}(:\d{2}(\.\d{1,9})?)?\s*$")


def _date_format(values: list[str]) -> tuple[str, str] | None:
    """(strptime format, display) that parses at least 90 % of ``values``, or None."""
    import pandas as pd
    from pandas.tseries.api import guess_datetime_format

    first = values[0].strip()
    if all(_TIME_ONLY.match(v) for v in values):
        parts = first.count(":")
        fmt = "%H:%M" if parts == 1 else ("%H:%M:%S.%f" if "." in first else "%H:%M:%S")
        candidates = [(fmt, "time")]
    elif sum(bool(_DATE_START.match(v)) for v in values) >= DATE_SHARE * len(values):
        candidates = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for dayfirst in (False, True):
                fmt = guess_datetime_format(first, dayfirst=dayfirst)
                if fmt and all(fmt != c[0] for c in candidates):
                    has_time = "%H" in fmt or "%I" in fmt
                    candidates.append((fmt, "datetime" if has_time else "date"))
    else:
        return None
    best, best_ok = None, 0
    sample = pd.Series(values, dtype=object)
    for fmt, display in candidates:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(sample, format=fmt, errors="coerce")
        ok = int(parsed.notna().sum())
        if ok > best_ok:
            best, best_ok = (fmt, display), ok
    return best if best_ok >= DATE_SHARE * len(values) else None


def _parse_dates(frame: pd.DataFrame, notes: list[str], cautions: list[str]) -> dict[int, str]:
    """Turn text columns that hold dates or times into datetimes, in place.

    A column is converted when 90 % of its first 200 values parse with one format (ISO,
    day-first or month-first, chosen by what parses more; time of day alone too). Values
    that do not parse become missing and a note counts them.
    """
    import pandas as pd

    formats: dict[int, str] = {}
    converted: list[str] = []
    for j in range(frame.shape[1]):
        col = frame.iloc[:, j]
        if not (pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col)):
            continue
        # The first DATE_SAMPLE values present: look at a few times that many rows first
        # (dropna over a million strings costs ~0.1 s), the whole column only if sparse.
        head = col.head(4 * DATE_SAMPLE).dropna().head(DATE_SAMPLE)
        if len(head) < DATE_SAMPLE and len(col) > 4 * DATE_SAMPLE:
            head = col.dropna().head(DATE_SAMPLE)
        values = [v for v in head.tolist() if isinstance(v, str) and v.strip()]
        if len(values) < max(1, len(head) // 2):
            continue
        found = _date_format(values)
        if found is None:
            continue
        fmt, display = found
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(col, format=fmt, errors="coerce")
        lost = int(col.notna().sum() - parsed.notna().sum())
        frame.isetitem(j, parsed)
        formats[j] = display
        converted.append(str(frame.columns[j]))
        if lost:
            cautions.append(
                f"{lost:,} value(s) of column {frame.columns[j]!s} are not dates in the "
                "column's format and show as missing."
            )
            notes.append(cautions[-1])
    if converted:
        names = ", ".join(converted[:5]) + (", …" if len(converted) > 5 else "")
        notes.append(f"Read as dates and times: {names}.")
    return formats


# --------------------------------------------------------------------------- Excel
#
# A workbook is budgeted by what it becomes, counted while it is read: the XML each part
# really inflates to (a zip's sizes are only its writer's claim), the shared strings, and
# the cells. A sheet is streamed a cell at a time (openpyxl's cell parser, our own loop
# that keeps no element), stored sparsely, and made into a table only over the rows and
# columns that hold values: a 2 KB sheet with one value in its last cell (XFD1048576)
# is a 1 x 1 table, never a 17-billion-cell grid.


class _OverBudget(Exception):
    """A workbook part inflated past its budget while being read (not a ValueError:
    openpyxl turns those into its own message)."""

    def __init__(self, part: str, budget: int) -> None:
        super().__init__(part)
        self.part = part
        self.budget = budget


class _CountedPart(io.RawIOBase):
    """A zip member's stream that counts the bytes it inflates and stops at ``budget``."""

    def __init__(self, inner, part: str, budget: int, count_tag: bytes | None = None) -> None:
        self._inner = inner
        self.part = part
        self.budget = budget
        self.read_bytes = 0
        self._tag = count_tag
        self.tags = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._inner.read(min(len(buffer), 1 << 20))
        self.read_bytes += len(data)
        if self.read_bytes > self.budget:
            raise _OverBudget(self.part, self.budget)
        if self._tag is not None:
            self.tags += data.count(self._tag)
            if self.tags > MAX_SHARED_STRINGS:
                raise _OverBudget(self.part, -MAX_SHARED_STRINGS)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


def _budgeted_zip(path: Path):
    """A ``zipfile.ZipFile`` whose every member read (``open`` and ``read``) is counted:
    worksheets up to MAX_XLSX_SHEET_BYTES each, any other part up to MAX_XLSX_PART_BYTES,
    the shared strings also up to MAX_SHARED_STRINGS entries."""

    class BudgetedZip(zipfile.ZipFile):
        def open(self, name, mode="r", pwd=None, **kw):  # noqa: A003 - ZipFile's name
            inner = super().open(name, mode, pwd, **kw)
            if mode != "r":
                return inner
            member = name.filename if isinstance(name, zipfile.ZipInfo) else str(name)
            sheet = "worksheets/" in member
            budget = MAX_XLSX_SHEET_BYTES if sheet else MAX_XLSX_PART_BYTES
            tag = b"<si" if member.lower().endswith("sharedstrings.xml") else None
            return io.BufferedReader(_CountedPart(inner, member, budget, tag), 1 << 16)

    return BudgetedZip(path)


def _over_budget(label: str, exc: _OverBudget) -> TableTooLargeError:
    if exc.budget < 0:
        return TableTooLargeError(
            f"{label} has more than {-exc.budget:,} shared strings (distinct texts); it was "
            "not read: as Python text they would take gigabytes.",
            "Export the sheet you need as CSV.",
        )
    what = "shared strings" if exc.part.lower().endswith("sharedstrings.xml") else exc.part
    return TableTooLargeError(
        f"{label}: its part {what} inflates to more than {_human_bytes(exc.budget)} of XML "
        "while being read; reading stopped there.",
        "Export the sheet you need as CSV, or save the workbook again from a spreadsheet.",
    )


def _check_zip(path: Path, label: str) -> None:
    """Refuse damaged workbooks and claimed zip bombs before openpyxl inflates anything
    (what is really inflated is counted while reading, see ``_budgeted_zip``)."""
    try:
        with zipfile.ZipFile(path) as zf:
            expanded = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise TableParseError(
            f"{label} is a damaged Excel workbook ({exc}).",
            "Open it in a spreadsheet and save it again, or export the sheet as CSV.",
        ) from exc
    if expanded > MAX_XLSX_UNCOMPRESSED:
        raise TableTooLargeError(
            f"{label} expands to {_human_bytes(expanded)} when unpacked, more than the "
            f"{_human_bytes(MAX_XLSX_UNCOMPRESSED)} limit for workbooks; it was not read.",
            "Export the sheet you need as CSV.",
        )


def _open_workbook(path: Path, label: str):
    """The workbook, read-only, every part it reads counted against the budgets."""
    from openpyxl.reader.excel import ExcelReader

    _check_zip(path, label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "unknown extension", "no default style"
            # load_workbook(read_only=True) is these two steps; the reader's archive is
            # swapped for one that counts what it inflates before anything is read.
            reader = ExcelReader(path, read_only=True, data_only=True, keep_links=False)
            reader.archive.close()
            reader.archive = _budgeted_zip(path)
            reader.valid_files = reader.archive.namelist()
            for name in reader.valid_files:
                if name.lower().endswith("sharedstrings.xml"):
                    # Counted through once (inflated, not parsed) before openpyxl makes a
                    # Python string of each entry.
                    with reader.archive.open(name) as part:
                        while part.read(1 << 20):
                            pass
            reader.read()
            return reader.wb
    except _OverBudget as exc:
        raise _over_budget(label, exc) from None
    except Exception as exc:  # noqa: BLE001 - openpyxl raises KeyError, ValueError, XML errors…
        raise TableParseError(
            f"{label} could not be read as an Excel workbook ({type(exc).__name__}: {exc}).",
            "Open it in a spreadsheet and save it again, or export the sheet as CSV.",
        ) from exc


def list_sheets(path: Path | str, *, with_data: bool = False) -> list[str]:
    """The names of a workbook's worksheets, in order (chart sheets are left out); only
    those holding a value when ``with_data`` (as loading decides: streamed, within the
    workbook budgets, stopping at each sheet's first value)."""
    path = Path(path)
    wb = _open_workbook(path, path.name)
    try:
        if with_data:
            return [
                ws.title
                for ws in wb.worksheets
                if _read_sheet(wb, ws, path.name, None, probe=True).rows
            ]
        return list(wb.sheetnames)
    except _OverBudget as exc:
        raise _over_budget(path.name, exc) from None
    finally:
        wb.close()


_FIXED_FORMAT = re.compile(r"^[#,]*0(?:\.(0+))?$")
# Number formats are looked at in this many data rows under the header.
_FORMAT_ROWS = 50


@dataclass
class _SparseSheet:
    """The cells of a sheet that hold values, as read: parallel arrays, no grid."""

    rows: array = field(default_factory=lambda: array("l"))
    cols: array = field(default_factory=lambda: array("l"))
    values: list[object] = field(default_factory=list)
    formats: dict[int, str] = field(default_factory=dict)  # column -> number format
    last_row: int = 0  # the sheet row reading stopped after


def _cells(wb, ws):
    """Every cell of a read-only worksheet as ``(row, column, value, data_type,
    style_id)``, in file order, streamed: each element is dropped once parsed, so a
    row of a million cells or a million rows of attributes cost nothing kept."""
    from openpyxl.worksheet._reader import CELL_TAG, ROW_TAG, WorkSheetParser
    from openpyxl.xml.functions import iterparse

    with ws._get_source() as src:
        parser = WorkSheetParser(
            src,
            ws._shared_strings,
            data_only=True,
            epoch=wb.epoch,
            date_formats=wb._date_formats,
            timedelta_formats=wb._timedelta_formats,
        )
        stack: list = []
        in_row = None
        for event, element in iterparse(src, events=("start", "end")):
            if event == "start":
                stack.append(element)
                if element.tag == ROW_TAG:
                    in_row = element
                    r = element.get("r")
                    parser.row_counter = int(r) if r and r.isdigit() else parser.row_counter + 1
                    parser.col_counter = 0
                continue
            stack.pop()
            if element.tag == CELL_TAG and in_row is not None:
                cell = parser.parse_cell(element)
                yield (cell["row"], cell["column"], cell["value"], cell["data_type"],
                       cell["style_id"])  # fmt: skip
            elif element.tag == ROW_TAG:
                in_row = None
            elif in_row is not None:
                continue  # a cell's value or text: its cell parses it
            if stack:
                stack[-1].remove(element)  # nothing parsed is kept
            element.clear()


def _convert(value: object, data_type: str) -> object:
    """A cell as pandas' read_excel takes it (integers from whole numbers, errors NaN)."""
    if data_type == "e":
        return math.nan
    if data_type == "n" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _read_sheet(wb, ws, label: str, max_rows: int | None, *, probe: bool = False):
    """The sheet's values (``probe``: stop at the first one), within MAX_XLSX_CELLS."""
    from openpyxl.cell.read_only import ReadOnlyCell

    out = _SparseSheet()
    header_row = None
    data_rows = 0
    last = 0
    formats: dict[int, str] = {}
    style_formats: dict[int, str | None] = {}
    for row, col, value, data_type, style_id in _cells(wb, ws):
        if value is None or value == "":
            continue
        if probe:
            out.rows.append(row)
            return out
        if header_row is None:
            header_row = row
        if row != last:
            if row > header_row:
                data_rows += 1
                if max_rows is not None and data_rows > max_rows:
                    break
            last = row
        if len(out.values) >= MAX_XLSX_CELLS:
            raise TableTooLargeError(
                f"Sheet {ws.title!r} of {label} holds more than {MAX_XLSX_CELLS:,} cells "
                f"(reading stopped at row {row:,}); a workbook table may have at most "
                f"{MAX_XLSX_CELLS:,}.",
                "Export the sheet as CSV, or split it into smaller sheets.",
            )
        value = _convert(value, data_type)
        out.rows.append(row)
        out.cols.append(col)
        out.values.append(value)
        if row > header_row and data_rows <= _FORMAT_ROWS and isinstance(value, float | int):
            if style_id not in style_formats:
                try:
                    style_formats[style_id] = ReadOnlyCell(
                        ws, row, col, value, data_type, style_id
                    ).number_format
                except (IndexError, KeyError, AttributeError):
                    style_formats[style_id] = None
            fmt = style_formats[style_id]
            if fmt is not None:
                formats[col] = fmt if formats.get(col, fmt) == fmt else "mixed"
    out.formats = formats
    out.last_row = last
    return out


def _sheet_frame(sheet: _SparseSheet, name: str, label: str) -> tuple[pd.DataFrame, list]:
    """The table over the rows and columns that hold values (header: the first such row),
    typed the way pandas' read_excel types it; the number format of each of its columns."""
    from pandas.io.parsers import TextParser

    used_rows = sorted(set(sheet.rows))
    used_cols = sorted(set(sheet.cols))
    cells = len(used_rows) * len(used_cols)
    if cells > MAX_XLSX_CELLS:
        raise TableTooLargeError(
            f"Sheet {name!r} of {label} spreads {len(sheet.values):,} values over "
            f"{len(used_rows):,} rows × {len(used_cols):,} columns: as a table that is "
            f"{cells:,} cells, more than the {MAX_XLSX_CELLS:,}-cell limit.",
            "Move the data into one block of rows and columns, or export it as CSV.",
        )
    row_at = {r: i for i, r in enumerate(used_rows)}
    col_at = {c: j for j, c in enumerate(used_cols)}
    grid = [[""] * len(used_cols) for _ in used_rows]  # "" is what read_excel gives empties
    for r, c, v in zip(sheet.rows, sheet.cols, sheet.values, strict=True):
        grid[row_at[r]][col_at[c]] = v
    sheet.rows, sheet.cols, sheet.values = array("l"), array("l"), []  # in the grid now
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = TextParser(grid, header=0, skip_blank_lines=False).read()
    return frame, [sheet.formats.get(c) for c in used_cols]


def _load_excel(path: Path, label: str, sheet: str | None, max_rows: int | None) -> LoadedTable:
    import pandas as pd

    wb = _open_workbook(path, label)
    notes: list[str] = []
    try:
        names = [ws.title for ws in wb.worksheets]
        if sheet is not None and sheet not in names:
            raise TableError(
                f"{label} has no sheet named {sheet!r}.",
                "Choose one of: " + ", ".join(names) + ".",
            )
        chosen = None
        for name in [sheet] if sheet is not None else names:
            if _read_sheet(wb, wb[name], label, None, probe=True).rows:
                chosen = name
                break
            if sheet is not None:
                raise EmptyTableError(
                    f"Sheet {sheet!r} of {label} is empty.",
                    "Choose another sheet: " + ", ".join(n for n in names if n != sheet) + "."
                    if len(names) > 1
                    else "Check the workbook.",
                )
        if chosen is None:
            raise EmptyTableError(
                f"{label} has no data: "
                + ("its only sheet is empty." if len(names) == 1 else "every sheet is empty."),
                "Check that the workbook was saved with its data.",
            )
        if sheet is None and chosen != names[0]:
            notes.append(f"Sheet {chosen!r} is shown: the sheets before it are empty.")
        sparse = _read_sheet(wb, wb[chosen], label, max_rows)
        frame, cell_formats = _sheet_frame(sparse, chosen, label)
    except _OverBudget as exc:
        raise _over_budget(label, exc) from None
    except TableError:
        raise
    except Exception as exc:  # noqa: BLE001 - openpyxl/pandas raise many kinds for bad sheets
        raise TableParseError(
            f"Sheet {chosen!r} of {label} could not be read ({type(exc).__name__}: {exc}).",
            "Open it in a spreadsheet and save it again, or export the sheet as CSV.",
        ) from exc
    finally:
        wb.close()
    # Drop columns and rows that are entirely empty (formatting beyond the data).
    frame = frame.dropna(axis=1, how="all").dropna(axis=0, how="all")
    if frame.empty and len(frame.columns) == 0:
        raise EmptyTableError(f"Sheet {chosen!r} of {label} has no data.", "Check the sheet.")
    if len(frame) == 0:
        notes.append("The sheet has a header row but no data rows.")
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed: ")]
    if unnamed:
        notes.append(f"{len(unnamed)} column(s) had no header name.")
    formats: dict[int, str] = {}
    for j in range(frame.shape[1]):
        col = frame.iloc[:, j]
        if pd.api.types.is_float_dtype(col.dtype):
            pos = frame.columns.get_loc(frame.columns[j])
            fmt = cell_formats[pos] if isinstance(pos, int) and pos < len(cell_formats) else None
            m = _FIXED_FORMAT.match(fmt or "")
            if m:
                formats[j] = f"fixed:{len(m.group(1) or '')}"
        elif pd.api.types.is_datetime64_any_dtype(col.dtype):
            times = col.dropna()
            midnight = bool(len(times)) and bool((times == times.dt.normalize()).all())
            formats[j] = "date" if midnight else "datetime"
    cautions: list[str] = []
    formats.update(_parse_dates(frame, notes, cautions))
    return LoadedTable(
        frame=frame.reset_index(drop=True),
        path=path,
        delimiter="",
        encoding="",
        decimal=".",
        notes=notes,
        kind="excel",
        sheet=chosen,
        sheets=tuple(names),
        formats=formats,
        warnings=cautions,
    )


# --------------------------------------------------------------------------- Parquet


#: A float column whose values need more decimals than this keeps the shortest exact form.
MAX_EVEN_DECIMALS = 6
EVEN_DECIMALS_SAMPLE = 500


def _even_decimals(frame: pd.DataFrame, known: dict[int, str]) -> dict[int, str]:
    """``"fixed:N"`` for each float column without a format, N the most decimals its
    values need (a sample of rows): a Parquet column of 6.9, 7 and 7.02 shows as 6.90,
    7.00 and 7.02, as a CSV writer would have written it. A column needing more than
    :data:`MAX_EVEN_DECIMALS`, or holding very large or small magnitudes, is left alone."""
    import numpy as np

    formats: dict[int, str] = {}
    n = len(frame)
    if n == 0:
        return formats
    rows = np.unique(np.linspace(0, n - 1, min(n, EVEN_DECIMALS_SAMPLE)).astype(int))
    for j in range(frame.shape[1]):
        if j in known or frame.dtypes.iloc[j].kind != "f":
            continue
        values = frame.iloc[rows, j].to_numpy(dtype="float64")
        values = values[np.isfinite(values)]
        if not len(values) or np.any(
            (values != 0) & ((np.abs(values) < 1e-6) | (np.abs(values) >= 1e16))
        ):
            continue
        needed = 0
        for v in values:
            text = np.format_float_positional(v, trim="-")
            needed = max(needed, len(text.partition(".")[2]))
            if needed > MAX_EVEN_DECIMALS:
                break
        if needed <= MAX_EVEN_DECIMALS:
            formats[j] = f"fixed:{needed}"
    return formats


# Parquet's physical types whose values have no fixed width (text, bytes).
_PARQUET_BYTE_ARRAY = (6, 7)


def _parquet_budget(pf, max_rows: int | None) -> tuple[int, int]:
    """(bytes of text and bytes values, bytes in memory) of the row groups that would be
    read, from the footer alone: text by its uncompressed size, the rest by its values."""
    text = other = rows = 0
    for group in pf.row_groups:
        if max_rows is not None and rows >= max_rows:
            break
        rows += group.num_rows or 0
        for chunk in group.columns or ():
            meta = chunk.meta_data
            if meta is None:
                continue
            if meta.type in _PARQUET_BYTE_ARRAY:
                text += max(meta.total_uncompressed_size or 0, 0)
                other += 8 * max(meta.num_values or 0, 0)  # a reference per value
            else:
                other += 8 * max(meta.num_values or 0, 0)
    return text, text + other


def _load_parquet(path: Path, label: str, max_rows: int | None) -> LoadedTable:
    import pandas as pd

    with warnings.catch_warnings():
        # fastparquet reads a pandas option that pandas 3 deprecates, at import.
        warnings.simplefilter("ignore")
        from fastparquet import ParquetFile

    notes: list[str] = []
    cautions: list[str] = []
    # fastparquet leaves the files it opens itself to the garbage collector: give it one
    # that is closed here.
    try:
        with path.open("rb") as fh:
            try:
                # Its thrift decoder prints a line per bad field of a damaged footer on
                # stdout (hundreds): kept out of the terminal, sent to the log instead.
                with contextlib.redirect_stdout(io.StringIO()) as said:
                    pf = ParquetFile(fh)
                    n_rows, n_cols = pf.count(), len(pf.columns)
            except Exception as exc:  # noqa: BLE001 - thrift/format errors come in many kinds
                log.debug("%s: unreadable Parquet footer (%r): %s", label, exc, said.getvalue())
                raise TableParseError(
                    f"{label} is a damaged or unsupported Parquet file: its footer (the "
                    "description of its columns at the end of the file) cannot be read.",
                    "Write it again (for example with pandas.DataFrame.to_parquet) or export "
                    "it as CSV.",
                ) from exc
            if n_rows * max(n_cols, 1) > MAX_PARQUET_CELLS and max_rows is None:
                raise TableTooLargeError(
                    f"{label} holds {n_rows:,} rows × {n_cols:,} columns, more than the "
                    f"{MAX_PARQUET_CELLS:,}-cell limit for tables; it was not read.",
                    "Load only the first rows, or select the columns you need into a smaller file.",
                )
            text_bytes, memory = _parquet_budget(pf, max_rows)
            if text_bytes > MAX_PARQUET_TEXT_BYTES:
                raise TableTooLargeError(
                    f"{label} holds {_human_bytes(text_bytes)} of text (its footer says so), "
                    f"more than the {_human_bytes(MAX_PARQUET_TEXT_BYTES)} limit for a "
                    "table's text; it was not read.",
                    "Select the columns you need (or shorten long text values) into a smaller "
                    "file, or load only the first rows.",
                )
            if memory > LARGE_TABLE_BYTES:
                cautions.append(
                    f"This is a large table: about {_human_bytes(memory)} in memory while "
                    "it is open."
                )
                notes.append(cautions[-1])
            try:
                frame = pf.head(max_rows) if max_rows is not None else pf.to_pandas()
            except Exception as exc:  # noqa: BLE001
                raise TableParseError(
                    f"{label} could not be read ({type(exc).__name__}: {exc}).",
                    "Write it again or export it as CSV.",
                ) from exc
    except OSError as exc:
        raise unreadable(path, exc, TableNotFoundError) from exc
    if max_rows is not None and n_rows > max_rows:
        cautions.append(f"Only the first {max_rows:,} of {n_rows:,} rows were read.")
        notes.append(cautions[-1])
    if n_cols == 0:
        raise EmptyTableError(f"{label} has no columns.", "Check the file.")
    if len(frame) == 0:
        notes.append("The file has columns but no rows.")
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    formats: dict[int, str] = {}
    for j in range(frame.shape[1]):
        col = frame.iloc[:, j]
        if pd.api.types.is_datetime64_any_dtype(col.dtype):
            times = col.dropna()
            midnight = bool(len(times)) and bool((times == times.dt.normalize()).all())
            formats[j] = "date" if midnight else "datetime"
    formats.update(_parse_dates(frame, notes, cautions))
    formats.update(_even_decimals(frame, formats))
    return LoadedTable(
        frame=frame,
        path=path,
        delimiter="",
        encoding="",
        decimal=".",
        notes=notes,
        kind="parquet",
        formats=formats,
        warnings=cautions,
    )


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


# --------------------------------------------------------------------------- summary


def _cell(value: object, width: int, fmt: str | None = None) -> str:
    if fmt is None and isinstance(value, float):
        text = "" if math.isnan(value) else f"{value:.6g}"  # compact for statistics
    else:
        text = format_value(value, fmt)
    text = text.replace("|", "\\|").replace("\n", " ").replace("\r", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _md_table(
    frame: pd.DataFrame,
    width: int,
    index_name: str = "row",
    formats: dict[int, str] | None = None,
) -> str:
    fmts = [(formats or {}).get(j) for j in range(frame.shape[1])]
    header = [index_name] + [_cell(c, width) for c in frame.columns]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for idx, row in zip(frame.index, frame.itertuples(index=False, name=None), strict=True):
        cells = [_cell(v, width, f) for v, f in zip(row, fmts, strict=True)]
        out.append("| " + " | ".join([_cell(idx, width)] + cells) + " |")
    return "\n".join(out)


@dataclass(frozen=True)
class _Level:
    max_cols: int
    head: int
    tail: int
    sample: int
    describe: bool
    width: int


# From most to least detailed; the first level that fits the budget is used.
_LEVELS = (
    _Level(40, 5, 5, 10, True, 24),
    _Level(30, 5, 5, 5, True, 20),
    _Level(20, 3, 3, 5, True, 16),
    _Level(15, 3, 3, 3, True, 14),
    _Level(12, 2, 2, 2, True, 12),
    _Level(10, 2, 2, 0, True, 12),
    _Level(8, 2, 1, 0, False, 10),
    _Level(6, 1, 1, 0, False, 10),
    _Level(4, 1, 0, 0, False, 8),
    _Level(3, 0, 0, 0, False, 8),
)


def summarise_table(
    table: LoadedTable | pd.DataFrame,
    *,
    token_budget: int = DEFAULT_TABLE_TOKEN_BUDGET,
    name: str | None = None,
) -> str:
    """A deterministic Markdown summary of the table that fits ``token_budget`` tokens.

    Tokens are counted with the app's one estimate,
    :func:`~kanoa_desktop.core.tokens.estimate_text_tokens` (tokenizers vary; for
    digit-heavy tables it is within about 30 %, so the budget is a target, not a guarantee
    about a given model). Sections: shape,
    columns with types and missing counts, describe() of numeric columns, head, tail and an
    evenly spaced sample. When the text is too long, fewer rows and columns are shown (with
    a note saying how many were left out); as a last resort the text is cut with a marker.
    The result's estimate never exceeds ``token_budget`` (so it is never longer than
    ``token_budget * CHARS_PER_TOKEN`` characters).
    """
    if token_budget < 1:
        raise ValueError("token_budget must be positive")
    import pandas as pd

    frame = table.frame if isinstance(table, LoadedTable) else table
    if name is None and isinstance(table, LoadedTable):
        name = table.name
    notes = table.notes if isinstance(table, LoadedTable) else []
    formats = table.formats if isinstance(table, LoadedTable) else {}
    limit = int(token_budget * CHARS_PER_TOKEN)
    n_rows, n_cols = frame.shape
    first_cols = frame.columns[: _LEVELS[0].max_cols]
    numeric = [c for c in first_cols if pd.api.types.is_numeric_dtype(frame[c].dtype)]
    described = frame[numeric].describe().T if numeric and n_rows else None
    missing = _missing_counts(frame, len(first_cols), described)

    text = ""
    for level in _LEVELS:
        text = _render(frame, name, notes, level, missing, described, formats)
        if len(text) <= limit and estimate_text_tokens(text) <= token_budget:
            return text
    return _cut_to_budget(text, token_budget)


def _missing_counts(
    frame: pd.DataFrame, n_cols: int, described: pd.DataFrame | None = None
) -> pd.Series:
    """Missing values in each of the first ``n_cols`` columns (``frame.isna().sum()``).

    A column ``described`` covers (its ``count`` is the non-missing count) is not counted
    again: a pass less over every numeric column.

    A column of Python objects (text) is counted GIL_ROWS rows at a time: pandas' isna
    over objects holds the GIL for the whole call (~35 ms per million rows), and the
    window's GUI thread waits for it while a table loads on a worker."""
    import pandas as pd

    part = frame.iloc[:, :n_cols]
    n_rows = len(frame)
    known = (
        described["count"]
        if described is not None and "count" in described and described.index.is_unique
        else None
    )
    counts = []
    for j in range(part.shape[1]):
        col = part.iloc[:, j]
        name = part.columns[j]
        if known is not None and part.columns.is_unique and name in known.index:
            counts.append(n_rows - int(known[name]))
        elif col.dtype.kind in "biufcmM":  # numpy arrays: vectorised, without the GIL
            counts.append(int(col.isna().sum()))
        else:
            step = GIL_ROWS
            counts.append(
                sum(int(col.iloc[i : i + step].isna().sum()) for i in range(0, len(col), step))
            )
    return pd.Series(counts, index=part.columns, dtype="int64")


def _cut_to_budget(text: str, token_budget: int) -> str:
    """The longest prefix of ``text``, with a marker when there is room for it, whose
    estimate fits ``token_budget`` (the estimate grows with the prefix: binary search)."""
    marker = "\n…(summary cut to fit the token budget)"
    if estimate_text_tokens(marker) >= token_budget:
        marker = ""
    lo, hi = 0, min(len(text), int(token_budget * CHARS_PER_TOKEN))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate_text_tokens(text[:mid] + marker) <= token_budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + marker


def _render(
    frame: pd.DataFrame,
    name: str | None,
    notes: list[str],
    lv: _Level,
    missing: pd.Series,
    described: pd.DataFrame | None,
    formats: dict[int, str],
) -> str:
    import numpy as np

    n_rows, n_cols = frame.shape
    cols = list(frame.columns[: lv.max_cols])
    hidden = n_cols - len(cols)
    out = [f"## Table {name}" if name else "## Table", ""]
    out.append(f"Shape: {n_rows:,} rows × {n_cols:,} columns.")
    out.extend(notes)
    if hidden:
        out.append(f"Only the first {len(cols)} of {n_cols} columns are shown below.")
    out += ["", "### Columns", ""]
    for c in cols:
        miss = int(missing[c]) if c in missing.index else int(frame[c].isna().sum())
        pct = f" ({100 * miss / n_rows:.1f} %)" if n_rows and miss else ""
        out.append(f"- {_cell(c, lv.width * 2)}: {frame[c].dtype}, missing {miss:,}{pct}")
    if lv.describe and described is not None:
        shown = described.loc[[c for c in cols if c in described.index]]
        if len(shown):
            stats = shown.drop(columns=["count"], errors="ignore")
            out += ["", "### Numeric columns (describe)", "", _md_table(stats, lv.width, "column")]
    if n_rows:
        view = frame.iloc[:, : len(cols)]
        head = min(lv.head, n_rows)
        tail = min(lv.tail, n_rows - head)
        if head:
            out += [
                "",
                f"### First {head} rows",
                "",
                _md_table(view.iloc[:head], lv.width, "row", formats),
            ]
        if tail:
            out += [
                "",
                f"### Last {tail} rows",
                "",
                _md_table(view.iloc[-tail:], lv.width, "row", formats),
            ]
        middle = n_rows - head - tail
        if lv.sample and middle > 0:
            k = min(lv.sample, middle)
            # Evenly spaced rows between head and tail: deterministic, covers the whole range.
            idx = np.unique(np.linspace(head, n_rows - tail - 1, k).round().astype(int))
            out += [
                "",
                f"### {len(idx)} evenly spaced rows",
                "",
                _md_table(view.iloc[idx], lv.width, "row", formats),
            ]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- plotting


def _numeric(series: pd.Series, label: str, allow_datetime: bool) -> np.ndarray:
    import numpy as np
    import pandas as pd

    if allow_datetime and pd.api.types.is_datetime64_any_dtype(series.dtype):
        if getattr(series.dt, "tz", None) is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)  # plot in UTC
        return series.to_numpy(dtype="datetime64[ns]")
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    raise PlotError(
        f"Column {label!r} is not numeric ({series.dtype}), so it cannot be plotted.",
        "Choose a numeric column.",
    )


def _minmax_downsample(x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, ...]:
    """Keep the min and max of each of ``buckets`` consecutive slices, in order: the line
    looks the same at screen resolution and spikes are not lost (unlike striding)."""
    import numpy as np

    n = len(y)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep: list[int] = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b <= a:
            continue
        seg = y[a:b]
        i, j = a + int(np.argmin(seg)), a + int(np.argmax(seg))
        keep.extend(sorted({i, j}))
    idx = np.asarray(keep)
    return x[idx], y[idx]


def quick_plot(
    table: LoadedTable | pd.DataFrame,
    x: str | None,
    y: str | None,
    kind: str = "line",
    *,
    width_px: int = 1024,
    height_px: int = 640,
    dpi: int = 100,
) -> bytes:
    """Render a plot as PNG bytes (``width_px`` × ``height_px``).

    ``kind`` is "line", "scatter" or "hist". Line and scatter plot ``y`` against ``x``
    (``x=None`` uses the row number). "hist" plots the distribution of ``y`` (or of ``x``
    when ``y`` is None). Missing values are dropped. Line plots over 5,000 points keep the
    min and max per bucket; scatter plots over 100,000 points show an even subset, and the
    title says so. Raises PlotError for unknown columns, non-numeric data or no values.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frame = table.frame if isinstance(table, LoadedTable) else table
    if kind not in ("line", "scatter", "hist"):
        raise PlotError(f"Unknown plot kind {kind!r}.", "Use line, scatter or hist.")
    for col in (x, y):
        if col is not None and col not in frame.columns:
            raise PlotError(f"There is no column named {col!r}.", "Pick a column from the list.")
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    title_note = ""
    if kind == "hist":
        col = y if y is not None else x
        if col is None:
            raise PlotError("No column was chosen for the histogram.", "Pick a column.")
        values = _numeric(frame[col], col, allow_datetime=False)
        values = values[np.isfinite(values)]
        if not len(values):
            raise PlotError(f"Column {col!r} has no numeric values.", "Pick another column.")
        ax.hist(values, bins="auto" if len(values) < 1_000_000 else 200)
        ax.set_xlabel(str(col))
        ax.set_ylabel("count")
    else:
        if y is None:
            raise PlotError("No y column was chosen.", "Pick a column for the y axis.")
        yv = _numeric(frame[y], y, allow_datetime=False)
        xv = (
            np.arange(len(frame), dtype=float)
            if x is None
            else _numeric(frame[x], x, allow_datetime=True)
        )
        ok = np.isfinite(yv)
        if xv.dtype.kind == "f":
            ok &= np.isfinite(xv)
        elif xv.dtype.kind == "M":
            ok &= ~np.isnat(xv)
        xv, yv = xv[ok], yv[ok]
        if not len(yv):
            raise PlotError(f"Column {y!r} has no numeric values to plot.", "Pick another column.")
        if kind == "line":
            if len(yv) > LINE_PLOT_MAX_POINTS:
                xv, yv = _minmax_downsample(xv, yv, LINE_PLOT_MAX_POINTS // 2)
            ax.plot(xv, yv, linewidth=1)
        else:
            if len(yv) > SCATTER_MAX_POINTS:
                step = -(-len(yv) // SCATTER_MAX_POINTS)
                xv, yv = xv[::step], yv[::step]
                title_note = f" (every {step}th point)"
            ax.scatter(xv, yv, s=4, alpha=0.6, linewidths=0)
        ax.set_xlabel("row" if x is None else str(x))
        if xv.dtype.kind == "M":
            fig.autofmt_xdate()  # dates on a real time axis, labels slanted to fit
        ax.set_ylabel(str(y))
    label = {"line": "Line", "scatter": "Scatter", "hist": "Histogram"}[kind]
    ax.set_title(f"{label}{title_note}")
    ax.grid(True, alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
