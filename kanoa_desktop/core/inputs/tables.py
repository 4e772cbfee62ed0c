"""Load a CSV/TSV, summarise it for a model within a token budget, and draw a quick plot.

Plain synchronous functions (no Qt): the UI runs them on a thread pool.

- :func:`load_table` detects encoding (UTF-8, UTF-8 with BOM, UTF-16 with BOM, Windows-1252 /
  Latin-1 fallback), delimiter (comma, semicolon, tab, pipe) and a comma decimal separator,
  then parses with pandas' C engine. Files over ``max_bytes`` are refused before any read.
- :func:`summarise_table` writes Markdown that never exceeds its token budget.
- :func:`quick_plot` renders PNG bytes with matplotlib's Agg canvas (no pyplot state, so it
  is safe off the GUI thread).

Every failure is a :class:`TableError` with a plain ``message`` and a ``hint``.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kanoa_desktop.core.ask.tokens import CHARS_PER_TOKEN as TOKEN_CHARS
from kanoa_desktop.core.ask.tokens import estimate_text_tokens
from kanoa_desktop.core.endpoint.errors import KanoaError

DEFAULT_MAX_BYTES = 1_000_000_000  # 1 GB: pandas needs several times this in memory
SAMPLE_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
CHARS_PER_TOKEN = int(TOKEN_CHARS)  # the app's estimate: see kanoa_desktop.core.ask.tokens
LINE_PLOT_MAX_POINTS = 5_000  # min/max buckets keep peaks visible below this
SCATTER_MAX_POINTS = 100_000


class TableError(KanoaError):
    """A table could not be loaded or plotted. ``message`` says what, ``hint`` what next."""

    title = "Cannot use this table"


class TableNotFoundError(TableError):
    """The file does not exist or cannot be read."""


class TableTooLargeError(TableError):
    """The file is larger than ``max_bytes``; nothing was read."""


class EmptyTableError(TableError):
    """The file is empty or holds only blank lines."""


class NotATableError(TableError):
    """The file is binary or has no recognisable delimited structure."""


class TableParseError(TableError):
    """pandas could not parse the file even after the fallbacks."""


class PlotError(TableError):
    """The chosen columns cannot be plotted (missing, not numeric, no values)."""


@dataclass
class LoadedTable:
    """A parsed table and how it was read. ``notes`` are sentences worth showing the user."""

    frame: pd.DataFrame
    path: Path
    delimiter: str
    encoding: str
    decimal: str
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def columns(self) -> int:
        return self.frame.shape[1]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def delimiter_name(self) -> str:
        return DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))


# --------------------------------------------------------------------------- detection


def _detect_encoding(sample: bytes, full_read: bool) -> tuple[str, str]:
    """Return (encoding for pandas, label). The sample may end mid-character."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "UTF-8 with BOM"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "UTF-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=full_read)
        return "utf-8", "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        sample.decode("cp1252")
        return "cp1252", "Windows-1252 (Latin-1)"
    except UnicodeDecodeError:
        return "latin-1", "Latin-1"


def _split_fields(lines: list[str], delim: str) -> list[list[str]]:
    try:
        return list(csv.reader(lines, delimiter=delim))
    except csv.Error:
        return [ln.split(delim) for ln in lines]


def _detect_delimiter(lines: list[str], suffix: str) -> str:
    """Choose the delimiter whose field count is most consistent across lines (quote-aware)."""
    if not lines:
        return "\t" if suffix in (".tsv", ".tab") else ","
    best, best_score = None, (0.0, 0)
    for delim in DELIMITERS:
        counts = [len(r) for r in _split_fields(lines, delim) if r]
        if not counts:
            continue
        mode, freq = Counter(counts).most_common(1)[0]
        if mode < 2:
            continue
        score = (freq / len(counts), mode)
        if score > best_score:
            best, best_score = delim, score
    if best is None:
        return "\t" if suffix in (".tsv", ".tab") else ","
    if suffix in (".tsv", ".tab") and "\t" in lines[0]:
        return "\t"
    return best


_COMMA_DECIMAL = re.compile(r"^\s*[-+]?\d{1,3}(?:\.\d{3})*,\d+\s*$|^\s*[-+]?\d+,\d+\s*$")
_DOT_DECIMAL = re.compile(r"^\s*[-+]?\d+\.\d+(?:[eE][-+]?\d+)?\s*$")


