"""The table summary in an HTML export reads as a table, not as raw Markdown, and a column
name cannot inject markup."""

from __future__ import annotations

from html.parser import HTMLParser

from kanoa_desktop.core.history.export import export
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.inputs.tables import load_table, summarise_table

from .conftest import record


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_cell = tag in ("td", "th")
        if self._in_cell:
            self.cells.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.cells[-1] += data


def test_the_html_export_renders_the_table_summary_safely(tmp_path):
    csv = tmp_path / "growth.csv"
    csv.write_text("hour,od600,<script>alert(1)</script>\n0,0.05,1\n1,0.09,2\n2,0.17,3\n")
    summary = summarise_table(load_table(csv))
    assert "| od600 |" in summary or "| od600 " in summary  # Markdown going in
    store = HistoryStore()
    rec = record(store, "Growth phases?", "Lag, then exponential.", table_name="growth.csv",
                 table_summary=summary)  # fmt: skip
    conv = store.load_conversation(rec.conversation_id)
    store.close()
    html = export(conv, tmp_path / "c.html").read_text(encoding="utf-8")
    section = html[html.index("Table summary sent") :]
    section = section[: section.index("<h2>Question")]
    parsed = _Cells()
    parsed.feed(section)
    assert "table" in parsed.tags and "od600" in [c.strip() for c in parsed.cells]
    assert "0.17" in [c.strip() for c in parsed.cells]
    assert "|---" not in section and "| od600" not in section  # no raw Markdown left
    assert "script" not in parsed.tags and "&lt;script&gt;" in section
