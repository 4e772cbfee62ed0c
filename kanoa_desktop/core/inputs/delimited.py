"""How a delimited text table is written: encoding, delimiter and decimal separator.

The one sniffer for CSV/TSV in the app: :mod:`kanoa_desktop.core.inputs.tables` parses with
it and the knowledge base (:mod:`kanoa_desktop.core.kb.readers`) indexes with it, so a file
the table view can read is never called binary by the index. Plain standard library (no
pandas): the index imports it on its own thread without paying for pandas.

What a caller may rely on from :func:`sniff`:

- Encodings: UTF-8 (with or without BOM), UTF-16 with a BOM, UTF-16 without a BOM when every
  other byte is NUL (LE or BE), then Windows-1252, then Latin-1 (which decodes anything).
- A NUL byte in a sample that is not UTF-16 marks the file as binary.
- The delimiter is the one among comma, semicolon, tab and pipe whose field count is most
  consistent across the first 200 non-blank lines (quote-aware); ``.tsv``/``.tab`` prefer tab.
- A comma decimal separator is reported only when comma is not the delimiter and comma
  decimals outnumber dot decimals in the sample.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import Counter
from dataclasses import dataclass, field

SAMPLE_BYTES = 64 * 1024
SAMPLE_LINES = 200
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
TAB_SUFFIXES = (".tsv", ".tab")


@dataclass(frozen=True)
class Encoding:
    """``codec`` is a Python/pandas codec name; ``label`` says it in words."""

    codec: str
    label: str


@dataclass(frozen=True)
class Dialect:
    """How a sample of delimited text is written.

    ``binary`` is True when the sample is not text at all (then the other fields are
    defaults). ``lines`` are the sample's first non-blank lines (at most 200, decoded, the
    partial last line of an incomplete sample dropped); ``rows`` are those lines split into
    fields with ``delimiter``.
    """

    encoding: Encoding
    delimiter: str = ","
    decimal: str = "."
    binary: bool = False
    lines: list[str] = field(default_factory=list, repr=False)
    rows: list[list[str]] = field(default_factory=list, repr=False)

    @property
    def delimiter_name(self) -> str:
        return DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))


UTF8 = Encoding("utf-8", "UTF-8")
CP1252 = Encoding("cp1252", "Windows-1252 (Latin-1)")
LATIN1 = Encoding("latin-1", "Latin-1")


def _utf16_without_bom(sample: bytes) -> Encoding | None:
    """UTF-16 text of ASCII-range characters has a NUL in every other byte."""
    head = sample[:4096]
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) >= 0.9 * len(odd) and even.count(0) <= 0.1 * len(even):
        return Encoding("utf-16-le", "UTF-16")
    if even.count(0) >= 0.9 * len(even) and odd.count(0) <= 0.1 * len(odd):
        return Encoding("utf-16-be", "UTF-16")
    return None


def detect_encoding(sample: bytes, *, complete: bool) -> Encoding | None:
    """The encoding of a text sample, or None when it is binary.

    ``complete`` says the sample is the whole file (else it may end mid-character).
    """
    if sample.startswith(codecs.BOM_UTF8):
        return Encoding("utf-8-sig", "UTF-8 with BOM")
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Encoding("utf-16", "UTF-16")
    if b"\x00" in sample:
        return _utf16_without_bom(sample)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
        return UTF8
    except UnicodeDecodeError:
        pass
    try:
        sample.decode("cp1252")
        return CP1252
    except UnicodeDecodeError:
        return LATIN1


def decode_sample(sample: bytes, encoding: Encoding, *, complete: bool) -> str:
    """Decode a sample; an incomplete one loses its partial last line."""
    text = sample.decode(encoding.codec, errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    if not complete and "\n" in text:
        text = text.rsplit("\n", 1)[0]
    return text


def split_fields(lines: list[str], delimiter: str) -> list[list[str]]:
    """Split lines into fields, honouring quotes (falls back to a plain split)."""
    try:
        return list(csv.reader(lines, delimiter=delimiter))
    except csv.Error:
        return [ln.split(delimiter) for ln in lines]


def detect_delimiter(lines: list[str], suffix: str = "") -> str:
    """The delimiter whose field count is most consistent across ``lines``."""
    fallback = "\t" if suffix in TAB_SUFFIXES else ","
    if not lines:
        return fallback
    best, best_score = None, (0.0, 0)
    for delim in DELIMITERS:
        counts = [len(r) for r in split_fields(lines, delim) if r]
        if not counts:
            continue
        mode, freq = Counter(counts).most_common(1)[0]
        if mode < 2:
            continue
        score = (freq / len(counts), mode)
        if score > best_score:
            best, best_score = delim, score
    if best is None:
        return fallback
    if suffix in TAB_SUFFIXES and "\t" in lines[0]:
        return "\t"
    return best


_COMMA_DECIMAL = re.compile(r"^\s*[-+]?\d{1,3}(?:\.\d{3})*,\d+\s*$|^\s*[-+]?\d+,\d+\s*$")
_DOT_DECIMAL = re.compile(r"^\s*[-+]?\d+\.\d+(?:[eE][-+]?\d+)?\s*$")


def detect_decimal(rows: list[list[str]], delimiter: str) -> str:
    """Comma when comma decimals outnumber dot decimals (never when comma delimits)."""
    if delimiter == ",":
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


def sniff(sample: bytes, *, suffix: str = "", complete: bool = False) -> Dialect:
    """Encoding, delimiter and decimal separator of a delimited-text sample.

    ``sample`` is the start of the file (64 KiB is plenty); ``complete`` says it is the
    whole file. ``suffix`` is the file's lower-case extension (".tsv" prefers tab).
    Never raises: a binary sample gives ``binary=True``, a blank one empty ``lines``.
    """
    encoding = detect_encoding(sample, complete=complete)
    if encoding is None:
        return Dialect(UTF8, binary=True)
    text = decode_sample(sample, encoding, complete=complete)
    lines = [ln for ln in text.splitlines() if ln.strip()][:SAMPLE_LINES]
    delimiter = detect_delimiter(lines, suffix)
    rows = split_fields(lines, delimiter)
    return Dialect(encoding, delimiter, detect_decimal(rows, delimiter), False, lines, rows)
