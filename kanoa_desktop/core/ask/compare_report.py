"""Export a stored comparison as Markdown, self-contained HTML or PDF.

The inputs once, per question a comparison table and each model's answer, and one
reproducibility block per model. Safety as in :mod:`kanoa_desktop.core.history.export`.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

from kanoa_desktop.core.ask.compare import (
    TABLE_HEADERS,
    pane_labels,
    profiles_for_stored,
    stored_results,
    table_cells,
    table_markdown,
)
from kanoa_desktop.core.history.export import (
    FORMATS,
    HTML_CSS,
    ExportError,
    figure_links,
    html_start,
    inputs_markdown,
    one_line,
    pdf_document,
    pdf_html,
    quote_md,
    reproducibility,
    safe_md,
    state_note,
    usage_line,
    write_file,
)
from kanoa_desktop.core.history.store import StoredConversation
from kanoa_desktop.core.reports.markdown import demote_headings, markdown_renderer, render_markdown
from kanoa_desktop.core.safety import defang_images


def _pane_turns(conv: StoredConversation) -> list[Any]:
    return [t for t in conv.turns if t.finish_reason != "retried"]


def _rounds(cmp: Any):
    """Per question: its number, what was asked, its table rows, and each pane's turn (with
    its index and conversation) that answered it."""
    for q, rows in enumerate(stored_results(cmp.panes)):
        turns = [(i, c, _pane_turns(c)[q]) for i, c in enumerate(cmp.panes)
                 if len(_pane_turns(c)) > q]  # fmt: skip
        yield q + 1, turns[0][2].question if turns else "", rows, turns


def comparison_markdown(cmp: Any, links: dict[str, str] | None = None) -> str:
    """A stored comparison (``HistoryStore.load_comparison``) as one Markdown document:
    the inputs once, per question a comparison table and each model's answer, and one
    reproducibility block per model."""
    labels, first = pane_labels(profiles_for_stored(cmp.panes)), cmp.panes[0]
    out = [f"# {safe_md(one_line(cmp.title))}", "", *inputs_markdown(first, links)]
    for n, question, rows, turns in _rounds(cmp):
        out += [f"## Question {n}", "", *quote_md(question), "", table_markdown(rows), ""]
        for i, conv, t in turns:
            out += [f"### {one_line(labels[i])} ({t.model or conv.model})", ""]
            # Answer headings nest under the pane's own (## becomes #####).
            out += [safe_md(demote_headings(t.answer.strip())) or "*(no text)*", ""]
            out += [f"*{line}*\n" for line in (state_note(t), usage_line(t)) if line]
    out += ["## Reproducibility", ""]
    for i, conv in enumerate(cmp.panes):
        out += [f"### {one_line(labels[i])}", ""]
        out += [f"- **{k.strip()}**: {v}" if v else f"- **{k.strip()}**"
                for k, v in reproducibility(conv)] + [""]  # fmt: skip
    return "\n".join(out)


def comparison_html(cmp: Any) -> str:
    """A stored comparison as one self-contained HTML page; answers side by side."""
    md = markdown_renderer()
    e = html.escape
    labels, first = pane_labels(profiles_for_stored(cmp.panes)), cmp.panes[0]
    css = HTML_CSS.replace("max-width:52rem", "max-width:110rem") + (
        ".panes{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));"
        "gap:1rem}.pane{border:1px solid #ddd;padding:0 .8rem}"
    )
    out = html_start(cmp.title, first, css)
    for n, question, rows, turns in _rounds(cmp):
        out.append(f"<h2>Question {n}</h2>")
        out.append(f"<blockquote>{e(question.strip() or '-')}</blockquote>".replace("\n", "<br>"))
        out.append('<table class="compare"><tr>' + "".join(f"<th>{e(h)}</th>" for h in TABLE_HEADERS) + "</tr>")
        out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>"
                for cells in table_cells(rows)]  # fmt: skip
        out.append('</table><div class="panes">')
        for i, conv, t in turns:
            out.append(f'<div class="pane"><h3>{e(labels[i])} ({e(t.model or conv.model)})</h3>')
            answer = md.render(defang_images(demote_headings(t.answer)))
            out.append(f'<div class="answer">{answer}</div>')
            out += [f'<p class="{cls}"><em>{e(line)}</em></p>'
                    for cls, line in (("note", state_note(t)), ("usage", usage_line(t))) if line]  # fmt: skip
            out.append("</div>")
        out.append("</div>")
    out.append("<h2>Reproducibility</h2>")
    for i, conv in enumerate(cmp.panes):
        out.append(f'<h3>{e(labels[i])}</h3><table class="repro">')
        out += [f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in reproducibility(conv)]
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def comparison_pdf(cmp: Any) -> bytes:
    """A stored comparison as PDF bytes: the Markdown document rendered, figures first."""
    pdf, family, _code, text = pdf_document(cmp.title)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for f in cmp.panes[0].figures:
        try:
            pdf.image(io.BytesIO(f.data), w=min(width, (f.width or 600) * 0.2))
        except Exception:  # noqa: BLE001 - an image fpdf2 cannot place is named instead
            pass
    body = pdf_html(render_markdown(comparison_markdown(cmp)))
    pdf.set_font(family, "", 9)
    try:
        pdf.write_html(text(body), font_family=family)
    except Exception:  # noqa: BLE001 - fpdf2's HTML subset may refuse odd markup
        pdf.multi_cell(0, 4.5, text(comparison_markdown(cmp)), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def export_comparison(cmp: Any, path: Path | str, fmt: str | None = None) -> Path:
    """Export a stored comparison in ``fmt`` ("markdown", "html", "pdf"), or by the path's
    suffix; Markdown writes the figures beside it in ``<stem>_figures/``."""
    path = Path(path)
    if fmt is None:
        fmt = {v: k for k, v in FORMATS.items()}.get(path.suffix.lower(), "markdown")
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}.", "Use Markdown, HTML or PDF.")
    if path.suffix.lower() != FORMATS[fmt]:
        path = path.with_name(path.name + FORMATS[fmt])
    if fmt == "html":
        write_file(path, comparison_html(cmp))
    elif fmt == "pdf":
        write_file(path, comparison_pdf(cmp))
    else:
        write_file(path, comparison_markdown(cmp, figure_links(cmp.panes[0].figures, path)))
    return path


__all__ = ["comparison_html", "comparison_markdown", "comparison_pdf", "export_comparison"]
