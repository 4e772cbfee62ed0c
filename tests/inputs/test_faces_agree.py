"""The same files send the same request from every face (issue 22): the window, interpret,
compare and batch, on a two-page PDF, a two-figure notebook, a two-sheet workbook and a
folder, against the vLLM test server, which records what each request carried (images
compared by the hash of their bytes, table summaries and the rest of the text as sent)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re

import openpyxl
import pytest
from fpdf import FPDF
from PIL import Image

from kanoa_desktop.cli import run_cli
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import make_window, qloop, run, wait_until  # noqa: F401 - fixtures

pytestmark = pytest.mark.vllm

ASK = ["--context", "Growth run 7", "--question", "What changes?"]


def _png(colour, size=(160, 120)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def files(tmp_path):
    pdf = FPDF(unit="pt", format=(400, 300))
    for colour in ((200, 30, 30), (30, 30, 200)):
        pdf.add_page()
        pdf.set_fill_color(*colour)
        pdf.rect(40, 40, 300, 200, style="F")
    pdf.output(str(tmp_path / "paper.pdf"))
    cells = [
        {
            "cell_type": "code",
            "execution_count": n,
            "source": f"plt.plot(run_{n})",
            "outputs": [
                {
                    "output_type": "display_data",
                    "data": {"image/png": base64.b64encode(_png(c)).decode()},
                }
            ],
        }
        for n, c in ((1, "green"), (2, "orange"))
    ]
    nb = {"nbformat": 4, "metadata": {}, "cells": cells}
    (tmp_path / "analysis.ipynb").write_text(json.dumps(nb))
    wb = openpyxl.Workbook()
    wb.active.title = "Growth"
    wb.active.append(["day", "od600"])
    wb.active.append([1, 0.25])
    temps = wb.create_sheet("Temps")
    temps.append(["day", "celsius"])
    temps.append([1, 37.5])
    wb.save(tmp_path / "book.xlsx")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "plot.png").write_bytes(_png("purple"))
    (folder / "growth.csv").write_text("time,od600\n0,0.05\n1,0.11\n2,0.24\n")
    return tmp_path


def asked(server, since: int = 0) -> list[tuple[str, list[str]]]:
    """(text, image hashes) of the user message of each chat request after ``since``."""
    out = []
    chats = [r for r in server.received if r.path.endswith("/chat/completions") and r.body]
    for r in chats[since:]:
        content = r.body["messages"][-1]["content"]
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        text = "".join(p.get("text", "") for p in parts if p["type"] == "text")
        images = [
            hashlib.sha256(p["image_url"]["url"].encode()).hexdigest()[:16]
            for p in parts
            if p["type"] == "image_url"
        ]
        out.append((text, images))
    return out


def n_asked(server) -> int:
    return sum(1 for r in server.received if r.path.endswith("/chat/completions") and r.body)


def data_block(text: str) -> str:
    m = re.search(r"## Data\n\n(.*?)\n\nContext:", text, re.S)
    assert m, text
    return m.group(1)


def _profiles(server) -> None:
    store = ProfileStore()
    store.load()
    for name in ("A", "B"):
        store.add(Profile(name=name, api_base=server.api_base, max_tokens=8, temperature=0.0))
    store.set_active("A")
    assert store.save() is None


def test_interpret_compare_and_batch_send_the_same_images_and_table_text(files, capsys):
    state = files / "state.sqlite3"
    with VLLMTestServer(tokens_per_second=400, answer_tokens=4) as server:
        _profiles(server)

        def face(*argv: str, code: int = 0) -> list[tuple[str, list[str]]]:
            before = n_asked(server)
            if run_cli(list(argv)) != code:
                pytest.fail(capsys.readouterr().err)
            return asked(server, before)

        def interpret(*argv, code=0):
            return face("interpret", *argv, *ASK, "--profile", "A", "--no-history", code=code)

        def compare(*argv, code=0):
            reqs = face("compare", *argv, *ASK, "--profile", "A", "--profile", "B",
                        "--no-history", code=code)  # fmt: skip
            assert len(reqs) == 2 * (1 - code) and reqs[:1] == reqs[1:]  # each pane the same
            return reqs

        def batch(*argv):
            return face("batch", *argv, *ASK, "--profile", "A", "--state", str(state), "-j", "1")

        pdf, nb, book, folder = (files / n for n in ("paper.pdf", "analysis.ipynb", "book.xlsx",
                                                     "run"))  # fmt: skip

        # A PDF: the pages asked, the same image from each face; without --pages a question
        # is refused with the page count and a batch asks every page.
        (page2,) = interpret(str(pdf), "--pages", "2")
        assert len(page2[1]) == 1
        assert compare(str(pdf), "--pages", "2")[0] == page2
        assert batch(str(pdf), "--pages", "2") == [page2]
        assert interpret(str(pdf), code=1) == compare(str(pdf), code=1) == []
        assert capsys.readouterr().err.count("paper.pdf has 2 pages; say which to send.") == 2
        every_page = batch(str(pdf))
        assert len(every_page) == 1 and every_page[0][1] != page2[1]  # page 2 was kept

        # A notebook: every figure with its cell's code; a batch asks each figure alone.
        (both,) = interpret(str(nb))
        assert compare(str(nb))[0] == both
        assert "plt.plot(run_1)" in both[0] and "plt.plot(run_2)" in both[0]
        each = batch(str(nb))
        assert [images for _, images in each] == [[h] for h in both[1]]
        assert "plt.plot(run_1)" in each[0][0] and "plt.plot(run_2)" not in each[0][0]

        # A two-sheet workbook: one sheet for a question (the first, with a warning), each
        # sheet for a batch, and --sheet the same sheet from every face.
        (temps,) = interpret(str(book), "--sheet", "Temps")
        assert "celsius" in temps[0] and compare(str(book), "--sheet", "Temps")[0] == temps
        assert batch(str(book), "--sheet", "Temps") == [temps]
        (growth,) = interpret(str(book))
        assert "sheet 'Growth' is sent; the workbook also has 'Temps'" in capsys.readouterr().err
        sheets = batch(str(book))
        assert sheets == [growth]  # Temps was kept from the run above

        # A folder: its figure and its table in one question; a batch asks each file.
        (together,) = interpret(str(folder))
        assert compare(str(folder))[0] == together
        files_alone = batch(str(folder))
    assert len(together[1]) == 1 and "od600" in together[0]
    table_alone = next(t for t, images in files_alone if not images)
    figure_alone = next(images for _, images in files_alone if images)
    assert data_block(table_alone) == data_block(together[0])
    assert figure_alone == together[1]


def test_the_window_sends_what_interpret_sends(make_window, run, files, capsys):  # noqa: F811
    pdf, nb, book, folder = (files / n for n in ("paper.pdf", "analysis.ipynb", "book.xlsx",
                                                 "run"))  # fmt: skip
    with VLLMTestServer(tokens_per_second=400, answer_tokens=4) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b", max_tokens=8)

        async def interpret(*argv: str):
            before = n_asked(server)
            argv = ("interpret", *argv, *ASK, "--no-history")
            assert await asyncio.to_thread(run_cli, argv) == 0, capsys.readouterr().err
            return asked(server, before)

        async def window_asks():
            before = n_asked(server)
            w.inputs.question.setPlainText("What changes?")
            w.interpret()
            await wait_until(lambda: n_asked(server) > before, message="asked")
            await wait_until(lambda: not w.streaming, 30, "answered")
            found = asked(server, before)
            w.new_conversation()
            w.inputs.context.setPlainText("Growth run 7")
            return found

        async def scenario():
            w.inputs.context.setPlainText("Growth run 7")
            # A PDF: its picker takes page 2.
            w.open_paths([pdf])
            await wait_until(lambda: getattr(w, "picker", None) is not None, message="picker")
            w.picker.pages.setCurrentRow(1)
            await wait_until(lambda: w.picker.take_page_button.isEnabled(), message="page 2")
            w.picker.take_page_button.click()
            await wait_until(lambda: w.inputs.figures.count() == 1, message="page taken")
            w.picker.close()
            assert await window_asks() == await interpret(str(pdf), "--pages", "2")

            # A notebook: its picker takes both figures, one at a time, with their cells.
            pdf_picker = w.picker
            w.open_paths([nb])
            await wait_until(lambda: w.picker is not pdf_picker, message="notebook picker")
            for row in (0, 1):
                w.picker.list.setCurrentRow(row)
                w.picker.take_button.click()
            await wait_until(lambda: w.inputs.figures.count() == 2, message="figures taken")
            w.picker.close()
            assert await window_asks() == await interpret(str(nb))

            # A two-sheet workbook: the sheet chooser picks Temps.
            w.open_paths([book])
            await wait_until(lambda: w.outbox.table is not None and w.outbox.table_summary, message="book")
            combo = w.inputs.table.sheet_combo
            combo.activated.emit(combo.findText("Temps"))
            await wait_until(lambda: w.outbox.table.sheet == "Temps" and "celsius" in w.outbox.table_summary)
            assert await window_asks() == await interpret(str(book), "--sheet", "Temps")

            # A folder's files, opened together.
            w.open_paths(sorted(folder.iterdir()))
            await wait_until(
                lambda: w.inputs.figures.count() == 1 and w.outbox.table_summary, message="folder"
            )
            assert await window_asks() == await interpret(str(folder))

        run(scenario(), timeout=120)
