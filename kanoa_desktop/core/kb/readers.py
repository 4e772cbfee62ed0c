"""Turn one file of a knowledge-base folder into text segments, or say why not.

Every reader returns a :class:`ReadResult`; none raises for a bad file. A segment carries
where its text came from (a PDF page, a notebook cell, or the line number its text starts
on) so chunks can cite their source. Bad input is reported, not fatal:

- binary content (a NUL byte in the first 8 KiB) -> skipped;
- text that is not UTF-8 -> decoded with replacement (few bad bytes) or as Latin-1, noted;
  text that decodes to mostly control characters -> skipped as undecodable;
- files we may not read (permissions, FIFOs, vanished) -> skipped with the OS reason;
- text over :data:`MAX_TEXT_BYTES` -> only the first part is read, status ``capped``;
- encrypted (password) PDFs and broken PDFs -> skipped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from kanoa_desktop.core.inputs import delimited
from kanoa_desktop.core.safety import json_items

# Reading more than this much text from one file gains little for retrieval and costs
# index time and disk; the rest of the file is dropped with a note.
MAX_TEXT_BYTES = 5 * 1024 * 1024
# A notebook's JSON can be large because of embedded outputs (images); the sources we keep
# are small. Beyond this we do not parse it at all.
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
MAX_PDF_PAGES = 2000
SNIFF_BYTES = 8192

STATUS_INDEXED = "indexed"
STATUS_CAPPED = "capped"
STATUS_SKIPPED = "skipped"

TEXT_EXTENSIONS = frozenset({".md", ".markdown", ".txt", ".text", ".rst", ".tex", ".bib", ".org"})
CODE_EXTENSIONS = frozenset(
    {
        ".py",
        ".r",
        ".jl",
        ".m",
        ".c",
        ".cpp",
        ".cc",
        ".h",
        ".hpp",
        ".rs",
        ".go",
        ".java",
        ".js",
        ".ts",
        ".sh",
    }
)
SUPPORTED_EXTENSIONS = (
    TEXT_EXTENSIONS
    | CODE_EXTENSIONS
    | frozenset({".ipynb", ".pdf", ".html", ".htm", ".csv", ".tsv"})
)


@dataclass(frozen=True)
class Segment:
    """A piece of a file's text with where it starts.

    ``line`` is the 1-based line of the segment's first character within its page, cell or
    file. ``page`` (PDF, 1-based) and ``cell`` (notebook, 1-based) are None elsewhere.
    """

    text: str
    line: int = 1
    page: int | None = None
    cell: int | None = None


@dataclass
class ReadResult:
    """What a reader got out of a file: segments, a status and a plain-language reason."""

    segments: list[Segment] = field(default_factory=list)
    status: str = STATUS_INDEXED
    reason: str = ""

    @classmethod
    def skipped(cls, reason: str) -> ReadResult:
        return cls([], STATUS_SKIPPED, reason)


def is_supported(path: str | os.PathLike[str]) -> bool:
    """True when the file's extension is one we know how to read."""
    return os.path.splitext(os.fspath(path))[1].lower() in SUPPORTED_EXTENSIONS


def read_file(path: str | os.PathLike[str], max_bytes: int = MAX_TEXT_BYTES) -> ReadResult:
    """Read one file into segments. Never raises for bad content or I/O errors."""
    path = Path(path)
    ext = path.suffix.lower()
    try:
        st = os.stat(path)
    except OSError as exc:
        return ReadResult.skipped(_os_reason(exc))
    if not stat.S_ISREG(st.st_mode):
        # FIFOs and devices would block or never end.
        return ReadResult.skipped("not a regular file (a pipe, socket or device)")
    reader = _READERS.get(ext, _read_plain)
    try:
        return reader(path, max_bytes)
    except OSError as exc:
        return ReadResult.skipped(_os_reason(exc))
    except MemoryError:
        return ReadResult.skipped("file too large to read into memory")


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "cannot be read: permission denied (check the file's permissions)"
    if isinstance(exc, FileNotFoundError):
        return "file disappeared or is a broken link"
    return f"cannot be read: {exc.strerror or exc}"


# --- text ---------------------------------------------------------------------------


def _read_bytes(path: Path, max_bytes: int) -> tuple[bytes, bool]:
    """Read up to ``max_bytes``; the bool says whether the file had more."""
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        return data[:max_bytes], True
    return data, False


