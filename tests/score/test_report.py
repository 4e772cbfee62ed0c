"""Reports of a score run (a document written by the one report writer): what they say
about how the run was made, and that text from a model or a key can never become HTML, a
rendered Markdown link, a spreadsheet formula or a terminal escape."""

from __future__ import annotations

import csv
import html.parser
import io
import json

import pytest
from PIL import Image

from kanoa_desktop.cli.output import echo_json
from kanoa_desktop.cli.score import results_text
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.reports import writer
from kanoa_desktop.core.reports.writer import Number, csv_cell
from kanoa_desktop.core.score import question as Q
from kanoa_desktop.core.score import report
from kanoa_desktop.core.score.run import ItemFailure, ItemScore, ScoreRun, key_source, suite_source
from tests.reports.hostile import ANSWER, assert_csv_safe, assert_markdown_safe, assert_nothing_runs

HOSTILE = (
    "<script>alert(1)</script><img src=x onerror=alert(2)> [click](javascript:alert(3)) "
    "![pixel](http://evil.example/p.png) | col | \x1b[31mred\x1b[0m \u202egnp.exe\n"
    "```\nbreak out of the fence\n```\nANSWER: 40"
)
FORMULA = '=HYPERLINK("http://evil.example","x")'


def _run() -> ScoreRun:
    source = suite_source(3, 0)
    run = ScoreRun(source, [Profile(name="lab <b>", api_base="http://127.0.0.1:9/v1",
                                    model="m\x1b[2J")], Services(ClientPool()))  # fmt: skip
    a, b, c = source.items
    run.scores[(0, a.id)] = ItemScore(
        a.id, 0, a.template, a.question, a.truth, a.kind, HOSTILE, "40", "answer line",
        True, 0.0, output_tokens=12, generation_s=0.5, cost=0.001, estimated=False,
    )  # fmt: skip
    run.scores[(0, b.id)] = ItemScore(
        b.id, 1, b.template, b.question, b.truth, b.kind, FORMULA, "", "unparsed", False,
    )  # fmt: skip
    run.failures[(0, c.id)] = ItemFailure(c.id, 2, "+cmd|' /C calc'!A0 \x1b]0;title\x07")
    run.state = "incomplete"
    return run


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_report_escapes_every_answer_and_loads_nothing():
    text = writer.to_html(report.report_document(_run()))
    parser = _Tags()
    parser.feed(text)
    tags = {t for t, _ in parser.tags}
    assert not tags & {"script", "img", "a", "iframe", "link"}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "\x1b" not in text and "\u202e" not in text and "\\x1b[31m" in text
    assert "default-src 'none'" in text
    assert "lab &lt;b&gt;" in text  # a profile name is text too


def test_markdown_report_keeps_answers_in_code_fences_and_escapes_the_rest():
    text = writer.to_markdown(report.report_document(_run()))
    assert "\x1b" not in text and "\u202e" not in text
    # The answer sits in a fence longer than any backtick run inside it.
    assert "````text\n" in text and "break out of the fence" in text
    fence_body = text.split("````text\n", 1)[1].split("\n````", 1)[0]
    assert fence_body.startswith("<script>")  # raw inside the fence: shown, never rendered
    outside = text.replace(fence_body, "")
    assert "<script>" not in outside and "<b>" not in outside
    # Escaped for Markdown: renders as the visible escape "m\x1b[2J", never as one.
    assert "lab &lt;b>" in outside and "m\\\\x1b\\[2J" in outside
    assert "failed: +cmd\\|' /C calc'!A0 \\\\x1b\\]0;title\\\\x07" in outside
    for needle in ("charts-v1 (seed 0, 3 items)", "matplotlib", Q.SYSTEM_PROMPT, "ANSWER: <value>"):
        assert needle in text


def test_csv_report_defuses_formulas_and_escapes_controls():
    rows = list(csv.reader(io.StringIO(writer.to_csv(report.report_document(_run()).data))))
    header, *body = rows
    assert tuple(header) == report.CSV_COLUMNS and len(body) == 3
    col = {name: i for i, name in enumerate(header)}
    answers = [r[col["answer"]] for r in body]
    assert answers[1] == "'" + FORMULA
    assert answers[2].startswith("'+cmd")
    assert all(not a.startswith(("=", "+", "-", "@", "\t", "\r")) for r in body for a in r)
    # Truth and what was read are Numbers: a plain number is not a formula, the rest is text.
    assert csv_cell(Number("-700")) == "-700" and csv_cell(Number("-2e3")) == "-2e3"
    assert csv_cell(Number("-1+1")) == "'-1+1"
    assert all("\x1b" not in cell and "\x07" not in cell for r in body for cell in r)
    assert [r[col["state"]] for r in body] == ["scored", "scored", "failed"]
    first = body[0]
    assert first[col["question"]] == suite_source(3, 0).items[0].question
    prompt = first[col["prompt"]]
    assert prompt.startswith(first[col["question"]]) and "ANSWER: <value>" in prompt
    assert first[col["run"]] == "charts-v1, seed 0, 3 items" and first[col["correct"]] == "1"


