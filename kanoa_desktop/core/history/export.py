"""Export a stored conversation as Markdown, self-contained HTML or PDF.

Plain synchronous functions (no Qt), so the UI runs them on its thread pool. Each export
carries a reproducibility block: model, server (API base and kind), parameters, figure
hashes, knowledge-base sources, and the kanoa desktop version. The history never holds an
API key, so no export can contain one; endpoints are written without user info or query.

- :func:`export_markdown` writes ``name.md`` and the figures beside it in ``name_figures/``,
  linked relatively.
- :func:`export_html` writes one ``.html`` file with the figures embedded as data URLs.
  Model text is Markdown rendered by markdown-it-py with raw HTML disabled (it is escaped),
  every image in it rendered as a plain link (the export never embeds or fetches what an
  answer names) and unsafe link schemes (``javascript:``, ``vbscript:``, ``file:``,
  ``data:``) refused, so an answer cannot inject markup or script.
- Every export (comparisons too) defangs images in model and user text (inline,
  reference, collapsed, shortcut and HTML ``<img>``; see
  :func:`kanoa_desktop.core.safety.defang_images`), and scrubs API keys and ``Bearer``
  tokens from error messages.
- :func:`export_pdf` writes a PDF with fpdf2 (pure Python) using the DejaVu fonts that
  matplotlib ships, so Greek letters and math symbols print.

Every function returns the path written and raises :class:`ExportError` (a KanoaError with
a plain message and hint) when the file cannot be written.
"""

from __future__ import annotations

import html
import io
import re
import time
from pathlib import Path
from typing import Any

from kanoa_desktop import __version__
from kanoa_desktop.core.config.atomic import write_atomic
from kanoa_desktop.core.config.disk import os_reason
from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.history.endings import note
from kanoa_desktop.core.history.store import StoredConversation, safe_endpoint
from kanoa_desktop.core.reports.markdown import markdown_renderer, render_markdown
from kanoa_desktop.core.safety import defang_images, escape_control, scrub_secrets

FORMATS = {"markdown": ".md", "html": ".html", "pdf": ".pdf"}


class ExportError(KanoaError):
    """The export could not be written."""

    title = "Cannot export the conversation"


# --------------------------------------------------------------------------- shared


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def state_note(turn: Any) -> str:
    """How a stored turn ended (:mod:`~kanoa_desktop.core.history.endings`), the error's
    message with it; "" for a finished answer."""
    error = (turn.error_title or "the answer failed") if turn.state == "error" else ""
    return scrub_secrets(note(turn.state, turn.finish_reason, error, turn.error_message or ""))


def reproducibility(conv: StoredConversation) -> list[tuple[str, str]]:
    """The reproducibility block as (label, value) rows, in a fixed order."""
    params = ", ".join(f"{k}={v}" for k, v in sorted(conv.params.items()) if v is not None)
    models = sorted({t.model for t in conv.turns if t.model} | ({conv.model} - {""}))
    server = safe_endpoint(conv.endpoint) if conv.endpoint else "-"
    if conv.server_kind:
        server += f" ({conv.server_kind})"
    rows = [
        ("Model", ", ".join(models) or "-"),
        ("Server", server),
        ("Profile", conv.profile_name or "-"),
        ("Parameters", params or "-"),
        ("Figures (sha256 of the sent bytes)", ""),
    ]
    rows += [
        (
            f"  {f.name}",
            f"{f.hash} ({f.mime}, {f.width}×{f.height}, {f.size_bytes:,} bytes)",
        )
        for f in conv.figures
    ] or [("  (none)", "")]
    rows.append(("Table", conv.table_name or "-"))
    rows.append(("Knowledge-base sources", "; ".join(conv.sources) or "-"))
    rows.append(("Started", _when(conv.created)))
    rows.append(("Exported", _when(time.time())))
    rows.append(("kanoa desktop", __version__))
    return rows


