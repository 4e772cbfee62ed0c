"""Reports of a score run: what they say about how the run was made, and that text from a
model or a key can never become HTML, a rendered Markdown link, a spreadsheet formula or a
terminal escape."""

from __future__ import annotations

import csv
import html.parser
import io
import json

import pytest

from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.score import question as Q
from kanoa_desktop.core.score import report
from kanoa_desktop.core.score.run import ItemFailure, ItemScore, ScoreRun, suite_source

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
    text = report.to_html(_run())
    parser = _Tags()
    parser.feed(text)
    tags = {t for t, _ in parser.tags}
    assert not tags & {"script", "img", "a", "iframe", "link"}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "\x1b" not in text and "\u202e" not in text and "\\x1b[31m" in text
    assert "default-src 'none'" in text
    assert "lab &lt;b&gt;" in text  # a profile name is text too


def test_markdown_report_keeps_answers_in_code_fences_and_escapes_the_rest():
    text = report.to_markdown(_run())
    assert "\x1b" not in text and "\u202e" not in text
    # The answer sits in a fence longer than any backtick run inside it.
    assert "````text\n" in text and "break out of the fence" in text
    fence_body = text.split("````text\n", 1)[1].split("\n````", 1)[0]
    assert fence_body.startswith("<script>")  # raw inside the fence: shown, never rendered
    outside = text.replace(fence_body, "")
    assert "<script>" not in outside and "<b>" not in outside
    # Escaped for Markdown: renders as the visible escape "m\x1b[2J", never as one.
    assert "lab &lt;b&gt;" in outside and "m\\\\x1b\\[2J" in outside
    assert "failed: +cmd\\|' /C calc'\\!A0 \\\\x1b\\]0;title\\\\x07" in outside
    for needle in ("charts-v1 (seed 0, 3 items)", "matplotlib", Q.SYSTEM_PROMPT, "ANSWER: <value>"):
        assert needle in text


def test_csv_report_defuses_formulas_and_escapes_controls():
    rows = list(csv.reader(io.StringIO(report.to_csv(_run()))))
    header, *body = rows
    assert tuple(header) == report.CSV_COLUMNS and len(body) == 3
    col = {name: i for i, name in enumerate(header)}
    answers = [r[col["answer"]] for r in body]
    assert answers[1] == "'" + FORMULA
    assert answers[2].startswith("'+cmd")
    assert all(not a.startswith(("=", "+", "-", "@", "\t", "\r")) for r in body for a in r)
    assert report.safe_text("-700", "csv") == "-700"  # a plain number is not a formula
    assert report.safe_text("-1+1", "csv") == "'-1+1"
    assert report.safe_text("-2e3", "csv") == "-2e3"
    assert all("\x1b" not in cell and "\x07" not in cell for r in body for cell in r)
    assert [r[col["state"]] for r in body] == ["scored", "scored", "failed"]
    first = body[0]
    assert first[col["question"]] == suite_source(3, 0).items[0].question
    prompt = first[col["prompt"]]
    assert prompt.startswith(first[col["question"]]) and "ANSWER: <value>" in prompt
    assert first[col["run"]] == "charts-v1, seed 0, 3 items" and first[col["correct"]] == "1"


def test_json_and_the_terminal_table_carry_no_escape():
    run = _run()
    data = json.loads(report.json_text(run))
    assert set(data) == {"results", "paired", "run"}
    (r,) = data["results"]
    assert {"profile", "model", "n", "correct", "accuracy", "ci_low", "ci_high", "unparsed",
            "by_template"} <= set(r)  # fmt: skip
    assert (r["n"], r["correct"], r["unparsed"], r["failed"]) == (2, 1, 1, 1)
    assert report.json_text(run).isascii()
    table = report.terminal_text(run)
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
