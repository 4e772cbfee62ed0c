"""Mixed input folders for the batch tests: a CSV, PNGs, a notebook, a PDF and a corrupt file."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from fpdf import FPDF
from PIL import Image

from tests.ui.conftest import qloop, run  # noqa: F401  (the batch dialog's tests)


def png_bytes(size=(320, 200), colour=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def write_notebook(path: Path, colours) -> Path:
    cells = [
        {
            "cell_type": "code",
            "execution_count": i + 1,
            "metadata": {},
            "source": [f"plt.plot(run_{i})"],
            "outputs": [
                {
                    "output_type": "display_data",
                    "metadata": {},
                    "data": {
                        "image/png": base64.b64encode(png_bytes((120, 90), c)).decode(),
                        "text/plain": ["<Figure>"],
                    },
                }
            ],
        }
        for i, c in enumerate(colours)
    ]
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    path.write_text(json.dumps(nb))
    return path


def write_pdf(path: Path, pages: int) -> Path:
    pdf = FPDF(unit="pt", format=(400, 300))
    for n in range(pages):
        pdf.add_page()
        pdf.set_fill_color(30 * n, 90, 160)
        pdf.rect(50, 50, 200, 120, style="F")
    pdf.output(str(path))
    return path


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """9 items: 4 PNGs, a CSV, a notebook with 2 figures, a 1-page PDF, 1 corrupt PNG."""
    folder = tmp_path / "experiment"
    folder.mkdir()
    for i in range(4):
        (folder / f"plot{i}.png").write_bytes(png_bytes(colour=(40 * i, 120, 80)))
    (folder / "growth.csv").write_text("time,od600\n0,0.05\n1,0.11\n2,0.24\n3,0.51\n")
    write_notebook(folder / "analysis.ipynb", [(0, 0, 255), (0, 200, 0)])
    write_pdf(folder / "paper.pdf", 1)
    (folder / "broken.png").write_bytes(b"this is not a PNG at all, just text")
    (folder / "notes.md").write_text("not an input: left out of the batch")
    return folder


MIXED_ITEMS = 9