def usage_line(turn: Any) -> str:
    bits = []
    if turn.prompt_tokens is not None:
        est = " (estimated)" if turn.estimated else ""
        bits.append(
            f"{turn.prompt_tokens:,} prompt + {turn.output_tokens or 0:,} output tokens{est}"
        )
    if turn.tokens_per_s:
        bits.append(f"{turn.tokens_per_s:.1f} tok/s")
    if turn.ttft_s is not None:
        bits.append(f"TTFT {turn.ttft_s:.2f} s")
    if turn.cost is not None:
        bits.append(format_cost(turn.cost, turn.estimated))
    if turn.energy_wh is not None:
        bits.append(f"{turn.energy_wh:.2f} Wh")
    return " · ".join(bits)


def conversation_markdown(
    conv: StoredConversation, figure_links: dict[str, str] | None = None
) -> str:
    """The conversation as one Markdown document. ``figure_links`` maps figure hashes to
    the link to use for each image (paths or data URLs); without it figures are listed."""
    out = [f"# {safe_md(one_line(conv.title))}", "", *inputs_markdown(conv, figure_links)]
    for t in conv.turns:
        out += [f"## Question {t.index + 1}", "", *quote_md(t.question), ""]
        out += [f"### Answer ({t.model or conv.model}, {_when(t.started)})", ""]
        out += [safe_md(t.answer.strip()) or "*(no text)*", ""]
        out += [f"*{line}*\n" for line in (state_note(t), usage_line(t)) if line]
        if t.passages:
            out += ["Sources:", ""]
            out += [
                f"- [{p.get('number')}] "
                + safe_md(escape_control(str(p.get("label") or p.get("file"))))
                for p in t.passages
            ]
            out.append("")
    out += ["## Reproducibility", ""]
    out += [
        f"- **{k.strip()}**: {v}" if v else f"- **{k.strip()}**" for k, v in reproducibility(conv)
    ]
    out.append("")
    return "\n".join(out)


def inputs_markdown(conv: StoredConversation, figure_links: dict[str, str] | None) -> list[str]:
    """What a conversation was about, in Markdown: figures (linked, else listed), context,
    the table summary sent."""
    out = ["## Figures", ""] if conv.figures else []
    for f in conv.figures:
        link, alt = (figure_links or {}).get(f.hash), one_line(f.name).replace("]", "\\]")
        out += [f"![{alt}]({link})" if link else f"- {alt} (`{f.hash[:12]}`)", ""]
    if conv.context.strip():
        out += ["**Context:** " + safe_md(conv.context.strip()), ""]
    if conv.table_summary.strip():
        out += ["## Table summary sent", "", "```text", conv.table_summary.strip("\n"), "```", ""]
    return out


def quote_md(question: str) -> list[str]:
    return ["> " + line if line else ">" for line in safe_md(question.strip() or "-").splitlines()]


def figure_links(figures: list, path: Path) -> dict[str, str]:
    """Write ``figures`` in ``<stem>_figures/`` beside the Markdown file ``path``; their
    relative, URL-safe links by hash."""
    links: dict[str, str] = {}
    folder = path.with_name(f"{path.stem}_figures")
    for i, f in enumerate(figures, 1):
        name = f"{i:02d}-{slug(Path(f.name).stem)}-{f.hash[:8]}.{f.extension}"
        write_file(folder / name, f.data)
        # Spaces and brackets would break the Markdown link.
        links[f.hash] = f"{folder.name}/{name}".replace(" ", "%20")
    return links


def safe_md(text: str) -> str:
    # Markdown viewers render images and raw HTML: nothing named by text is loaded.
    return defang_images(text, escape_html=True)


def one_line(text: str) -> str:
    return " ".join(text.split())


def slug(text: str) -> str:
    s = re.sub(r"[^\w.-]+", "-", text, flags=re.UNICODE).strip("-.")
    return s[:60] or "conversation"


def write_file(path: Path, data: bytes | str) -> None:
    """Write one export file whole, or raise ExportError saying why (a full disk leaves no
    half-written file behind)."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise ExportError(
            f"{path} could not be written: {os_reason(exc, path.parent)}.",
            "Choose another folder, or free some space there.",
        ) from exc


# --------------------------------------------------------------------------- Markdown


def export_markdown(conv: StoredConversation, path: Path | str) -> Path:
    """Write ``path`` (.md) and the figures in ``<stem>_figures/`` beside it."""
    path = Path(path)
    write_file(path, conversation_markdown(conv, figure_links(conv.figures, path)))
    return path


# --------------------------------------------------------------------------- HTML


HTML_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:52rem;margin:2rem auto;
padding:0 1rem;line-height:1.5;color:#222}
img{max-width:100%;height:auto;border:1px solid #ddd}
blockquote{border-left:3px solid #bbb;margin:0;padding:0 1rem;color:#444}
pre{background:#f5f5f5;padding:.6rem;overflow:auto}code{background:#f5f5f5}
.note{color:#8a5a00}.usage{color:#666;font-size:.85em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;vertical-align:top}
.repro td:first-child{font-weight:600;white-space:nowrap}
"""


