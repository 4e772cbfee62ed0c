"""The one report writer: every block of a document, holding hostile text made here,
written as Markdown, HTML, PDF and CSV and opened as a viewer opens them: nothing runs or
loads, the user's figures are the only images, no CSV cell is a formula, and the ordinary
text is still there."""

from __future__ import annotations

import csv
import io
import re

import pytest

from kanoa_desktop.core.reports import document as D
from kanoa_desktop.core.reports.markdown import md_text, render_markdown, safe_markdown
from kanoa_desktop.core.reports.writer import (
    Number,
    ReportError,
    csv_cell,
    to_html,
    to_markdown,
    write,
)
from kanoa_desktop.core.safety import code_fence
from tests.reports.hostile import (
    ANSWER,
    CELL,
    ESCAPES,
    KEPT,
    NAMES,
    assert_csv_safe,
    assert_markdown_safe,
    assert_nothing_runs,
    assert_pdf_safe,
    markdown_as_a_viewer_renders_it,
    png,
)


def _document() -> D.Document:
    name = NAMES[0] + NAMES[5] + ESCAPES
    fig = D.Figure(png(), name, caption=f"caption {name}", width=48, height=32)
    rows = [[n, ANSWER[:40], 3] for n in NAMES] + [['=HYPERLINK("http://x","y")', "@SUM(A1)", 7.5]]
    return D.Document(f"Title {name}", data=D.Table(["file", "answer", "n"], rows)).add(
        D.Heading(name),
        fig,
        D.Paragraph(name, lead=name),
        D.Paragraph(ANSWER, style="note"),
        D.Quote(ANSWER),
        D.Markdown(ANSWER, demote=2),
        D.Code(CELL + "\n" + ESCAPES, lang="python<script>"),
        D.Table(["h" + name, "b"], [[name, ANSWER]], align="lr", widths=(50, 50), first_column="b"),
        D.Facts([(name, name), ("Model", "")]),
        D.Items([name, (name, name)]),
        D.Columns([[D.Heading(name, 3), D.Markdown(ANSWER, demote=3)], [D.Paragraph(name)]]),
    )


def test_markdown_runs_and_loads_nothing_in_a_viewer_and_links_only_its_figures(tmp_path):
    path = write(_document(), tmp_path / "r.md")
    text = path.read_text(encoding="utf-8")
    figures = sorted((tmp_path / "r_figures").iterdir())
    assert len(figures) == 1 and figures[0].read_bytes() == png()
    assert_markdown_safe(text, {f"r_figures/{figures[0].name}"})
    html = markdown_as_a_viewer_renders_it(text)
    for words in KEPT:
        assert words in html.replace("&lt;", "<"), words
    assert "<strong>growth rate</strong>" in html and "p &lt; 0.01" in html
    assert "<code>List&lt;int&gt;</code>" in html  # a code span keeps its text
    assert "print('&lt;b&gt;code&lt;/b&gt;')" in html  # so does fenced code
    assert '<a href="https://example.org/docs">good link</a>' in html
    assert "\x1b" not in text and "\x9b" not in text and "\\x1b]0;OWNED-TITLE" in text


def test_a_file_name_cannot_start_a_heading_or_markup_in_markdown(tmp_path):
    text = to_markdown(_document())
    html = markdown_as_a_viewer_renders_it(text)
    # "two\n# lines.png" stays in its heading, as text.
    assert "<h1>lines.png" not in html and "# lines.png" in html


