"""A report as PDF (fpdf2, pure Python): each block as the writer's HTML, read by fpdf2's
HTML subset, the figures drawn from their bytes, in the DejaVu fonts matplotlib ships
(Greek letters and math symbols print) or the Latin-1 core fonts when they are missing.

The text a PDF lays out is budgeted (:data:`TEXT_BUDGET`): fpdf2 measures the line it is
building again for every character it adds (about 20 µs a character here), so a 5 MB
one-line answer took minutes of CPU and would have made ~1,500 pages. Past the budget a
block's text is cut at a line or a word, with a sentence saying how much was left out and
that the Markdown and HTML exports hold all of it.
"""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path
from typing import Any

from kanoa_desktop import __version__
from kanoa_desktop.core.reports import document as D
from kanoa_desktop.core.reports.writer import block_markdown, html_block, plain

#: Characters of text one PDF lays out: about 50 A4 pages of 10 pt text (~5 s of fpdf2).
TEXT_BUDGET = 240_000
#: What one heading, label or cell shows, whatever the budget has left.
LINE_BUDGET = 2_000


def pdf_fonts() -> tuple[Path | None, Path | None]:
    """DejaVu Sans and Sans Mono from matplotlib's data folder, or None each."""
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    except ImportError:
        return None, None
    sans, mono = folder / "DejaVuSans.ttf", folder / "DejaVuSansMono.ttf"
    return (sans if sans.exists() else None), (mono if mono.exists() else None)


class _Budget:
    """The characters of text left to lay out, and what was left out."""

    def __init__(self, total: int) -> None:
        self.left = total

    def take(self, text: str, *, line: bool = False) -> tuple[str, int]:
        """``text`` cut to what is left (a line: to LINE_BUDGET; anything else: at least
        200 characters), at a line or word break; and how many characters were cut."""
        room = LINE_BUDGET if line else max(self.left, 200)
        if len(text) <= room:
            self.left -= len(text)
            return text, 0
        cut = max(text.rfind("\n", 0, room), text.rfind(" ", 0, room))
        cut = cut if cut > room // 2 else room
        self.left -= cut
        return text[:cut], len(text) - cut


def _cut(b: D.Block, budget: _Budget) -> tuple[D.Block, int]:
    """``b`` with its text within the budget, and how many characters were cut."""
    line = lambda s: budget.take(plain(s), line=True)[0]  # noqa: E731
    if isinstance(b, D.Paragraph | D.Quote | D.Markdown | D.Code):
        text, cut = budget.take(b.text if isinstance(b, D.Markdown) else plain(b.text))
        extra = {"lead": line(b.lead)} if isinstance(b, D.Paragraph) else {}
        return dataclasses.replace(b, text=text, **extra), cut
    if isinstance(b, D.Heading):
        return dataclasses.replace(b, text=line(b.text)), 0
    if isinstance(b, D.Table):
        rows = [[line("" if v is None else v) for v in r] for r in b.rows]
        return dataclasses.replace(b, headers=[line(h) for h in b.headers], rows=rows), 0
    if isinstance(b, D.Facts):
        return dataclasses.replace(b, rows=[(line(k), line(v)) for k, v in b.rows]), 0
    if isinstance(b, D.Items):
        items = [(line(i[0]), line(i[1])) if isinstance(i, tuple) else line(i) for i in b.items]
        return dataclasses.replace(b, items=items), 0
    return b, 0