def html_start(title: str, conv: StoredConversation, css: str = HTML_CSS) -> list[str]:
    """An HTML export's head (nothing loads from outside), its title and what the
    conversation was about: figures as data URLs, context, the table summary sent."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{e(title)}</title><style>{css}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ] + (["<h2>Figures</h2>"] if conv.figures else [])
    out += [f'<figure><img src="{e(f.data_url())}" alt="{e(f.name)}" width="{f.width or ""}" '
            f'height="{f.height or ""}"><figcaption>{e(f.name)} <code>{e(f.hash[:12])}</code>'
            "</figcaption></figure>" for f in conv.figures]  # fmt: skip
    if conv.context.strip():
        out.append(f"<p><strong>Context:</strong> {e(conv.context.strip())}</p>")
    if conv.table_summary.strip():
        out.append(f"<h2>Table summary sent</h2><pre>{e(conv.table_summary.strip())}</pre>")
    return out


def conversation_html(conv: StoredConversation) -> str:
    """The conversation as one self-contained HTML document (figures as data URLs)."""
    md = markdown_renderer()
    e = html.escape
    out = html_start(conv.title, conv)
    for t in conv.turns:
        out.append(f"<h2>Question {t.index + 1}</h2>")
        out.append(f"<blockquote>{e(t.question.strip() or '-')}</blockquote>".replace("\n", "<br>"))
        out.append(f"<h3>Answer ({e(t.model or conv.model)}, {e(_when(t.started))})</h3>")
        out.append(f'<div class="answer">{md.render(defang_images(t.answer))}</div>')
        out += [f'<p class="{cls}"><em>{e(line)}</em></p>'
                for cls, line in (("note", state_note(t)), ("usage", usage_line(t))) if line]  # fmt: skip
        if t.passages:
            items = "".join(
                f"<li>[{e(str(p.get('number')))}] {e(str(p.get('label') or p.get('file')))}</li>"
                for p in t.passages
            )
            out.append(f"<p>Sources:</p><ul>{items}</ul>")
    out.append('<h2>Reproducibility</h2><table class="repro">')
    out += [f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in reproducibility(conv)]
    out.append("</table></body></html>")
    return "\n".join(out)


def export_html(conv: StoredConversation, path: Path | str) -> Path:
    """Write one self-contained ``.html`` file."""
    path = Path(path)
    write_file(path, conversation_html(conv))
    return path


# --------------------------------------------------------------------------- PDF


def pdf_fonts() -> tuple[Path | None, Path | None]:
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    except ImportError:
        return None, None
    sans, mono = folder / "DejaVuSans.ttf", folder / "DejaVuSansMono.ttf"
    return (sans if sans.exists() else None), (mono if mono.exists() else None)


def pdf_document(title: str) -> tuple[Any, str, str, Any]:
    """An A4 fpdf2 document with the DejaVu fonts when found: (pdf, text font, code font,
    ``text(s)``, which makes ``s`` printable in the text font)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(title)
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

    def text(s: str) -> str:  # the core fonts (no DejaVu found) are Latin-1 only
        return s if family == "dejavu" else s.encode("latin-1", "replace").decode("latin-1")

    return pdf, family, code, text


