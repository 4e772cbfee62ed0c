"""Every face that writes a report or prints, fed hostile content made here: the real
commands on a terminal (a pty) and piped, the window's history export, and every report
they write opened as a viewer opens it.

The model's words are the one thing faked (no model here writes attacks on request): the
vLLM test server streams :data:`tests.reports.hostile.ANSWER` instead of its canned
answer; everything else (HTTP, streaming, the history, the files) is the real thing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kanoa_desktop.core.config.profiles import ProfileStore
from kanoa_desktop.core.history.store import HistoryStore
from tests.reports.hostile import (
    ANSWER,
    KEPT,
    NAMES,
    OSC_TITLE,
    assert_csv_safe,
    assert_markdown_safe,
    assert_no_outside_escapes,
    assert_nothing_runs,
    assert_pdf_safe,
    markdown_as_a_viewer_renders_it,
    notebook,
    write_figures,
)
from tests.reports.terminal import on_terminal, piped
from tests.servers import vllm_server
from tests.servers.vllm_server import PIECE_RE, VLLMTestServer

pytestmark = pytest.mark.timeout(600)

QUESTION = f"What is <b>shown</b>? {OSC_TITLE}"
ESCAPED = "\\x1b]0;OWNED-TITLE\\x07"  # how the OSC shows once escaped


@pytest.fixture
def server(monkeypatch):
    """The vLLM test server answering ANSWER (a second model, "other", for compare)."""
    pieces = tuple(PIECE_RE.findall(ANSWER))
    monkeypatch.setattr(vllm_server, "ANSWER_PIECES", pieces)
    with VLLMTestServer(tokens_per_second=5000, answer_tokens=len(pieces),
                        extra_models=("other",)) as s:  # fmt: skip
        store = ProfileStore()
        store.load()
        store.update(store.active.with_user_values(name="lab", api_base=s.api_base,
                                                   model=s.model, max_tokens=4096))  # fmt: skip
        store.save()
        yield s


def _figures_of(page: str) -> set[str]:
    return set(re.findall(r'src="(data:image/[a-z]+;base64,[A-Za-z0-9+/=]+)"', page))


def check_reports(paths: dict[str, Path], figures: int, folder: str) -> None:
    """Each report as a viewer opens it: nothing runs or loads, ``figures`` images (the
    user's), the ordinary words kept."""
    for fmt, path in paths.items():
        if fmt == "md":
            text = path.read_text(encoding="utf-8")
            links = {
                f"{path.stem}_{folder}/{p.name}"
                for p in (path.parent / f"{path.stem}_{folder}").glob("*")
            }
            assert len(links) == figures
            html = markdown_as_a_viewer_renders_it(text)
            assert_markdown_safe(text, links)
        elif fmt == "html":
            html = path.read_text(encoding="utf-8")
            parsed = assert_nothing_runs(html, _figures_of(html), head=True)
            assert sum(1 for t, _ in parsed.tags if t == "img") == figures
            assert "Content-Security-Policy" in html
        elif fmt == "pdf":
            html = assert_pdf_safe(path.read_bytes(), figures)
        else:
            assert_csv_safe(path.read_text(encoding="utf-8"))
            continue
        flat = " ".join(html.replace("&lt;", "<").split())
        assert all(words in flat for words in KEPT), (fmt, [w for w in KEPT if w not in flat])
        assert "\x1b" not in flat and "\x9b" not in flat, fmt


def test_interpret_and_history_on_a_terminal_piped_and_exported(server, tmp_path):
    figs = write_figures(tmp_path / "figs")[:2] + [tmp_path / "figs" / NAMES[-1]]
    args = ["interpret", *map(str, figs), "--question", QUESTION, "--context",
            f"Run {OSC_TITLE} ```"]  # fmt: skip
    ran = on_terminal(args)
    out = assert_no_outside_escapes(ran.out)
    assert ran.status == 0, out
    assert ESCAPED in out and "growth rate" in out

    again = piped([*args, "--no-history"])
    assert again.status == 0
    assert ESCAPED in assert_no_outside_escapes(again.out)
    assert_no_outside_escapes(again.err)

    listed = on_terminal(["history", "list"])
    assert ESCAPED in assert_no_outside_escapes(listed.out)  # the title is the question
    store = HistoryStore(recover=False)
    (summary,) = store.list_conversations()
    store.close()
    shown = piped(["history", "show", str(summary.id)])
    assert_markdown_safe(assert_no_outside_escapes(shown.out))
    for json_run in (
        piped(["history", "list", "--json"]),
        on_terminal(["history", "list", "--json"]),
    ):
        assert "\\u001b]0;OWNED-TITLE\\u0007" in assert_no_outside_escapes(json_run.out)

    paths = {}
    for fmt in ("md", "html", "pdf"):
        ran = on_terminal(
            ["history", "export", str(summary.id), "-f", fmt, "-o", str(tmp_path / f"c.{fmt}")]
        )
        assert ran.status == 0, ran.out
        assert_no_outside_escapes(ran.out)
        paths[fmt] = tmp_path / f"c.{fmt}"
    check_reports(paths, figures=3, folder="figures")


def test_the_windows_history_export_is_as_safe(server, qtbot, tmp_path):
    from kanoa_desktop.ui.history_panel import HistoryPanel

    figs = write_figures(tmp_path / "figs")[:2]
    assert piped(["interpret", *map(str, figs), "--question", QUESTION]).status == 0
    store = HistoryStore()
    panel = HistoryPanel(store)
    qtbot.addWidget(panel)
    cid = store.list_conversations()[0].id
    paths = {}
    for fmt, name in (("markdown", "md"), ("html", "html"), ("pdf", "pdf")):
        with qtbot.waitSignal(panel.exportFinished, timeout=60_000):
            panel.export_to(cid, tmp_path / f"w.{name}", fmt)
        paths[name] = tmp_path / f"w.{name}"
    panel.close()
    store.close()
    check_reports(paths, figures=2, folder="figures")


def test_compare_with_a_notebook_whose_cell_holds_a_fence(server, tmp_path):
    nb = notebook(tmp_path / "analysis.ipynb")
    fig = write_figures(tmp_path / "figs")[0]
    out = {fmt: tmp_path / f"cmp.{fmt}" for fmt in ("md", "html", "pdf")}
    ran = on_terminal(["compare", str(nb), str(fig), "--profile", "lab", "--model", server.model,
                       "--model", "other", "--question", QUESTION, "--markdown", str(out["md"]),
                       "--html", str(out["html"]), "--pdf", str(out["pdf"])])  # fmt: skip
    text = assert_no_outside_escapes(ran.out)
    assert ran.status == 0, text
    assert ESCAPED in text and "growth rate" in text
    check_reports(out, figures=2, folder="figures")
    # The cell's code is one code block: its fence line and the HTML after it are code.
    figures = {f"cmp_figures/{p.name}" for p in (tmp_path / "cmp_figures").glob("*")}
    page = assert_markdown_safe(out["md"].read_text(encoding="utf-8"), figures)
    code = "".join(page.code_text)
    assert "<img src=x onerror=alert('cell')>" in code and "plt.plot([1, 2, 3])" in code


def test_batch_progress_and_reports_over_hostile_file_names(server, tmp_path):
    folder = tmp_path / "figs"
    write_figures(folder)
    out = {fmt: tmp_path / f"r.{fmt}" for fmt in ("md", "html", "pdf", "csv")}
    args = ["batch", str(folder), "--profile", "lab", "--question", QUESTION]
    args += [x for path in out.values() for x in ("-o", str(path))]
    ran = on_terminal([*args, "--state", str(tmp_path / "a.sqlite3")])
    text = assert_no_outside_escapes(ran.out)
    assert ran.status == 0, text
    assert "esc\\x1b]0;OWNED-TITLE\\x07.png" in text and "two\\n# lines.png" in text
    check_reports(out, figures=len(NAMES), folder="thumbs")
    rows = assert_csv_safe(out["csv"].read_text(encoding="utf-8"))
    files = {r[0] for r in rows[1:]}
    assert {"'=1+2.png", "'@SUM(A1).png", "'+1.png", "'-1.png"} <= files
    assert all(r[-1].startswith("'=HYPERLINK(") for r in rows[1:])

    again = piped([*args, "--state", str(tmp_path / "b.sqlite3")])
    assert again.status == 0
    assert_no_outside_escapes(again.err)
    assert_no_outside_escapes(again.out)


def test_bench_export_names_a_hostile_model_safely(monkeypatch, tmp_path):
    model = f"evil<img src=x onerror=alert(1)>|{OSC_TITLE}"
    with VLLMTestServer(model=model, tokens_per_second=5000, answer_tokens=8,
                        multimodal=False) as s:  # fmt: skip
        ran = on_terminal(["bench-endpoint", "--api-base", s.api_base, "--runs", "1",
                           "--markdown", str(tmp_path / "b.md")])  # fmt: skip
    text = assert_no_outside_escapes(ran.out)
    assert ran.status == 0, text
    md = (tmp_path / "b.md").read_text(encoding="utf-8")
    html = markdown_as_a_viewer_renders_it(md)
    assert_markdown_safe(md)
    assert "| **Basic Chat** |" in md and "<table>" in html  # the pipe in the name broke no row
    assert "evil&lt;img src=x onerror=alert(1)&gt;|\\x1b]0;OWNED-TITLE\\x07 Statistics" in html