def _detect_decimal(rows: list[list[str]], delim: str) -> str:
    """A comma decimal is only possible when comma is not the delimiter; count votes."""
    if delim == ",":
        return "."
    comma = dot = 0
    for row in rows[1:]:
        for cell in row:
            cell = cell.strip().strip('"')
            if _COMMA_DECIMAL.match(cell):
                comma += 1
            elif _DOT_DECIMAL.match(cell):
                dot += 1
    return "," if comma > dot else "."


# --------------------------------------------------------------------------- loading


def load_table(
    path: Path | str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int | None = None,
) -> LoadedTable:
    """Read a delimited text file into a DataFrame.

    Refuses files over ``max_bytes`` without reading them (TableTooLargeError) unless
    ``max_rows`` is given, in which case only the first ``max_rows`` rows are read and a
    note says so. Raises a TableError subclass for missing, empty, binary or unparseable
    files. Header-only files load as 0 rows with a note; rows with too many fields are
    skipped with a note naming how many.
    """
    path = Path(path)
    label = path.name
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise TableNotFoundError(f"{label} is a folder, not a table file.", "Choose a file.")
    except FileNotFoundError as exc:
        raise TableNotFoundError(
            f"{label} was not found.", "Check that the file still exists and try again."
        ) from exc
    except OSError as exc:
        raise TableNotFoundError(
            f"{label} cannot be read ({exc.strerror or exc}).", "Check the file's permissions."
        ) from exc
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
        raise TableNotFoundError(
            f"{label} cannot be read ({exc.strerror or exc}).", "Check the file's permissions."
        ) from exc
    full_read = size <= SAMPLE_BYTES
    encoding, enc_label = _detect_encoding(sample, full_read)
    if encoding != "utf-16" and b"\x00" in sample:
        raise NotATableError(
            f"{label} is a binary file, not a CSV or TSV table.",
            "Export the data as CSV (comma- or semicolon-separated) or TSV.",
        )
    text = sample.decode(encoding, errors="replace")
    if not full_read:
        text = text.rsplit("\n", 1)[0]  # drop the partial last line of the sample
    lines = [ln for ln in text.splitlines() if ln.strip()][:200]
    if not lines:
        raise EmptyTableError(f"{label} holds only blank lines.", "Check the file's contents.")
    delim = _detect_delimiter(lines, path.suffix.lower())
    rows = _split_fields(lines, delim)
    decimal = _detect_decimal(rows, delim)
    if encoding == "utf-16":
        notes.append("The file is UTF-16; it was converted while reading.")

    frame, skipped = _read(path, label, delim, decimal, encoding, max_rows)
    if frame is None:  # a UTF-8 sample, but the rest of the file is not UTF-8
        encoding, enc_label = "cp1252", "Windows-1252 (Latin-1)"
        frame, skipped = _read(path, label, delim, decimal, "cp1252", max_rows)
        if frame is None:
            encoding, enc_label = "latin-1", "Latin-1"
            frame, skipped = _read(path, label, delim, decimal, "latin-1", max_rows)
        notes.append("The file is not UTF-8 throughout; it was read as " + enc_label + ".")
    assert frame is not None
    if skipped:
        notes.append(skipped)
    if frame.shape[1] == 1 and len(lines) > 1 and delim == ",":
        notes.append("Only one column was found; the file may not be delimited.")
    if len(frame) == 0:
        notes.append("The file has a header row but no data rows.")
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed: ")]
    if unnamed:
        notes.append(f"{len(unnamed)} column(s) had no header name.")
    if decimal == ",":
        notes.append("Numbers use a comma as the decimal separator.")
    return LoadedTable(
        frame=frame, path=path, delimiter=delim, encoding=enc_label, decimal=decimal, notes=notes
    )


def _read(
    path: Path, label: str, delim: str, decimal: str, encoding: str, max_rows: int | None
) -> tuple[pd.DataFrame | None, str]:
    """Parse with the C engine. Returns (None, "") on a decode error so the caller falls back."""
    kwargs = dict(
        sep=delim,
        decimal=decimal,
        encoding=encoding,
        engine="c",
        nrows=max_rows,
        skip_blank_lines=True,
    )
    try:
        try:
            # low_memory=False would avoid mixed-type chunks but doubles the parse time; a
            # DtypeWarning is turned into a note instead.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pd.errors.DtypeWarning)
                frame = pd.read_csv(path, **kwargs)
            mixed = [w for w in caught if issubclass(w.category, pd.errors.DtypeWarning)]
            return frame, (
                "Some columns mix numbers and text; they are kept as text." if mixed else ""
            )
        except pd.errors.ParserError as first:
            # Ragged rows: skip lines with too many fields rather than refuse the whole file.
            total = _count_lines(path)
            frame = pd.read_csv(path, on_bad_lines="skip", **kwargs)
            lost = max(0, total - 1 - len(frame))
            detail = str(first).split("\n")[0].strip().rstrip(".")
            return frame, (
                f"{lost:,} row(s) with more fields than the header were skipped ({detail})."
                if lost
                else f"Some rows were irregular and were skipped ({detail})."
            )
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
        raise TableNotFoundError(
            f"{label} cannot be read ({exc.strerror or exc}).", "Check the file."
        ) from exc