def conversation_pdf(conv: StoredConversation) -> bytes:
    """The conversation as PDF bytes (A4): figures, questions, answers, reproducibility."""
    from fpdf import FontFace, TextStyle

    pdf, family, code, text = pdf_document(conv.title)

    def para(s: str, size: float = 10, style: str = "") -> None:
        pdf.set_font(family, style, size)
        pdf.multi_cell(0, size * 0.5, text(s), new_x="LMARGIN", new_y="NEXT")

    def markdown_block(s: str, size: float = 10, headings: dict | None = None) -> None:
        body = pdf_html(render_markdown(s))
        pdf.set_font(family, "", size)
        styles = {
            "code": FontFace(family=code),
            "pre": TextStyle(font_family=code, t_margin=2, b_margin=2),
            **(headings or {}),
        }
        try:
            pdf.write_html(text(body), font_family=family, tag_styles=styles)
        except Exception:  # noqa: BLE001 - fpdf2's HTML subset may refuse odd markup
            para(s, size)  # the text matters more than its formatting
        pdf.ln(2)

    pdf.add_page()
    para(conv.title, 16, "B")
    pdf.ln(2)
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for f in conv.figures:
        w = min(width, (f.width or 600) * 0.2)  # ~5 px per mm, never wider than the page
        try:
            pdf.image(io.BytesIO(f.data), w=w)
        except Exception:  # noqa: BLE001 - an image fpdf2 cannot place is named instead
            para(f"[figure {f.name} could not be drawn]", 9, "I")
        para(f"{f.name}  sha256 {f.hash[:16]}…", 8, "I")
        pdf.ln(2)
    if conv.context.strip():
        para("Context: " + conv.context.strip())
    if conv.table_summary.strip():
        # The summary is Markdown (headings, lists, tables): render it, small but readable,
        # with its headings below the section's own.
        para("Table summary sent", 12, "B")
        sub = {
            tag: TextStyle(font_family=family, font_style="B", font_size_pt=pt, t_margin=3,
                           b_margin=1)
            for tag, pt in (("h1", 11), ("h2", 10.5), ("h3", 9.5), ("h4", 9))
        }  # fmt: skip
        markdown_block(conv.table_summary.strip(), 8.5, sub)
    for t in conv.turns:
        pdf.ln(2)
        para(f"Question {t.index + 1}", 12, "B")
        para(t.question.strip() or "-", 10, "I")
        para(f"Answer ({t.model or conv.model}, {_when(t.started)})", 11, "B")
        markdown_block(t.answer or "(no text)")
        for line in (state_note(t), usage_line(t)):
            if line:
                para(line, 8, "I")
        if t.passages:
            para(
                "Sources: "
                + "; ".join(
                    f"[{p.get('number')}] {p.get('label') or p.get('file')}" for p in t.passages
                ),
                8,
            )
    pdf.ln(4)
    para("Reproducibility", 12, "B")
    for k, v in reproducibility(conv):
        para(f"{k}: {v}" if v else k, 8)
    return bytes(pdf.output())


_LI_P_OPEN = re.compile(r"<li>\s*<p>")
_LI_P_CLOSE = re.compile(r"</p>\s*</li>")


def pdf_html(body: str) -> str:
    # fpdf2's HTML subset has no <p> inside <li> spacing rules or <del>; simplify. Two
    # fixed-token patterns instead of one lazy "(.*?)" across the body: linear.
    body = _LI_P_CLOSE.sub("</li>", _LI_P_OPEN.sub("<li>", body))
    return body.replace("<del>", "").replace("</del>", "")


def export_pdf(conv: StoredConversation, path: Path | str) -> Path:
    """Write a ``.pdf``."""
    path = Path(path)
    write_file(path, conversation_pdf(conv))
    return path


def export(conv: StoredConversation, path: Path | str, fmt: str | None = None) -> Path:
    """Export in ``fmt`` ("markdown", "html", "pdf"), or by the path's suffix."""
    path = Path(path)
    if fmt is None:
        fmt = {v: k for k, v in FORMATS.items()}.get(path.suffix.lower(), "markdown")
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}.", "Use Markdown, HTML or PDF.")
    if path.suffix.lower() != FORMATS[fmt]:
        path = path.with_name(path.name + FORMATS[fmt])
    return {"markdown": export_markdown, "html": export_html, "pdf": export_pdf}[fmt](conv, path)


__all__ = [
    "ExportError",
    "FORMATS",
    "conversation_html",
    "conversation_markdown",
    "conversation_pdf",
    "export",
    "export_html",
    "export_markdown",
    "export_pdf",
    "reproducibility",
]
