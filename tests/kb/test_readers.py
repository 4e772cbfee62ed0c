"""Every supported kind is read into text with its source span; bad files say why."""

from __future__ import annotations

import os

import pytest

from kanoa_desktop.core.kb import readers
from kanoa_desktop.core.kb.readers import read_file
from tests.kb.corpus import write_encrypted_pdf, write_every_kind, write_notebook


@pytest.fixture
def files(tmp_path):
    return write_every_kind(tmp_path / "kb")


def _text(result) -> str:
    return "\n".join(s.text for s in result.segments)


@pytest.mark.parametrize(
    "name, word",
    [
        ("notes.md", "zephyrite"),
        ("readme.txt", "quillwort"),
        ("guide.rst", "marlinspike"),
        ("paper.tex", "halocline"),
        ("refs.bib", "Thermohaline"),
        ("code/analysis.py", "gumbel"),
        ("code/model.R", "rstudioquirk"),
        ("code/solve.jl", "juliasolver"),
        ("code/script.m", "matlabsweep"),
        ("code/kern.c", "ckernel"),
        ("code/kern.cpp", "cppkernel"),
        ("code/kern.h", "headerdecl"),
        ("code/lib.rs", "rustyfn"),
        ("code/main.go", "gopherfunc"),
        ("code/Main.java", "JavaThing"),
        ("code/app.js", "jsthing"),
        ("code/app.ts", "tsthing"),
        ("code/run.sh", "shellthing"),
    ],
)
def test_text_and_code_files_are_read_whole(files, name, word):
    result = read_file(files[name])
    assert result.status == readers.STATUS_INDEXED, result.reason
    assert word in _text(result)


def test_pdf_text_is_read_per_page_with_page_numbers(files):
    result = read_file(files["report.pdf"])
    assert result.status == readers.STATUS_INDEXED
    pages = {s.page: s.text for s in result.segments}
    assert "kelpforest" in pages[1] and "abyssopelagic" in pages[2]


def test_notebook_cells_are_read_as_source_with_cell_numbers_not_json_or_outputs(files):
    result = read_file(files["analysis.ipynb"])
    cells = {s.cell: s.text for s in result.segments}
    assert "fjordwater" in cells[1] and "nbcodeword" in cells[2]
    text = _text(result)
    assert "OUTPUTSHOULDNOTBEINDEXED" not in text and '"cell_type"' not in text


def test_html_gives_visible_text_without_scripts_or_styles(files):
    text = _text(read_file(files["page.html"]))
    assert "ondograph buoy" in text and "Station list" in text
    assert "scriptsecret" not in text and "color:red" not in text and "<p>" not in text


def test_csv_gives_header_and_summary_not_a_full_dump(files):
    text = _text(read_file(files["table.csv"]))
    assert "depth_m, salinity_psu, station" in text
    assert "1000 data rows, 3 columns" in text
    assert "site999" not in text and "site500" not in text  # no full dump


def test_binary_file_is_skipped(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(b"\x00\x01\x02binary\x00" * 100)
    result = read_file(path)
    assert result.status == readers.STATUS_SKIPPED and "binary" in result.reason


def test_latin1_text_is_read_with_a_note(tmp_path):
    path = tmp_path / "old.txt"
    path.write_bytes("Le café de la mer était fermé, déjà.".encode("latin-1"))
    result = read_file(path)
    assert result.status == readers.STATUS_INDEXED
    assert "café" in _text(result) and "Latin-1" in result.reason


def test_undecodable_text_is_skipped(tmp_path):
    path = tmp_path / "garbage.md"
    path.write_bytes(bytes(range(0x80, 0xA0)) * 200 + bytes(range(1, 9)) * 200)
    result = read_file(path)
    assert result.status == readers.STATUS_SKIPPED and "undecodable" in result.reason


def test_huge_text_file_is_capped_with_a_note(tmp_path):
    path = tmp_path / "huge.txt"
    line = "surfline " * 10 + "\n"
    with open(path, "w") as fh:
        fh.write("beginningword\n")
        fh.write(line * (readers.MAX_TEXT_BYTES // len(line) + 1000))
        fh.write("endingword\n")
    result = read_file(path)
    assert result.status == readers.STATUS_CAPPED and "only the beginning" in result.reason
    text = _text(result)
    assert "beginningword" in text and "endingword" not in text
    assert len(text.encode()) <= readers.MAX_TEXT_BYTES


def test_encrypted_pdf_is_skipped_as_encrypted(tmp_path):
    import pypdfium2 as pdfium

    path = write_encrypted_pdf(tmp_path / "locked.pdf")
    # The fixture really is encrypted: with its password pdfium reads the text.
    doc = pdfium.PdfDocument(str(path), password="secret")
    assert "Confidential" in doc[0].get_textpage().get_text_bounded()
    doc.close()
    result = read_file(path)
    assert result.status == readers.STATUS_SKIPPED and "encrypted" in result.reason


def test_broken_pdf_is_skipped(tmp_path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage without xref")
    result = read_file(path)
    assert result.status == readers.STATUS_SKIPPED and "PDF" in result.reason


def test_broken_notebook_is_skipped(tmp_path):
    path = tmp_path / "bad.ipynb"
    path.write_text("{not json", encoding="utf-8")
    result = read_file(path)
    assert result.status == readers.STATUS_SKIPPED and "notebook" in result.reason


def test_notebook_skips_empty_cells_but_keeps_numbering(tmp_path):
    path = write_notebook(
        tmp_path / "n.ipynb", [("markdown", ""), ("code", "x = 'third'"), ("markdown", "")]
    )
    assert [s.cell for s in read_file(path).segments] == [2]


def test_fifo_is_skipped_without_blocking(tmp_path):
    path = tmp_path / "pipe.txt"
    os.mkfifo(path)
    result = read_file(path)
    assert result.status == readers.STATUS_SKIPPED and "regular file" in result.reason


def test_unreadable_file_is_skipped_with_permission_reason(tmp_path, monkeypatch):
    path = tmp_path / "secret.md"
    path.write_text("hidden words", encoding="utf-8")
    path.chmod(0)
    if os.geteuid() == 0:
        # Root ignores file modes, so the OS's refusal is simulated at the one boundary the
        # reader uses (open); on a normal account chmod 000 alone makes this test real.
        real_open = open

        def refusing_open(file, *args, **kwargs):
            if os.fspath(file) == os.fspath(path):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", refusing_open)
    result = read_file(path)
    assert result.status == readers.STATUS_SKIPPED and "permission denied" in result.reason