def _count_lines(path: Path) -> int:
    n = 0
    last = b"\n"
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (0 if last == b"\n" else 1)


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


# --------------------------------------------------------------------------- summary


def estimate_tokens(text: str) -> int:
    """Rough token count: ``ceil(len(text) / 4)``, the app's one estimate
    (:func:`kanoa_desktop.core.ask.tokens.estimate_text_tokens`). Tokenizers vary; for
    digit-heavy tables it is within about 30 %, so the budget is a target, not a guarantee
    about a given model."""
    return estimate_text_tokens(text)


def _cell(value: object, width: int) -> str:
    if isinstance(value, float):
        text = "" if np.isnan(value) else f"{value:.6g}"
    elif value is None or value is pd.NA or value is pd.NaT:
        text = ""
    else:
        text = str(value)
    text = text.replace("|", "\\|").replace("\n", " ").replace("\r", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _md_table(frame: pd.DataFrame, width: int, index_name: str = "row") -> str:
    header = [index_name] + [_cell(c, width) for c in frame.columns]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for idx, row in zip(frame.index, frame.itertuples(index=False, name=None), strict=True):
        out.append("| " + " | ".join([_cell(idx, width)] + [_cell(v, width) for v in row]) + " |")
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
    table: LoadedTable | pd.DataFrame, *, token_budget: int = 1500, name: str | None = None
) -> str:
    """A deterministic Markdown summary of the table that fits ``token_budget`` tokens.

    Tokens are estimated as 4 characters each (see :func:`estimate_tokens`). Sections: shape,
    columns with types and missing counts, describe() of numeric columns, head, tail and an
    evenly spaced sample. When the text is too long, fewer rows and columns are shown (with
    a note saying how many were left out); as a last resort the text is cut with a marker.
    The result is never longer than ``token_budget * 4`` characters.
    """
    if token_budget < 1:
        raise ValueError("token_budget must be positive")
    frame = table.frame if isinstance(table, LoadedTable) else table
    if name is None and isinstance(table, LoadedTable):
        name = table.name
    notes = table.notes if isinstance(table, LoadedTable) else []
    limit = token_budget * CHARS_PER_TOKEN
    n_rows, n_cols = frame.shape
    first_cols = frame.columns[: _LEVELS[0].max_cols]
    missing = frame[first_cols].isna().sum()
    numeric = [c for c in first_cols if pd.api.types.is_numeric_dtype(frame[c].dtype)]
    described = frame[numeric].describe().T if numeric and n_rows else None

    text = ""
    for level in _LEVELS:
        text = _render(frame, name, notes, level, missing, described)
        if len(text) <= limit:
            return text
    marker = "\n…(summary cut to fit the token budget)"
    if limit <= len(marker):
        return text[:limit]
    return text[: limit - len(marker)] + marker


def _render(
    frame: pd.DataFrame,
    name: str | None,
    notes: list[str],
    lv: _Level,
    missing: pd.Series,
    described: pd.DataFrame | None,
) -> str:
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
        view = frame[cols]
        head = min(lv.head, n_rows)
        tail = min(lv.tail, n_rows - head)
        if head:
            out += ["", f"### First {head} rows", "", _md_table(view.iloc[:head], lv.width)]
        if tail:
            out += ["", f"### Last {tail} rows", "", _md_table(view.iloc[-tail:], lv.width)]
        middle = n_rows - head - tail
        if lv.sample and middle > 0:
            k = min(lv.sample, middle)
            # Evenly spaced rows between head and tail: deterministic, covers the whole range.
            idx = np.unique(np.linspace(head, n_rows - tail - 1, k).round().astype(int))
            out += [
                "",
                f"### {len(idx)} evenly spaced rows",
                "",
                _md_table(view.iloc[idx], lv.width),
            ]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- plotting


def _numeric(series: pd.Series, label: str, allow_datetime: bool) -> np.ndarray:
    if allow_datetime and pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series.to_numpy()
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
        ax.set_ylabel(str(y))
    label = {"line": "Line", "scatter": "Scatter", "hist": "Histogram"}[kind]
    ax.set_title(f"{label}{title_note}")
    ax.grid(True, alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
