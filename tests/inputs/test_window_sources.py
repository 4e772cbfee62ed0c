"""The window with tables, PDFs and notebooks from where they live: the sheet chooser loads
another sheet, skipped rows raise the banner (dates alone do not), a PDF opens its picker."""

from __future__ import annotations

import openpyxl

from tests.inputs.test_pdf import _paper
from tests.servers.llama import free_port
from tests.ui.conftest import make_window, qloop, run, wait_until  # noqa: F401 - fixtures


def _book(path):
    wb = openpyxl.Workbook()
    wb.active.title = "Empty"
    for title, header in (("Growth", ["day", "od"]), ("Temps", ["day", "temp"])):
        ws = wb.create_sheet(title)
        ws.append(header)
        ws.append([1, 0.5])
    wb.save(path)
    return path


def test_window_sheet_chooser_banner_and_pdf_picker(make_window, run, tmp_path):  # noqa: F811
    w = make_window(f"http://127.0.0.1:{free_port()}/v1", "m")
    book = _book(tmp_path / "book.xlsx")
    dated = tmp_path / "dated.csv"
    dated.write_text("when,v\n2024-01-01,1.0\n2024-01-02,2.0\n")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n")

    async def scenario():
        w.open_paths([book])
        await wait_until(lambda: w.outbox.table is not None, message="workbook loaded")
        assert w.outbox.table.sheet == "Growth"  # the first sheet with data
        combo = w.inputs.table.sheet_combo
        assert [combo.itemText(i) for i in range(combo.count())] == ["Empty", "Growth", "Temps"]
        combo.activated.emit(2)
        await wait_until(lambda: w.outbox.table.sheet == "Temps", message="second sheet loaded")
        # The table shows as soon as it is read; its summary follows from the worker.
        await wait_until(lambda: "temp" in w.outbox.table_summary, message="its summary")

        w.open_paths([dated])
        await wait_until(lambda: w.outbox.table.name == "dated.csv", message="dated csv")
        assert not w.banner.isVisible()  # "read as dates" is a note, not a warning
        w.open_paths([ragged])
        await wait_until(lambda: w.banner.isVisible(), message="banner for skipped rows")
        assert "read with warnings" in w.banner.title.text()
        assert "1 row(s) with more fields" in w.banner.message.text()

        before = w.inputs.figures.count()
        w.open_paths([_paper(tmp_path / "paper.pdf")])
        await wait_until(lambda: getattr(w, "picker", None) is not None, message="pdf picker")
        w.picker.take_page_button.click()
        await wait_until(lambda: w.inputs.figures.count() == before + 1, message="page taken")
        w.picker.close()

    run(scenario())