def test_html_has_its_csp_and_only_the_figure_as_an_image(tmp_path):
    page = write(_document(), tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    parsed = assert_nothing_runs(page, _data_urls(page), head=True)
    assert sum(1 for t, _ in parsed.tags if t == "img") == 1
    assert "growth rate" in page and "\x1b" not in page and "\x9b" not in page


def _data_urls(page: str) -> set[str]:
    import re

    return set(re.findall(r'src="(data:image/png;base64,[A-Za-z0-9+/=]+)"', page))


def test_pdf_draws_only_the_figure_and_links_only_to_the_web(tmp_path):
    data = write(_document(), tmp_path / "r.pdf").read_bytes()
    text = assert_pdf_safe(data, figures=1)
    assert "growth rate" in text and "good link" in text


def test_a_5_mb_one_line_answer_lays_out_the_pdf_budget_and_says_what_was_left_out(tmp_path):
    # Issue 23: fpdf2 measures its line again for every character, so the PDF lays out
    # TEXT_BUDGET characters of it (bench/bench_reports.py times it), then a sentence.
    import pypdfium2

    from kanoa_desktop.core.reports.pdf import TEXT_BUDGET

    answer = ("growth of the signal over time " * 161_300)[:5_000_000]
    data = write(D.Document("Long").add(D.Markdown(answer)), tmp_path / "long.pdf").read_bytes()
    pdf = pypdfium2.PdfDocument(data)
    try:
        pages = len(pdf)
        text = " ".join("".join(p.get_textpage().get_text_range() for p in pdf).split())
    finally:
        pdf.close()
    assert pages <= 60  # ~50 A4 pages of 10 pt text, not ~1,500
    assert abs(text.count("growth") - TEXT_BUDGET // 31) <= 2
    left_out = int(re.search(r"\[([\d,]+) more characters are left out of the PDF", text)[1]
                   .replace(",", ""))  # fmt: skip
    assert 0 <= left_out - (5_000_000 - TEXT_BUDGET) <= 40
    assert "the Markdown and HTML exports have all of them" in text


def test_csv_cells_never_start_a_formula_and_numbers_stay_numbers(tmp_path):
    rows = assert_csv_safe(write(_document(), tmp_path / "r.csv").read_text(encoding="utf-8"))
    cells = {r[0] for r in rows[1:]}
    assert {
        "'=1+2.png",
        "'@SUM(A1).png",
        "'+1.png",
        "'-1.png",
        '\'=HYPERLINK("http://x","y")',
    } <= cells
    assert rows[-1][2] == "7.5"  # a number the app computed is written as one


@pytest.mark.parametrize(
    "value, written",
    [("=1+2", "'=1+2"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
     ("\t=x", "'\t=x"), ("\r=x", "\\r=x"), ("  =x", "'  =x"), ("＝1+1", "'＝1+1"),
     ("ok", "ok"), ("a=b", "a=b"), (3, 3), (-2.5, -2.5), (True, 1), (None, ""),
     (Number("-700"), "-700"), (Number("0.80"), "0.80"), (Number("=1+2"), "'=1+2")],
)  # fmt: skip
def test_csv_cell_follows_owasp(value, written):
    assert csv_cell(value) == written
    if isinstance(value, str) and not isinstance(value, Number):
        buf = io.StringIO()
        csv.writer(buf).writerow([csv_cell(value)])
        assert_csv_safe(buf.getvalue())


def test_a_notebook_cell_with_a_fence_line_stays_in_its_code_block():
    text = to_markdown(D.Document("t").add(D.Code(CELL, "python"), D.Paragraph("after")))
    html = markdown_as_a_viewer_renders_it(text)
    parsed = assert_nothing_runs(html)
    code = "".join(parsed.code_text)
    assert "<img src=x onerror=alert('cell')>" in code and "plt.plot" in code
    assert "<p>after</p>" in html
    assert code_fence("a ``` b ````") == "`````"


# Each attack alone, so a failure names it.
ATTACKS = {
    "script": "<script>alert(1)</script>",
    "img-onerror": "<img src=x onerror=alert(1)>",
    "iframe": "<iframe src=http://e.example></iframe>",
    "remote-image": "![x](http://e.example/t.png)",
    "file-image": "![x](file:///etc/passwd)",
    "reference-image": "![x][r]\n\n[r]: file:///etc/passwd",
    "javascript-link": "[x](javascript:alert(1))",
    "vbscript-link": "[x](vbscript:msgbox(1))",
    "data-link": "[x](data:text/html,<script>alert(1)</script>)",
    "entity-link": "[x](&#106;avascript:alert(1))",
    "named-entity-colon": "[x](javascript&colon;alert(1))",
    "backslash-colon": "[x](javascript\\:alert(1))",
    "reference-link": "[x][r]\n\n[r]: javascript:alert(1)",
    "reference-next-line": "[x][r]\n\n[r]:\n  javascript:alert(1)",
    "link-after-newline": "[x](\njavascript:alert(1))",
    "odd-scheme": "[x](ms-msdt:/id%20PCWDiagnostic)",
    "autolink": "<javascript:alert(1)>",
    "html-block": "<div\nonmouseover=alert(1)>x</div>",
    "comment": "<!-- x --><img src=x onerror=alert(1)>",
    "span-pairing": "x `a\nb` <img src=x onerror=alert(1)> `c`",
    "list-fence": "- a\n  ```\n<img src=x onerror=alert(1)>\n  ```",
    "unclosed-fence": "```\n<img src=x onerror=alert(1)>",
    "tilde-fence": "~~~\n<b>fine</b>\n~~~\n<img src=x onerror=alert(1)>",
    "table-pipe-span": "| a | b |\n|---|---|\n| `x|<img src=x onerror=alert(1)>|` | y |",
    "heading": "# <img src=x onerror=alert(1)>",
    "attr-list": "[x](http://ok.example){onclick=alert(1)}",
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_each_attack_is_inert_in_markdown_html_and_pdf(name):
    text = ATTACKS[name]
    assert_markdown_safe(safe_markdown(text))
    assert_nothing_runs(render_markdown(text))
    md = to_markdown(D.Document("t").add(D.Markdown(text), D.Paragraph("after the answer")))
    assert "after the answer" in markdown_as_a_viewer_renders_it(md)


def test_ordinary_markdown_keeps_its_meaning():
    text = (
        "## H\n\n**b** *i* `a<b>` [l](https://x.example) ~~s~~\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    )
    html = markdown_as_a_viewer_renders_it(safe_markdown(text, demote=2))
    for part in ("<h4>H</h4>", "<strong>b</strong>", "<em>i</em>", "<code>a&lt;b&gt;</code>",
                 '<a href="https://x.example">l</a>', "<s>s</s>", "<td>1</td>"):  # fmt: skip
        assert part in html, part


def test_plain_text_shows_exactly_itself():
    for text in NAMES + ["a*b*c_d_", "1. not a list", "- nor this", "> nor a quote", "[x](y)"]:
        html = markdown_as_a_viewer_renders_it(md_text(text))
        assert_nothing_runs(html)
        assert "<li>" not in html and "<blockquote>" not in html and "<em>" not in html
        assert "<a " not in html and "<h1>" not in html


def test_an_unknown_format_or_a_csv_without_a_table_is_a_sentence(tmp_path):
    for name in ("r.docx", "r.csv"):
        with pytest.raises(ReportError) as err:
            write(D.Document("t"), tmp_path / name)
        assert "Markdown (.md)" in err.value.message and err.value.hint


def test_writing_where_no_file_can_be_is_a_sentence(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ReportError) as err:
        write(D.Document("t"), tmp_path / "file" / "r.html")
    assert "could not be written" in err.value.message


ADVERSARIAL = {
    "backticks": "`" * 100_000,
    "spans": "`a` " * 25_000,
    "ticks-and-pipes": "`|" * 50_000,
    "lt": "<a" * 50_000,
    "entities": "&#1;" * 25_000,
    "braces": "{" * 100_000,
    "brace-on": "{ on" * 25_000,
    "schemes": "](javascript:" * 8_000,
    "line-starts": "\n> 1. " * 20_000,
    "fences": "```\n" * 25_000,
    "list-fences": "- ```\n" * 20_000,
    "spaces": " " * 100_000 + "x",
}


@pytest.mark.timeout(120)  # a hang guard (pytest-timeout): a quadratic pattern takes minutes
@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
def test_the_writer_stays_linear_on_adversarial_text(case):
    text = ADVERSARIAL[case]
    for fn in (
        safe_markdown,
        md_text,
        csv_cell,
        lambda t: to_html(D.Document(t).add(D.Markdown(t))),
    ):
        fn(text)
