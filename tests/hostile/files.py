"""Hostile files, written by the tests into their temp folders: each small on disk, each
far larger once read the naive way (a dense grid, inflated XML, millions of JSON objects,
huge strings, thousands of pages).

Every writer streams what it writes, so the test process itself stays small.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "{sst}</Types>"
)
_SST_TYPE = (
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>{sst}</Relationships>'
)
_WORKBOOK_SST_REL = (
    '<Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    'Target="sharedStrings.xml"/>'
)
_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<dimension ref="{ref}"/><sheetData>'
)
_SHEET_TAIL = "</sheetData></worksheet>"


def _workbook(path: Path, sheet_rows, *, shared_strings=None, ref: str = "A1") -> Path:
    """A minimal .xlsx: one sheet whose ``<row>`` elements come from ``sheet_rows`` (an
    iterable of XML text pieces) and, optionally, a shared-string table streamed from
    ``shared_strings`` (pieces of ``<si>`` elements)."""
    sst = shared_strings is not None
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES.format(sst=_SST_TYPE if sst else ""))
        zf.writestr("_rels/.rels", _RELS)
        zf.writestr("xl/workbook.xml", _WORKBOOK)
        zf.writestr(
            "xl/_rels/workbook.xml.rels", _WORKBOOK_RELS.format(sst=_WORKBOOK_SST_REL if sst else "")
        )
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as out:
            out.write(_SHEET_HEAD.format(ref=ref).encode())
            for piece in sheet_rows:
                out.write(piece.encode())
            out.write(_SHEET_TAIL.encode())
        if sst:
            with zf.open("xl/sharedStrings.xml", "w", force_zip64=True) as out:
                out.write(
                    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                    b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                )
                for piece in shared_strings:
                    out.write(piece.encode())
                out.write(b"</sst>")
    return path


def sparse_corner_xlsx(path: Path) -> Path:
    """About 1 KB: a header in A1 and one value in the last cell of the sheet (XFD1048576).
    Read as a dense grid it is 16,384 columns × 1,048,576 rows (17 billion cells)."""
    rows = [
        '<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c></row>',
        '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>',
    ]
    return _workbook(path, rows, ref="A1:XFD1048576")


def diagonal_xlsx(path: Path, n: int = 3000) -> Path:
    """``n`` numbers on the diagonal: ``n`` values, an ``n`` × ``n`` grid once dense."""
    from openpyxl.utils import get_column_letter

    def rows():
        for i in range(1, n + 1):
            yield f'<row r="{i}"><c r="{get_column_letter(i)}{i}"><v>{i}</v></c></row>'

    return _workbook(path, rows(), ref=f"A1:{get_column_letter(n)}{n}")


def shared_strings_bomb_xlsx(path: Path, inflated_bytes: int = 480_000_000) -> Path:
    """A few hundred KB: a shared-string table of two-character strings that inflates to
    ``inflated_bytes`` of XML (tens of millions of strings; gigabytes as Python objects)."""
    si = "<si><t>ab</t></si>"
    piece = si * (1 << 16)
    count = inflated_bytes // len(piece)

    def strings():
        for _ in range(count):
            yield piece

    rows = ['<row r="1"><c r="A1" t="s"><v>0</v></c></row>']
    return _workbook(path, rows, shared_strings=strings())


def many_cells_xlsx(path: Path, rows: int, cols: int) -> Path:
    """A dense numeric sheet of ``rows`` × ``cols`` cells (a header row first)."""
    from openpyxl.utils import get_column_letter

    letters = [get_column_letter(j + 1) for j in range(cols)]

    def body():
        head = "".join(
            f'<c r="{c}1" t="inlineStr"><is><t>c{j}</t></is></c>' for j, c in enumerate(letters)
        )
        yield f'<row r="1">{head}</row>'
        for i in range(2, rows + 2):
            yield f'<row r="{i}">' + "".join(
                f'<c r="{c}{i}"><v>{i}.5</v></c>' for c in letters
            ) + "</row>"

    return _workbook(path, body(), ref=f"A1:{letters[-1]}{rows + 1}")


def understated_zip(path: Path, member: str, claimed: int) -> Path:
    """Rewrite the central directory of ``path`` so that ``member`` claims ``claimed``
    uncompressed bytes (a zip's sizes are the writer's word, not a fact)."""
    import struct

    data = bytearray(path.read_bytes())
    name = member.encode()
    at = 0
    while True:
        at = data.find(b"PK\x01\x02", at)
        if at == -1:
            raise ValueError(f"{member} is not in {path}")
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46 : at + 46 + name_len]) == name:
            extra_len = struct.unpack_from("<H", data, at + 30)[0]
            size = struct.unpack_from("<I", data, at + 24)[0]
            if size == 0xFFFFFFFF:  # zip64: the real size is in the extra field
                extra = at + 46 + name_len
                end = extra + extra_len
                while extra < end:
                    tag, length = struct.unpack_from("<HH", data, extra)
                    if tag == 1:
                        struct.pack_into("<Q", data, extra + 4, claimed)
                        break
                    extra += 4 + length
            else:
                struct.pack_into("<I", data, at + 24, claimed)
            break
        at += 4
    path.write_bytes(bytes(data))
    return path


def empty_objects_notebook(path: Path, size_bytes: int = 110_000_000) -> Path:
    """A notebook of ``size_bytes`` holding nothing but empty JSON objects (3 bytes each,
    ~64 bytes each once parsed: 110 MB becomes gigabytes)."""
    chunk = b"{}," * (1 << 20)
    with path.open("wb") as out:
        out.write(b'{"nbformat": 4, "metadata": {}, "cells": [{"outputs": [')
        for _ in range(size_bytes // len(chunk)):
            out.write(chunk)
        out.write(b'{}]}]}')
    return path


def short_strings_notebook(path: Path, size_bytes: int = 60_000_000) -> Path:
    """A notebook of short distinct-looking strings (a cell's source as millions of lines)."""
    chunk = b'"ab",' * (1 << 18)
    with path.open("wb") as out:
        out.write(b'{"nbformat": 4, "metadata": {}, "cells": [{"cell_type": "code", "source": [')
        for _ in range(size_bytes // len(chunk)):
            out.write(chunk)
        out.write(b'"x"], "outputs": []}]}')
    return path


def huge_strings_parquet(path: Path, rows: int = 100, string_bytes: int = 10_000_000) -> Path:
    """``rows`` strings of ``string_bytes`` each (1 GB once read), compressed to a few MB.
    Written five rows per row group, so writing it stays small too."""
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import fastparquet

    big = "a" * string_bytes  # one object, referenced by every row
    frame = pd.DataFrame({"id": range(rows), "text": [big] * rows})
    fastparquet.write(str(path), frame, row_group_offsets=5, compression="ZSTD")
    return path


def corrupt_footer_parquet(path: Path) -> Path:
    """A Parquet file whose footer is damaged (its length points into garbage)."""
    import struct

    body = b"PAR1" + bytes(range(256)) * 8
    footer = b"\x15\x04\x15\x80\x01" + b"\xff" * 300
    path.write_bytes(body + footer + struct.pack("<I", len(footer)) + b"PAR1")
    return path


def many_pages_pdf(path: Path, pages: int = 50_000) -> Path:
    """A PDF of ``pages`` blank pages (every page shares one empty content stream)."""
    kids = " ".join(f"{4 + i} 0 R" for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Count {pages} /Kids [{kids}] >>".encode(),
        b"<< /Length 0 >>\nstream\n\nendstream",
    ]
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 3 0 R >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    for i in range(pages):
        offsets.append(len(out))
        out += f"{4 + i} 0 obj\n".encode() + page + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(offsets) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(offsets) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def thin_page_pdf(path: Path) -> Path:
    """One page 200 pt wide and 1 pt tall (no rectangle on it can be rendered)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count 1 /Kids [3 0 R] >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 1] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(offsets) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(offsets) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def prometheus_vector(n: int) -> bytes:
    """A Prometheus instant-query answer with ``n`` samples (~60 bytes each)."""
    head = b'{"status":"success","data":{"resultType":"vector","result":['
    one = b'{"metric":{"instance":"h:1","kanoa_figure":"up"},"value":[1,"1"]}'
    return head + b",".join([one] * n) + b"]}}"


__all__ = [
    "corrupt_footer_parquet",
    "diagonal_xlsx",
    "empty_objects_notebook",
    "huge_strings_parquet",
    "many_cells_xlsx",
    "many_pages_pdf",
    "prometheus_vector",
    "shared_strings_bomb_xlsx",
    "short_strings_notebook",
    "sparse_corner_xlsx",
    "thin_page_pdf",
    "understated_zip",
]