def decode_text(data: bytes) -> tuple[str | None, str]:
    """Decode bytes as text: UTF-8, else UTF-8 with replacement, else Latin-1.

    Returns ``(text, note)``; text is None when the bytes look binary or undecodable, with
    the note saying why.
    """
    if b"\x00" in data[:SNIFF_BYTES]:
        return None, "binary file (contains NUL bytes)"
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    if bad <= max(4, len(data) // 1000):
        return text, f"not valid UTF-8: {bad} undecodable byte(s) replaced"
    text = data.decode("latin-1")
    controls = sum(1 for ch in text[:SNIFF_BYTES] if _is_control(ch))
    if controls > len(text[:SNIFF_BYTES]) * 0.05:
        return None, "undecodable text (neither UTF-8 nor Latin-1)"
    return text, "not UTF-8: read as Latin-1"


def _is_control(ch: str) -> bool:
    o = ord(ch)
    return (o < 32 and ch not in "\t\n\r\f") or 0x7F <= o <= 0x9F


def _text_result(text: str, note: str, capped: bool, max_bytes: int) -> ReadResult:
    status = STATUS_INDEXED
    if capped:
        status = STATUS_CAPPED
        cap_note = (
            f"larger than {max_bytes // (1024 * 1024) or max_bytes} "
            + ("MB" if max_bytes >= 1024 * 1024 else "bytes")
            + "; only the beginning was indexed"
        )
        note = f"{note}; {cap_note}" if note else cap_note
    return ReadResult([Segment(text)] if text.strip() else [], status, note)


def _read_plain(path: Path, max_bytes: int) -> ReadResult:
    data, capped = _read_bytes(path, max_bytes)
    text, note = decode_text(data)
    if text is None:
        return ReadResult.skipped(note)
    if capped:
        # Do not end on half a line.
        cut = text.rfind("\n")
        if cut > 0:
            text = text[:cut]
    return _text_result(text, note, capped, max_bytes)


# --- notebooks ----------------------------------------------------------------------


def _read_notebook(path: Path, max_bytes: int) -> ReadResult:
    if os.stat(path).st_size > MAX_NOTEBOOK_BYTES:
        return ReadResult.skipped(
            f"notebook larger than {MAX_NOTEBOOK_BYTES // (1024 * 1024)} MB "
            "(clear its outputs to index it)"
        )
    data, _ = _read_bytes(path, MAX_NOTEBOOK_BYTES)
    # Budgeted by the JSON values it would make, before parsing (64 MB of "{}," is ~1.4 GB
    # of Python objects): the same budget as a notebook opened for its figures.
    from kanoa_desktop.core.inputs.notebook import MAX_NOTEBOOK_ITEMS

    items = json_items(data, exact_above=MAX_NOTEBOOK_ITEMS)
    if items > MAX_NOTEBOOK_ITEMS:
        return ReadResult.skipped(
            f"notebook of about {items:,} JSON values, more than {MAX_NOTEBOOK_ITEMS:,} "
            "(clear its outputs to index it)"
        )
    text, note = decode_text(data)
    if text is None:
        return ReadResult.skipped(note)
    try:
        nb = json.loads(text)
        cells = nb["cells"] if isinstance(nb, dict) else None
        if not isinstance(cells, list):
            raise ValueError("no cells")
    except (ValueError, KeyError, TypeError):
        return ReadResult.skipped("not a valid Jupyter notebook (JSON without cells)")
    segments: list[Segment] = []
    total = 0
    capped = False
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("markdown", "code", "raw"):
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if not isinstance(source, str) or not source.strip():
            continue
        if total + len(source) > max_bytes:
            capped = True
            break
        total += len(source)
        segments.append(Segment(source, line=1, cell=number))
    result = ReadResult(segments, STATUS_INDEXED, note)
    if capped:
        result.status = STATUS_CAPPED
        result.reason = "notebook text over the size cap; later cells were not indexed"
    return result


# --- HTML ---------------------------------------------------------------------------

_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "head"})
_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "section",
        "article",
        "pre",
        "blockquote",
        "table",
        "ul",
        "ol",
        "dd",
        "dt",
        "title",
        "header",
        "footer",
    }
)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP_TAGS:
            self._skip += 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag.startswith("h") or tag == "p" else "\n")
            if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
                self.parts.append("#" * int(tag[1]) + " ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP_TAGS and self._skip:
            self._skip -= 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag.startswith("h") or tag == "p" else "\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML document, scripts and styles removed, blocks on new lines."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    body = "".join(parser.parts)
    lines = [" ".join(line.split()) for line in body.splitlines()]
    text = "\n".join(lines)
    # Collapse runs of blank lines left by nested blocks.
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    title = " ".join(parser.title.split())
    return (f"# {title}\n\n" if title else "") + text.strip()


def _read_html(path: Path, max_bytes: int) -> ReadResult:
    data, capped = _read_bytes(path, max_bytes)
    text, note = decode_text(data)
    if text is None:
        return ReadResult.skipped(note)
    return _text_result(html_to_text(text), note, capped, max_bytes)


# --- CSV ----------------------------------------------------------------------------

CSV_SAMPLE_ROWS = 5


def _read_csv(path: Path, max_bytes: int) -> ReadResult:
    """Header, size and a few rows: enough to find the table, never a full dump.

    Encoding and delimiter come from the same sniffer the table loader uses, so a UTF-16
    or semicolon-separated file that the table view reads is indexed, not called binary.
    """
    data, capped = _read_bytes(path, max_bytes)
    dialect = delimited.sniff(
        data[: delimited.SAMPLE_BYTES],
        suffix=path.suffix.lower(),
        complete=not capped and len(data) <= delimited.SAMPLE_BYTES,
    )
    if dialect.binary:
        return ReadResult.skipped("binary file (contains NUL bytes)")
    text = data.decode(dialect.encoding.codec, errors="replace").lstrip("\ufeff")
    note = "" if dialect.encoding.codec.startswith("utf-8") else f"read as {dialect.encoding.label}"
    delimiter = dialect.delimiter
    rows = csv.reader(io.StringIO(text[:65536]), delimiter=delimiter)
    try:
        header = next(rows, [])
        sample = [r for _, r in zip(range(CSV_SAMPLE_ROWS), rows, strict=False)]
    except csv.Error:
        return ReadResult.skipped("not a readable CSV table")
    n_rows = max(text.count("\n") - 1 + (0 if text.endswith("\n") else 1), 0)
    size_note = f"at least {n_rows}" if capped else str(n_rows)
    lines = [
        f"Table {path.name}: {size_note} data rows, {len(header)} columns.",
        "Columns: " + ", ".join(h.strip() for h in header),
    ]
    if sample:
        lines.append("First rows:")
        lines += [delimiter.join(r) for r in sample]
    return ReadResult([Segment("\n".join(lines))], STATUS_INDEXED, note)


# --- PDF ----------------------------------------------------------------------------


def _read_pdf(path: Path, max_bytes: int) -> ReadResult:
    import pypdfium2 as pdfium  # imported lazily: only PDFs pay for it

    # PDFium is not thread-safe, not even across documents: share the PDF picker's lock,
    # taken per page so that indexing a long PDF does not stall the picker.
    from kanoa_desktop.core.inputs.pdf import PDFIUM_LOCK

    try:
        with PDFIUM_LOCK:
            doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium.raw.FPDF_ERR_PASSWORD:
            return ReadResult.skipped(
                "encrypted PDF (needs a password): save an unprotected copy to index it"
            )
        if getattr(exc, "err_code", None) == pdfium.raw.FPDF_ERR_SECURITY:
            return ReadResult.skipped("PDF uses an unsupported security handler")
        return ReadResult.skipped("broken or unreadable PDF (" + str(exc).strip() + ")")
    segments: list[Segment] = []
    status, reason = STATUS_INDEXED, ""
    total = 0
    try:
        with PDFIUM_LOCK:
            n_pages = len(doc)
        for index in range(n_pages):
            if index >= MAX_PDF_PAGES or total > max_bytes:
                status = STATUS_CAPPED
                reason = f"only the first {index} of {n_pages} pages were indexed"
                break
            try:
                with PDFIUM_LOCK:
                    page = doc[index]
                    textpage = page.get_textpage()
                    text = textpage.get_text_bounded()
                    textpage.close()
                    page.close()
            except pdfium.PdfiumError:
                reason = "some pages could not be read"
                continue
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            total += len(text)
            if text.strip():
                segments.append(Segment(text, line=1, page=index + 1))
    finally:
        with PDFIUM_LOCK:
            doc.close()
    if not segments and status == STATUS_INDEXED and not reason:
        reason = "no text layer (a scanned PDF?)"
    return ReadResult(segments, status, reason)


_READERS: dict[str, Callable[[Path, int], ReadResult]] = {
    ".ipynb": _read_notebook,
    ".html": _read_html,
    ".htm": _read_html,
    ".csv": _read_csv,
    ".tsv": _read_csv,
    ".pdf": _read_pdf,
}