def to_pdf(doc: D.Document, budget: int = TEXT_BUDGET) -> bytes:
    """The document as PDF bytes (A4)."""
    from fpdf import FPDF, FontFace, TextStyle

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(plain(doc.title)[:LINE_BUDGET])
    pdf.set_creator(f"kanoa desktop {__version__}")
    sans, mono = pdf_fonts()
    family, code = "helvetica", "courier"
    if sans is not None:
        pdf.add_font("dejavu", "", str(sans))
        for style, name in (("B", "Bold"), ("I", "Oblique"), ("BI", "BoldOblique")):
            f = sans.parent / f"DejaVuSans-{name}.ttf"
            pdf.add_font("dejavu", style, str(f if f.exists() else sans))
        family = "dejavu"
    if mono is not None:
        for style in ("", "B", "I", "BI"):
            pdf.add_font("dejavumono", style, str(mono))
        code = "dejavumono"
    sizes = {"h1": 16, "h2": 12.5, "h3": 11, "h4": 10, "h5": 9.5, "h6": 9}
    styles: dict[str, Any] = {
        "code": FontFace(family=code),
        "pre": TextStyle(font_family=code, t_margin=2, b_margin=2),
        "blockquote": TextStyle(font_style="I", t_margin=2, b_margin=2),
        **{tag: TextStyle(font_family=family, font_style="B", font_size_pt=pt, t_margin=3,
                          b_margin=1) for tag, pt in sizes.items()},
    }  # fmt: skip

    def text(s: str) -> str:  # the core fonts (no DejaVu found) are Latin-1 only
        return s if family == "dejavu" else s.encode("latin-1", "replace").decode("latin-1")

    def write_html(body: str, fallback: str, size: float = 10) -> None:
        pdf.set_font(family, "", size)
        try:
            pdf.write_html(text(pdf_html(body)), font_family=family, tag_styles=styles)
        except Exception:  # noqa: BLE001 - fpdf2's HTML subset may refuse odd markup
            pdf.set_font(family, "", size)  # the text matters more than its formatting
            pdf.multi_cell(0, size / 2, text(fallback), new_x="LMARGIN", new_y="NEXT")

    def note(words: str, size: float = 8) -> None:
        write_html(html_block(D.Paragraph(words, style="em")), words, size)

    def draw(b: D.Block) -> None:
        if isinstance(b, D.Columns):
            for inner in (x for column in b.columns for x in column):
                draw(inner)
            return
        if isinstance(b, D.Figure):
            page = pdf.w - pdf.l_margin - pdf.r_margin
            try:
                pdf.image(
                    io.BytesIO(b.data), w=min(page, (b.width or 600) * 0.2, 50 if b.thumb else page)
                )
            except Exception:  # noqa: BLE001 - an image fpdf2 cannot place is named instead
                note(f"[figure {plain(b.name)[:LINE_BUDGET]} could not be drawn]", 9)
            if b.caption:
                note(plain(b.caption)[:LINE_BUDGET])
            pdf.ln(2)
            return
        fitted, cut = _cut(b, left)
        size = 8 if isinstance(b, D.Facts) or getattr(b, "style", "") == "small" else 10
        if isinstance(fitted, D.Facts):  # small lines, not a table
            fitted = D.Paragraph(
                "\n".join(f"{k.strip()}: {v}" if v else k.strip() for k, v in fitted.rows)
            )
        write_html(html_block(fitted), block_markdown(fitted), size)
        if cut:
            note(f"[{cut:,} more characters are left out of the PDF; the Markdown and HTML "
                 "exports have all of them.]")  # fmt: skip

    left = _Budget(budget)
    pdf.add_page()
    draw(D.Heading(doc.title, 1))
    for block in doc.blocks:
        draw(block)
    return bytes(pdf.output())


_LI_P_OPEN = re.compile(r"<li>\s*<p>")
_LI_P_CLOSE = re.compile(r"</p>\s*</li>")
# A link a PDF viewer would not open on the web: a fragment (fpdf2 wants it to name a
# place in the document), a number (a page) or a relative path.
_NOT_WEB_LINK = re.compile(r'<a href="(?!https?://|mailto:)[^"]*"')


def pdf_html(body: str) -> str:
    """The writer's HTML in fpdf2's subset: no ``<p>`` inside ``<li>``, links only to the
    web, and no ``<img>`` (fpdf2 would read the file or fetch the URL it names; figures are
    drawn from their bytes). Fixed-token patterns, no lazy ``(.*?)``: linear."""
    body = _NOT_WEB_LINK.sub('<a href=""', body).replace("<img", "&lt;img")
    return _LI_P_CLOSE.sub("</li>", _LI_P_OPEN.sub("<li>", body))


__all__ = ["LINE_BUDGET", "TEXT_BUDGET", "pdf_fonts", "pdf_html", "to_pdf"]
