"""load_input routes each file to its loader; extension and content must agree."""

from __future__ import annotations

import base64
import io
import json

import openpyxl
import pytest
from fpdf import FPDF
from PIL import Image

from kanoa_desktop.core.ask import interpret
from kanoa_desktop.core.inputs.figures import NotAnImageError, PreparedFigure, sniff_kind
from kanoa_desktop.core.inputs.load import input_kind, load_input
from kanoa_desktop.core.inputs.notebook import NotebookFigures
from kanoa_desktop.core.inputs.pdf import NotAPdfError, PdfDocument
from kanoa_desktop.core.inputs.tables import LoadedTable, NotATableError


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (30, 20), "red").save(buf, "PNG")
    return buf.getvalue()


def _pdf(path):
    pdf = FPDF()
    pdf.add_page()
    pdf.output(str(path))
    return path


def test_text_named_png_is_not_an_image_and_not_a_table(tmp_path):
    path = tmp_path / "plot.png"
    path.write_text("a,b\n1,2\n3,4\n")
    assert sniff_kind(path) is None
    assert input_kind(path) == "figure"
    with pytest.raises(NotAnImageError) as err:
        load_input(path)
    assert "plot.png is not an image" in err.value.message
    assert "table" not in err.value.message


def test_image_named_csv_is_not_a_table(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(_png_bytes())
    with pytest.raises(NotATableError):
        load_input(path)


def test_each_kind_gets_its_own_type(tmp_path):
    (tmp_path / "f.png").write_bytes(_png_bytes())
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    wb = openpyxl.Workbook()
    wb.active.append(["x"])
    wb.active.append([1])
    wb.save(tmp_path / "w.xlsx")
    _pdf(tmp_path / "p.pdf")
    png = base64.b64encode(_png_bytes()).decode()
    nb = {
        "nbformat": 4,
        "metadata": {},
        "cells": [
            {
                "cell_type": "code",
                "source": "plot()",
                "outputs": [{"output_type": "display_data", "data": {"image/png": png}}],
            }
        ],
    }
    (tmp_path / "n.ipynb").write_text(json.dumps(nb))
    assert isinstance(load_input(tmp_path / "f.png"), PreparedFigure)
    assert isinstance(load_input(tmp_path / "t.csv"), LoadedTable)
    assert load_input(tmp_path / "w.xlsx").kind == "excel"
    doc = load_input(tmp_path / "p.pdf")
    try:
        assert isinstance(doc, PdfDocument) and doc.page_count == 1
    finally:
        doc.close()
    notebook = load_input(tmp_path / "n.ipynb")
    assert isinstance(notebook, NotebookFigures) and notebook.figures[0].cell_source == "plot()"


def test_files_without_a_known_extension_are_routed_by_content(tmp_path):
    _pdf(tmp_path / "paper")
    (tmp_path / "table").write_text("a;b\n1;2\n")
    (tmp_path / "image").write_bytes(_png_bytes())
    assert [input_kind(tmp_path / n) for n in ("paper", "table", "image")] == [
        "pdf",
        "table",
        "figure",
    ]


def test_pdf_named_file_that_is_not_a_pdf(tmp_path):
    path = tmp_path / "paper.pdf"
    path.write_bytes(_png_bytes())
    with pytest.raises(NotAPdfError):
        load_input(path)


def test_old_import_path_is_the_same_loader():
    assert interpret.load_input is load_input and interpret.input_kind is input_kind
