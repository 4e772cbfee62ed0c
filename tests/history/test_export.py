"""Exports parsed back: Markdown links to figure files that exist, HTML images decode,
PDF text holds the answer; model text cannot inject markup; keys appear nowhere."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import pypdfium2
import pytest
from PIL import Image

from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.config.secrets import KeyStore
from kanoa_desktop.core.history.export import ExportError, export, reproducibility
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.kb.retrieval import Passage, Source
from tests.profiles.conftest import MemoryKeyring

from .conftest import figure, record

FAKE_KEY = "sk-fake-7d1f0c2e9b-history-export"
ANSWER = (
    "## Reading the figure\n\nThe **growth rate** doubles after 2 h; σ ≈ 0.3.\n\n"
    "- Control stays flat\n- Treatment rises\n\n"
    "<script>alert('x')</script> <img src=x onerror=alert(1)> "
    "[click](javascript:alert(1))\n"
)


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.tags: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src", ""))
        if tag == "a":
            self.hrefs.append(a.get("href", ""))


@pytest.fixture
def conversation(tmp_path):
    keys = KeyStore(backend=MemoryKeyring())
    profile = Profile(name="Lab GPU", api_base="http://gpu.lab:8000/v1", temperature=0.3)
    assert keys.set(profile.id, FAKE_KEY) is None
    assert keys.get(profile.id).reveal() == FAKE_KEY
    store = HistoryStore()
    figs = [figure("red", "growth curve.png"), figure("green", "blot.png")]
    passages = [Passage(1, "Doubling time 2 h.", Source("protocol.md", tmp_path / "protocol.md"))]
    rec = record(
        store,
        "What does the growth curve show?",
        ANSWER,
        figures=figs,
        profile=profile,
        server_kind="vllm",
        passages=passages,
        table_name="od600.csv",
        table_summary="600 rows × 3 columns",
    )
    record(store, "Is it significant?", "Yes, p < 0.01.", conversation_id=rec.conversation_id)
    conv = store.load_conversation(rec.conversation_id)
    yield store, conv, figs
    store.close()


def test_markdown_export_links_figure_files_that_exist(conversation, tmp_path):
    _, conv, figs = conversation
    path = export(conv, tmp_path / "out" / "report.md")
    text = path.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 2
    for link, fig in zip(links, figs, strict=True):
        target = path.parent / link.replace("%20", " ")
        assert target.is_file() and target.read_bytes() == fig.data
    assert "The **growth rate** doubles" in text and "Yes, p < 0.01." in text


def test_html_export_embeds_images_that_decode_and_escapes_model_markup(conversation, tmp_path):
    _, conv, figs = conversation
    path = export(conv, tmp_path / "report.html")
    parser = _Images()
    parser.feed(path.read_text(encoding="utf-8"))
    assert len(parser.srcs) == 2
    for src, fig in zip(parser.srcs, figs, strict=True):
        head, b64 = src.split(",", 1)
        assert head == "data:image/png;base64"
        data = base64.b64decode(b64)
        assert data == fig.data
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == fig.sent_size
    assert "script" not in parser.tags
    assert not any(h.lower().startswith("javascript") for h in parser.hrefs)
    assert "<strong>growth rate</strong>" in path.read_text(encoding="utf-8")


def test_pdf_export_has_the_answer_text(conversation, tmp_path):
    _, conv, _ = conversation
    path = export(conv, tmp_path / "report", "pdf")
    assert path.suffix == ".pdf"
    doc = pypdfium2.PdfDocument(str(path))
    text = "".join(page.get_textpage().get_text_range() for page in doc)
    doc.close()
    flat = " ".join(text.split())
    assert "The growth rate doubles after 2 h; σ ≈ 0.3." in flat
    assert "Yes, p < 0.01." in flat
    assert conv.figures[0].hash in flat  # the reproducibility block


def test_every_export_carries_the_reproducibility_block(conversation, tmp_path):
    _, conv, figs = conversation
    rows = dict((k.strip(), v) for k, v in reproducibility(conv))
    assert rows["Model"] == "qwen2.5-vl-7b"
    assert rows["Server"] == "http://gpu.lab:8000/v1 (vllm)"
    assert "temperature=0.3" in rows["Parameters"]
    assert rows["Knowledge-base sources"] == "protocol.md"
    md = export(conv, tmp_path / "r.md").read_text(encoding="utf-8")
    html = export(conv, tmp_path / "r.html").read_text(encoding="utf-8")
    for text in (md, html):
        for fig in conv.figures:
            assert fig.hash in text
        assert "http://gpu.lab:8000/v1" in text and "protocol.md" in text


def test_the_key_is_in_no_export_and_not_in_the_database(conversation, tmp_path):
    store, conv, _ = conversation
    out = tmp_path / "exports"
    for name in ("a.md", "a.html", "a.pdf"):
        export(conv, out / name)
    files = [p for p in out.rglob("*") if p.is_file()]
    files += [p for p in store.path.parent.iterdir() if p.name.startswith("history.sqlite3")]
    assert len(files) >= 6
    for p in files:
        assert FAKE_KEY.encode() not in p.read_bytes(), p


def test_an_unwritable_target_is_a_plain_error(conversation, tmp_path):
    _, conv, _ = conversation
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError) as err:
        export(conv, blocker / "report.html")
    assert "could not be written" in err.value.message and err.value.hint


def test_pdf_renders_the_table_summary_markdown_not_its_source(tmp_path):
    import pandas as pd

    from kanoa_desktop.core.endpoint.chat import user_message
    from kanoa_desktop.core.inputs.tables import summarise_table

    frame = pd.DataFrame({"hour": [0.0, 0.5, 1.0, 1.5], "od600": [0.05, 0.0552585, 0.061, 0.067]})
    summary = summarise_table(frame, name="growth.csv", token_budget=600)
    assert "|---|" in summary and "### " in summary  # Markdown source
    store = HistoryStore()
    rec = store.begin_turn(
        None, user_message=user_message("Interpret."), model="m", table_summary=summary
    )
    rec.finish("done", "stop")
    path = export(store.load_conversation(rec.conversation_id), tmp_path / "t.pdf", "pdf")
    store.close()
    doc = pypdfium2.PdfDocument(str(path))
    text = "".join(page.get_textpage().get_text_range() for page in doc)
    doc.close()
    assert "Numeric columns (describe)" in text and "0.0552585" in text
    assert "|---" not in text and "###" not in text and "| hour |" not in text
