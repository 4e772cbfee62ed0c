"""Export a stored comparison as Markdown, self-contained HTML or PDF.

The inputs once, per question a comparison table and each model's answer, and one
reproducibility block per model. Safety as in :mod:`kanoa_desktop.core.history.export`.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

from kanoa_desktop import __version__
from kanoa_desktop.core.ask.compare import (
    TABLE_HEADERS,
    stored_results,
    table_cells,
    table_markdown,
)
from kanoa_desktop.core.history.export import (
    FORMATS,
    HTML_CSS,
    ExportError,
    one_line,
    pdf_fonts,
    pdf_html,
    reproducibility,
    safe_md,
    slug,
    state_note,
    usage_line,
    write_file,
)
from kanoa_desktop.core.history.store import StoredConversation
from kanoa_desktop.core.reports.markdown import demote_headings, markdown_renderer, render_markdown
from kanoa_desktop.core.safety import defang_images


def _comparison_parts(cmp: Any) -> tuple[list[str], list[list], list[Any]]:
    """Pane labels, the table rows per question, and the first pane (for the inputs)."""
    labels = []
    for conv in cmp.panes:
        label = conv.profile_name or conv.model or "pane"
        labels.append(label if labels.count(label) == 0 else f"{label} · {conv.model}")
    return labels, stored_results(cmp.panes, labels), cmp.panes[0]


def _pane_turns(conv: StoredConversation) -> list[Any]:
    return [t for t in conv.turns if t.finish_reason != "retried"]


def comparison_markdown(cmp: Any, figure_links: dict[str, str] | None = None) -> str:
    """A stored comparison (``HistoryStore.load_comparison``) as one Markdown document:
    the inputs once, per question a comparison table and each model's answer, and one
    reproducibility block per model."""

    labels, rounds, first = _comparison_parts(cmp)
    out = [f"# {safe_md(one_line(cmp.title))}", ""]
    if first.figures:
        out += ["## Figures", ""]
        for f in first.figures:
            link = (figure_links or {}).get(f.hash)
            alt = one_line(f.name).replace("]", "\\]")
            out += [f"![{alt}]({link})" if link else f"- {alt} (`{f.hash[:12]}`)", ""]
    if first.context.strip():
        out += ["**Context:** " + first.context.strip(), ""]
    if first.table_summary.strip():
        out += ["## Table summary sent", "", "```text", first.table_summary.strip("\n"), "```", ""]
    for q, rows in enumerate(rounds):
        question = next(
            (_pane_turns(c)[q].question for c in cmp.panes if len(_pane_turns(c)) > q), ""
        )
        out += [f"## Question {q + 1}", ""]
        question = safe_md(question.strip() or "-")
        out += ["> " + line if line else ">" for line in question.splitlines()]
        out += ["", table_markdown(rows), ""]
        for i, conv in enumerate(cmp.panes):
            turns = _pane_turns(conv)
            if len(turns) <= q:
                continue
            t = turns[q]
            out += [f"### {one_line(labels[i])} ({t.model or conv.model})", ""]
            # Answer headings nest under the pane's own (## becomes #####).
            out += [safe_md(demote_headings(t.answer.strip())) or "*(no text)*", ""]
            for line in (state_note(t), usage_line(t)):
                if line:
                    out += [f"*{line}*", ""]
    out += ["## Reproducibility", ""]
    for i, conv in enumerate(cmp.panes):
        out += [f"### {one_line(labels[i])}", ""]
        out += [
            f"- **{k.strip()}**: {v}" if v else f"- **{k.strip()}**"
            for k, v in reproducibility(conv)
        ]
        out.append("")
    return "\n".join(out)


def comparison_html(cmp: Any) -> str:
    """A stored comparison as one self-contained HTML page; answers side by side."""

    md = markdown_renderer()
    e = html.escape
    labels, rounds, first = _comparison_parts(cmp)
    css = HTML_CSS.replace("max-width:52rem", "max-width:110rem") + (
        ".panes{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));"
        "gap:1rem}.pane{border:1px solid #ddd;padding:0 .8rem}"
    )
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{e(cmp.title)}</title><style>{css}</style></head><body>",
        f"<h1>{e(cmp.title)}</h1>",
    ]
    for f in first.figures:
        out.append(
            f'<figure><img src="{e(f.data_url())}" alt="{e(f.name)}" '
            f'width="{f.width or ""}" height="{f.height or ""}">'
            f"<figcaption>{e(f.name)} <code>{e(f.hash[:12])}</code></figcaption></figure>"
        )
    if first.context.strip():
        out.append(f"<p><strong>Context:</strong> {e(first.context.strip())}</p>")
    if first.table_summary.strip():
        out.append(f"<h2>Table summary sent</h2><pre>{e(first.table_summary.strip())}</pre>")
    for q, rows in enumerate(rounds):
        question = next(
            (_pane_turns(c)[q].question for c in cmp.panes if len(_pane_turns(c)) > q), ""
        )
        out.append(f"<h2>Question {q + 1}</h2>")
        out.append(f"<blockquote>{e(question.strip() or '-')}</blockquote>".replace("\n", "<br>"))
        out.append('<table class="compare"><tr>')
        out += [f"<th>{e(h)}</th>" for h in TABLE_HEADERS]
        out.append("</tr>")
        for cells in table_cells(rows):
            out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
        out.append('</table><div class="panes">')
        for i, conv in enumerate(cmp.panes):
            turns = _pane_turns(conv)
            if len(turns) <= q:
                continue
            t = turns[q]
            out.append(f'<div class="pane"><h3>{e(labels[i])} ({e(t.model or conv.model)})</h3>')
            answer = md.render(defang_images(demote_headings(t.answer)))
            out.append(f'<div class="answer">{answer}</div>')
            for cls, line in (("note", state_note(t)), ("usage", usage_line(t))):
                if line:
                    out.append(f'<p class="{cls}"><em>{e(line)}</em></p>')
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
    from fpdf import FPDF

    labels, _, first = _comparison_parts(cmp)
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(cmp.title)
    pdf.set_creator(f"kanoa desktop {__version__}")
    sans, _mono = pdf_fonts()
    family = "helvetica"
    if sans is not None:
        folder = sans.parent
        pdf.add_font("dejavu", "", str(sans))
        for style, name in (("B", "Bold"), ("I", "Oblique"), ("BI", "BoldOblique")):
            f = folder / f"DejaVuSans-{name}.ttf"
            pdf.add_font("dejavu", style, str(f if f.exists() else sans))
        family = "dejavu"

    def text(s: str) -> str:
        return s if family == "dejavu" else s.encode("latin-1", "replace").decode("latin-1")

    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for f in first.figures:
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
        links: dict[str, str] = {}
        folder = path.with_name(f"{path.stem}_figures")
        for i, f in enumerate(cmp.panes[0].figures, 1):
            name = f"{i:02d}-{slug(Path(f.name).stem)}-{f.hash[:8]}.{f.extension}"
            write_file(folder / name, f.data)
            links[f.hash] = f"{folder.name}/{name}".replace(" ", "%20")
        write_file(path, comparison_markdown(cmp, links))
    return path


__all__ = ["comparison_html", "comparison_markdown", "comparison_pdf", "export_comparison"]
