"""The one input plan (core/inputs/plan.py): what each file kind becomes for a question and
for a batch, page ranges checked against the real page count before anything is rendered,
the images-per-question cap, one table per question, and one list of warnings."""

from __future__ import annotations

import base64
import io
import json

import openpyxl
import pytest
from fpdf import FPDF
from PIL import Image

from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.inputs import pdf as pdf_module
from kanoa_desktop.core.inputs.plan import (
    MAX_IMAGES_PER_QUESTION,
    PlanError,
    PlanOptions,
    load,
    plan,
    take,
)


def _pdf(path, colours):
    pdf = FPDF(unit="pt", format=(300, 200))
    for colour in colours:
        pdf.add_page()
        pdf.set_fill_color(*colour)
        pdf.rect(0, 0, 300, 200, style="F")
    pdf.output(str(path))
    return path


def _png(colour="red", size=(30, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def _notebook(path, sources):
    png = base64.b64encode(_png()).decode()
    cells = [
        {
            "cell_type": "code",
            "source": src,
            "outputs": [{"output_type": "display_data", "data": {"image/png": png}}],
        }
        for src in sources
    ]
    path.write_text(json.dumps({"nbformat": 4, "metadata": {}, "cells": cells}))
    return path


def _workbook(path):
    wb = openpyxl.Workbook()
    wb.active.title = "Empty"
    for title, header in (("Growth", ["day", "od"]), ("Temps", ["day", "temp"])):
        ws = wb.create_sheet(title)
        ws.append(header)
        ws.append([1, 0.5])
    wb.save(path)
    return path


def _centre(fig) -> tuple[int, int, int]:
    im = Image.open(io.BytesIO(fig.data)).convert("RGB")
    return im.getpixel((im.width // 2, im.height // 2))


def test_a_question_takes_the_pages_asked_and_refuses_a_long_pdf_without_pages(tmp_path):
    two = _pdf(tmp_path / "two.pdf", [(255, 0, 0), (0, 0, 255)])
    with pytest.raises(PlanError) as err:
        take([two], PlanOptions())
    assert err.value.message == "two.pdf has 2 pages; say which to send."
    assert "--pages" in err.value.hint
    (fig,) = take([two], PlanOptions(pages="2", long_side=150)).figures
    assert fig.name == "two.pdf, page 2" and fig.sent_size == (150, 100)
    assert _centre(fig) == (0, 0, 255)
    assert [f.name for f in take([two], PlanOptions(pages="all")).figures] == [
        "two.pdf, page 1",
        "two.pdf, page 2",
    ]
    one = _pdf(tmp_path / "one.pdf", [(0, 255, 0)])
    (fig,) = take([one], PlanOptions()).figures  # a one-page PDF needs no pages
    assert _centre(fig) == (0, 255, 0)


@pytest.mark.parametrize(
    ("pages", "message"),
    [
        ("3", "two.pdf has 2 pages; there is no page 3."),
        ("1-100000000", "two.pdf has 2 pages; there is no page 100,000,000."),
        ("x", "Pages 'x' are not a list of page numbers."),
        ("0", "Pages '0': pages count from 1, low to high."),
        ("2-1", "Pages '2-1': pages count from 1, low to high."),
    ],
)
def test_pages_are_checked_against_the_real_page_count_before_rendering(
    tmp_path, monkeypatch, pages, message
):
    two = _pdf(tmp_path / "two.pdf", [(255, 0, 0), (0, 0, 255)])
    rendered = []
    monkeypatch.setattr(
        pdf_module.PdfDocument, "_render", lambda *a: rendered.append(a)
    )  # a spy: nothing may be rendered for a bad range
    with pytest.raises(PlanError) as err:
        take([two], PlanOptions(pages=pages))
    assert err.value.message == message
    assert not rendered


def test_a_pdf_longer_than_the_pages_offered_says_its_real_page_count(tmp_path, monkeypatch):
    monkeypatch.setattr(pdf_module, "MAX_PAGES", 3)  # a 5,000-page file is slow to make
    five = _pdf(tmp_path / "five.pdf", [(9, 9, 9)] * 5)
    with pytest.raises(PlanError) as err:
        take([five], PlanOptions(pages="4"))
    assert err.value.message == "five.pdf has 5 pages; only the first 3 can be used."
    batch = plan([five], PlanOptions(each=True))
    assert [i.label for i in batch.items] == [f"five.pdf, page {n}" for n in (1, 2, 3)]
    assert batch.warnings == ["five.pdf: Only the first 3 of 5 pages are offered."]


def test_images_per_question_are_capped_by_the_profile_before_rendering(tmp_path, monkeypatch):
    many = _pdf(tmp_path / "many.pdf", [(200, 0, 0)] * 3)
    options = PlanOptions.for_profile(Profile(max_images=2), pages="all")
    monkeypatch.setattr(pdf_module.PdfDocument, "_render", lambda *a: pytest.fail("rendered"))
    with pytest.raises(PlanError) as err:
        take([many], options)
    assert err.value.message == "These inputs make 3 images; this profile's server takes at most 2."
    folder = tmp_path / "figs"
    folder.mkdir()
    for i in range(MAX_IMAGES_PER_QUESTION + 1):
        (folder / f"f{i:02d}.png").write_bytes(_png())
    with pytest.raises(PlanError) as err:
        plan([folder], PlanOptions())
    assert f"make {MAX_IMAGES_PER_QUESTION + 1} images; one question takes at most" in str(
        err.value
    )
    assert "kanoa-desktop batch" in err.value.hint
    assert len(plan([folder], PlanOptions(each=True)).items) == MAX_IMAGES_PER_QUESTION + 1


def test_a_notebook_sends_every_figure_with_its_cells_code_and_a_batch_asks_each(tmp_path):
    nb = _notebook(tmp_path / "n.ipynb", ["plot(a)", "plot(b)"])
    taken = take([nb], PlanOptions())
    assert len(taken.figures) == 2
    # Each figure's cell, in order, as the window's picker adds them one by one.
    assert taken.context.index("cell 1") < taken.context.index("plot(a)")
    assert taken.context.index("plot(a)") < taken.context.index("cell 2") < taken.context.index(
        "plot(b)"
    )
    items = plan([nb], PlanOptions(each=True)).items
    assert [i.label for i in items] == ["n.ipynb, figure 1 (cell 1)", "n.ipynb, figure 2 (cell 2)"]
    assert all(i.loaded is None for i in items)  # a batch loads each item when it asks it
    one = load(items[1:], PlanOptions())
    assert "plot(b)" in one.context and "plot(a)" not in one.context
    assert one.figures[0].sha256 == taken.figures[1].sha256


def test_a_workbook_is_one_sheet_for_a_question_and_each_sheet_for_a_batch(tmp_path):
    book = _workbook(tmp_path / "book.xlsx")
    taken = take([book], PlanOptions())
    assert taken.table.sheet == "Growth" and "od" in taken.table_summary
    assert taken.warnings == [
        "book.xlsx: sheet 'Growth' is sent; the workbook also has 'Empty', 'Temps' "
        "(choose one with --sheet)."
    ]
    chosen = take([book], PlanOptions(sheet="Temps"))
    assert chosen.table.sheet == "Temps" and not chosen.warnings
    items = plan([book], PlanOptions(each=True)).items
    assert [(i.label, i.sheet) for i in items] == [
        ("book.xlsx [Growth]", "Growth"),
        ("book.xlsx [Temps]", "Temps"),
    ]
    assert load(items[1:], PlanOptions()).table_summary == chosen.table_summary


def test_a_folder_is_its_files_by_name_and_a_question_takes_one_table(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "b.png").write_bytes(_png("blue"))
    (folder / "a.csv").write_text("t,v\n0,1\n1,2\n")
    (folder / ".hidden.png").write_bytes(_png())
    (folder / "notes.md").write_text("left out")
    (folder / "sub").mkdir()
    taken = take([folder], PlanOptions())
    assert [f.name for f in taken.figures] == ["b.png"] and taken.table.name == "a.csv"
    (folder / "c.csv").write_text("x\n1\n")
    with pytest.raises(PlanError) as err:
        take([folder], PlanOptions())
    assert "One table per question: a.csv and c.csv" in err.value.message


def test_a_bad_file_stops_a_question_but_is_a_failing_item_in_a_batch(tmp_path):
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(Exception) as err:
        take([bad], PlanOptions())
    assert "broken.pdf" in str(err.value)
    (item,) = plan([bad], PlanOptions(each=True)).items
    assert item.kind == "file" and "broken.pdf is damaged" in item.problem
    with pytest.raises(PlanError):
        load([item], PlanOptions())