def test_json_and_the_terminal_table_carry_no_escape(capsys):
    run = _run()
    echo_json(report.to_json(run), indent=2)
    out = capsys.readouterr().out
    assert "\x1b" not in out
    data = json.loads(out)
    assert set(data) == {"results", "paired", "run"}
    (r,) = data["results"]
    assert {"profile", "model", "n", "correct", "accuracy", "ci_low", "ci_high", "unparsed",
            "by_template"} <= set(r)  # fmt: skip
    assert (r["n"], r["correct"], r["unparsed"], r["failed"]) == (2, 1, 1, 1)
    assert data["results"][0]["model"] == "m\x1b[2J"  # escaped in the text, kept in the value
    table = results_text(run, run.summaries(), run.paired())
    assert "\x1b" not in table and "m\\x1b[2J" in table


def test_the_report_format_comes_from_the_suffix(tmp_path):
    run = _run()
    for suffix in (".md", ".html", ".csv"):
        path = report.write(run, tmp_path / f"out{suffix}")
        assert path.read_text(encoding="utf-8")
    with pytest.raises(report.ReportError, match="Markdown"):
        report.write(run, tmp_path / "out.pdf")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(report.ReportError, match="could not be written"):
        report.write(run, blocker / "out.md")


def test_hostile_answers_and_a_hostile_key_name_come_out_neutralised(tmp_path):
    """A key whose file name, question and answer, and a model whose answers, carry a
    formula, a script, a local-file image and an OSC escape: written through the one
    writer, a lax Markdown viewer and a browser run and load nothing, no CSV cell is a
    formula and no control character reaches any file."""
    bad = '=HYPERLINK("http://evil.example","x") <script>alert(1)</script> \x1b]0;title\x07'
    image = "![x](file:///etc/passwd)"
    name = bad.replace("/", "|") + " ![x](file:.etc.passwd).png"  # no "/" in a file name
    Image.new("RGB", (16, 16)).save(tmp_path / name)
    key = tmp_path / f"{bad.replace('/', '|')}.csv"
    with key.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerow(["file", "question", "answer"])
        csv.writer(fh).writerow([name, f"{bad} {image}?", f"@SUM(A1) {image}"])
    source = key_source(key)
    (item,) = source.items
    run = ScoreRun(source, [Profile(name=bad, api_base="http://127.0.0.1:9/v1", model=image)],
                   Services(ClientPool()))  # fmt: skip
    answer = f"{bad}\n{image}\n{ANSWER}"
    run.scores[(0, item.id)] = ItemScore(
        item.id, 0, item.template, item.question, item.truth, item.kind, answer, bad, "last label",
        False,
    )  # fmt: skip
    run.state = "done"

    md = report.write(run, tmp_path / "r.md").read_text(encoding="utf-8")
    page = report.write(run, tmp_path / "r.html").read_text(encoding="utf-8")
    sheet = report.write(run, tmp_path / "r.csv").read_text(encoding="utf-8")
    for text in (md, page, sheet):
        assert "\x1b" not in text and "\x07" not in text and "\\x1b]0;title\\x07" in text
    assert_markdown_safe(md)  # rendered by a lax viewer: no script, no image, no link run
    assert_nothing_runs(page, head=True)
    assert "&lt;script&gt;" in page and "<script>" not in page
    header, row = assert_csv_safe(sheet)  # no formula cell, no control character
    cell = dict(zip(header, row, strict=True))
    assert cell["answer"].startswith("'=HYPERLINK") and cell["profile"].startswith("'=HYPERLINK")
    assert cell["truth"] == f"'@SUM(A1) {image}" and cell["extracted"].startswith("'=HYPERLINK")
    assert cell["run"].startswith("key =HYPERLINK") and "\\x1b]0;title\\x07" in cell["run"]
