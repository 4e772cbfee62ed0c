"""The one writer of reports: a :class:`~kanoa_desktop.core.reports.document.Document` as
Markdown, self-contained HTML, PDF (:mod:`~kanoa_desktop.core.reports.pdf`) or CSV.

Safety is a property of this writer, not of each report or format. Every piece of text is
shown as exactly that text (escaped for Markdown by ``md_text``, for HTML and the PDF's
HTML subset by ``_h``, for a CSV cell by :func:`csv_cell`), control characters from
outside shown escaped; Markdown from outside goes through
:func:`~kanoa_desktop.core.reports.markdown.safe_markdown` in every format; the only
images are the document's own figures (files beside a Markdown report, data URLs in HTML,
drawn in a PDF); an HTML report's Content Security Policy lets it load nothing; a CSV
cell never starts as a formula (OWASP).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kanoa_desktop.core.config.atomic import write_atomic
from kanoa_desktop.core.config.disk import os_reason
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.reports import document as D
from kanoa_desktop.core.reports.markdown import md_text, render_markdown, safe_markdown
from kanoa_desktop.core.safety import code_fence, escape_control, replace_surrogates

#: File suffixes and the format each is written in.
SUFFIXES = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".pdf": "pdf",
            ".csv": "csv"}  # fmt: skip
_NAMES = {"md": "Markdown (.md)", "html": "HTML (.html)", "pdf": "PDF (.pdf)", "csv": "CSV (.csv)"}


class ReportError(KanoaError):
    """A report could not be written."""

    title = "Cannot write the report"


def plain(text: Any) -> str:
    """Outside text with control characters shown escaped (newlines and tabs kept) and
    invalid Unicode replaced: what every format starts from."""
    return escape_control(replace_surrogates("" if text is None else str(text)), keep="\n\t")


# --------------------------------------------------------------------------- Markdown


def to_markdown(doc: D.Document, links: dict[int, str] | None = None) -> str:
    """The document as Markdown, its title the first heading (none when empty). ``links``
    maps ``id(figure)`` to its file's relative link (:func:`write`); a figure without one
    is listed by its caption."""
    out = [f"# {md_text(doc.title, one_line=True)}", ""] if doc.title else []
    for block in doc.blocks:
        out += _md(block, links or {})
    return "\n".join(out).rstrip("\n") + "\n"


def block_markdown(block: D.Block) -> str:
    """One block as Markdown (a table printed on its own)."""
    return "\n".join(_md(block, {})).rstrip("\n")


def _md(b: D.Block, links: dict[int, str]) -> list[str]:
    line = lambda s: md_text(s, one_line=True)  # noqa: E731
    if isinstance(b, D.Heading):
        return ["#" * min(6, max(1, b.level)) + " " + line(b.text), ""]
    if isinstance(b, D.Paragraph):
        text = md_text(str(b.text).strip())
        text = f"*{text}*" if b.style and text else text
        lead = f"**{line(b.lead)}** " if b.lead else ""
        return [lead + text, ""] if lead or text else []
    if isinstance(b, D.Quote):
        lines = md_text(str(b.text).strip() or "-").split("\n")
        return [f"> {x}" if x.strip() else ">" for x in lines] + [""]
    if isinstance(b, D.Markdown):
        text = safe_markdown(b.text.strip(), demote=b.demote) if b.text.strip() else ""
        return [text or f"*{line(b.empty)}*", ""]
    if isinstance(b, D.Code):
        body = plain(b.text).strip("\n")
        fence = code_fence(body)
        return [fence + re.sub(r"[^A-Za-z0-9_+-]", "", b.lang), body, fence, ""]
    if isinstance(b, D.Figure):
        link = links.get(id(b))
        if link is None:
            return [f"- {line(b.caption or b.name)}", ""]
        return [f"![{line(b.name)}]({link})", ""] + (
            [f"*{line(b.caption)}*", ""] if b.caption else []
        )
    if isinstance(b, D.Table):
        bold = lambda i, s: f"**{s}**" if i == 0 and b.first_column == "b" and s else s  # noqa: E731
        out = ["| " + " | ".join(line(h) for h in b.headers) + " |",
               "|" + "|".join("---:" if a == "r" else "---" for a in _align(b)) + "|"]  # fmt: skip
        out += [
            "| " + " | ".join(bold(i, line(_s(v))) for i, v in enumerate(r)) + " |" for r in b.rows
        ]
        return out + [""]
    if isinstance(b, D.Facts):
        return [
            f"- **{line(k.strip())}**" + (f": {line(v)}" if str(v) else "") for k, v in b.rows
        ] + [""]
    if isinstance(b, D.Items):
        return [
            f"- **{line(i[0])}**: {line(i[1])}" if isinstance(i, tuple)
            else "- " + md_text(i, one_line=True, block_start=True)
            for i in b.items
        ] + [""]  # fmt: skip
    if isinstance(b, D.Columns):
        return [x for column in b.columns for inner in column for x in _md(inner, links)]
    raise TypeError(f"not a report block: {b!r}")


def _s(v: Any) -> str:
    return "" if v is None else str(v)


def _align(t: D.Table) -> str:
    return (t.align or "").ljust(len(t.headers), "l")[: len(t.headers)]


# --------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:WIDTH;margin:2rem auto;
padding:0 1rem;line-height:1.5;color:#222}
img{max-width:100%;height:auto;border:1px solid #ddd}img.thumb{max-width:192px}
blockquote{border-left:3px solid #bbb;margin:0;padding:0 1rem;color:#444}
pre{background:#f5f5f5;padding:.6rem;overflow:auto;white-space:pre-wrap}code{background:#f5f5f5}
.note{color:#8a5a00}.small{color:#666;font-size:.85em}.num{text-align:right}
table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.2rem .5rem;vertical-align:top;text-align:left}
.repro td:first-child{font-weight:600;white-space:nowrap}
.panes{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:1rem}
.pane{border:1px solid #ddd;padding:0 .8rem}
.item{display:flex;gap:1rem;border-top:1px solid #ddd;padding-top:.5rem}
"""
#: Nothing loads from outside: images only as data URLs, styles only inline.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def _h(text: Any) -> str:
    """Outside text as HTML text: escaped, control characters shown, lines kept."""
    return html.escape(plain(text), quote=True).replace("\n", "<br>")


def _cls(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "", name)


def to_html(doc: D.Document) -> str:
    """The document as one self-contained HTML page: figures as data URLs, and a Content
    Security Policy under which it loads nothing."""
    css = CSS.replace("WIDTH", re.sub(r"[^0-9.a-z%]", "", doc.width))
    head = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            f"<title>{_h(doc.title)}</title><style>{css}</style></head><body>")  # fmt: skip
    body = [f"<h1>{_h(doc.title)}</h1>"] + [html_block(b) for b in doc.blocks]
    return "\n".join([head, *body, "</body></html>"])


def html_block(b: D.Block) -> str:
    """One block as HTML (also the PDF's input: fpdf2 reads ``align`` and ``width``)."""
    if isinstance(b, D.Heading):
        n = min(6, max(1, b.level))
        return f"<h{n}>{_h(b.text)}</h{n}>"
    if isinstance(b, D.Paragraph):
        text = _h(str(b.text).strip())
        text = f"<em>{text}</em>" if b.style and text else text
        lead = f"<strong>{_h(b.lead)}</strong> " if b.lead else ""
        cls = f' class="{b.style}"' if b.style in ("note", "small") else ""
        return f"<p{cls}>{lead}{text}</p>" if lead or text else ""
    if isinstance(b, D.Quote):
        return f"<blockquote>{_h(str(b.text).strip() or '-')}</blockquote>"
    if isinstance(b, D.Markdown):
        if not b.text.strip():
            return f"<p><em>{_h(b.empty)}</em></p>"
        return f'<div class="{_cls(b.cls)}">{render_markdown(b.text, demote=b.demote)}</div>'
    if isinstance(b, D.Code):
        return f"<pre><code>{html.escape(plain(b.text).strip(chr(10)))}</code></pre>"
    if isinstance(b, D.Figure):
        mime = b.mime if b.mime in _IMAGE_TYPES else "image/png"
        src = f"data:{mime};base64,{base64.b64encode(b.data).decode('ascii')}"
        size = "".join(
            f' {k}="{int(v)}"' for k, v in (("width", b.width), ("height", b.height)) if v
        )
        cls = ' class="thumb"' if b.thumb else ""
        caption = f"<figcaption>{_h(b.caption)}</figcaption>" if b.caption else ""
        return f'<figure><img{cls} src="{src}" alt="{_h(b.name)}"{size}>{caption}</figure>'
    if isinstance(b, D.Table):
        align, n = _align(b), len(b.headers)
        w = [f' width="{int(x)}%"' for x in b.widths] if len(b.widths) == n else [""] * n
        head = "".join(f"<th{w[i]}>{_h(h)}</th>" for i, h in enumerate(b.headers))
        rows = [f"<tr>{head}</tr>"]
        for r in b.rows:
            cells = [
                f"<th>{_h(_s(v))}</th>" if i == 0 and b.first_column == "b"
                else f'<td class="num" align="right">{_h(_s(v))}</td>' if align[i : i + 1] == "r"
                else f"<td>{_h(_s(v))}</td>"
                for i, v in enumerate(r)
            ]  # fmt: skip
            rows.append("<tr>" + "".join(cells) + "</tr>")
        return "<table>" + "".join(rows) + "</table>"
    if isinstance(b, D.Facts):
        rows = "".join(f"<tr><td>{_h(k.strip())}</td><td>{_h(v)}</td></tr>" for k, v in b.rows)
        return f'<table class="{_cls(b.cls)}">{rows}</table>'
    if isinstance(b, D.Items):
        items = "".join(f"<li><strong>{_h(i[0])}</strong>: {_h(i[1])}</li>" if isinstance(i, tuple)
                        else f"<li>{_h(i)}</li>" for i in b.items)  # fmt: skip
        return f"<ul>{items}</ul>" if items else ""
    if isinstance(b, D.Columns):
        parts = [f'<div class="{_cls(b.part)}">' + "\n".join(map(html_block, column)) + "</div>"
                 for column in b.columns]  # fmt: skip
        return f'<div class="{_cls(b.cls)}">' + "\n".join(parts) + "</div>"
    raise TypeError(f"not a report block: {b!r}")


# --------------------------------------------------------------------------- CSV

# OWASP (CSV injection): a cell a spreadsheet could read as a formula or a command starts
# with one of these (the full-width forms are read as the same by some spreadsheets).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_PLAIN_NUMBER = re.compile(r"[-+]?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


class Number(str):
    """Text the app read as a number (``-700``, ``0.80``): a CSV cell keeps it as it is
    written, so a spreadsheet reads a number; anything else in it is text like any other."""


def csv_cell(value: Any) -> str | int | float:
    """One CSV cell: numbers the app computed (and :class:`Number` text that is a plain
    number) as they are; other text with control characters (but line breaks and tabs)
    shown escaped, and a ``'`` before text a spreadsheet could read as a formula
    (starting, after blanks, with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return)."""
    if value is None or isinstance(value, bool | int | float):
        return "" if value is None else int(value) if isinstance(value, bool) else value
    if isinstance(value, Number) and _PLAIN_NUMBER.fullmatch(value):
        return str(value)
    text = plain(str(value).replace("\r\n", "\n"))
    if text.startswith(_FORMULA_START) or text.lstrip(" \n").startswith(_FORMULA_START):
        return "'" + text
    return text


def to_csv(table: D.Table) -> str:
    """The table as CSV: headers, then one line per row, every cell through csv_cell."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerows([[csv_cell(v) for v in row] for row in [table.headers, *table.rows]])
    return buf.getvalue()


# --------------------------------------------------------------------------- files


def slug(text: str, default: str = "figure") -> str:
    """A file-name-safe form of ``text`` (letters, digits, ``.``, ``_``, ``-``)."""
    return re.sub(r"[^\w.-]+", "-", text, flags=re.UNICODE).strip("-.")[:60] or default


def write_file(path: Path, data: bytes | str, error: type[KanoaError] = ReportError) -> None:
    """Write one file whole (a full disk leaves no half-written file behind), or raise
    ``error`` saying why and what to do."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise error(
            f"{escape_control(str(path))} could not be written: "
            f"{escape_control(os_reason(exc, path.parent))}.",
            "Choose another folder, or free some space there.",
        ) from exc


def format_of(
    path: Path | str, fmt: str | None = None, *, formats: Sequence[str] = tuple(_NAMES),
    error: type[KanoaError] = ReportError,
) -> str:  # fmt: skip
    """The format ``path`` is written in: ``fmt`` ("md", "html", "pdf", "csv"), or by its
    suffix when None. Raises ``error`` naming the ``formats`` a report is written in when
    it is another."""
    path = Path(path)
    kind = {"markdown": "md"}.get(fmt or "", fmt) or SUFFIXES.get(path.suffix.lower())
    if kind not in _NAMES or kind not in formats:
        allowed = [v for k, v in _NAMES.items() if k in formats]
        raise error(
            f"{escape_control(path.name)}: this report is written as {', '.join(allowed[:-1])} "
            f"or {allowed[-1]}.",
            "Name the file with one of these extensions.",
        )
    return kind


def write(
    doc: D.Document, path: Path | str, fmt: str | None = None, *,
    error: type[KanoaError] = ReportError, formats: Sequence[str] = tuple(_NAMES),
) -> Path:  # fmt: skip
    """Write ``doc`` to ``path`` in ``fmt`` ("md", "html", "pdf", "csv"; by the suffix when
    None; one of ``formats``, CSV only when the document has ``data``). Markdown writes the
    figures in ``<stem>_<doc.figures>/`` beside it, linked relatively; CSV writes
    ``doc.data``. Raises ``error`` for another format or a file that cannot be written;
    returns the path written."""
    path = Path(path)
    if doc.data is None:
        formats = [k for k in formats if k != "csv"]
    kind = format_of(path, fmt, formats=formats, error=error)
    if kind == "html":
        data: str | bytes = to_html(doc)
    elif kind == "csv":
        data = to_csv(doc.data)  # type: ignore[arg-type]
    elif kind == "pdf":
        from kanoa_desktop.core.reports.pdf import to_pdf

        data = to_pdf(doc)
    else:
        data = to_markdown(doc, _write_figures(doc, path, error))
    write_file(path, data, error)
    return path


def _write_figures(doc: D.Document, path: Path, error: type[KanoaError]) -> dict[int, str]:
    """Each figure in ``<stem>_<doc.figures>/`` beside ``path``; its relative, URL-quoted
    link by ``id(figure)``."""
    folder, links = path.with_name(f"{path.stem}_{doc.figures}"), {}
    for i, f in enumerate(doc.figures_in(), 1):
        ext = {"image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}.get(f.mime, "png")
        name = slug(f.file) if f.file else f"{i:02d}-{slug(Path(f.name).stem)}.{ext}"
        write_file(folder / name, f.data, error)
        links[id(f)] = quote(f"{folder.name}/{name}")
    return links


__all__ = ["CSP", "SUFFIXES", "Number", "ReportError", "block_markdown", "csv_cell", "format_of",
           "html_block", "plain", "slug", "to_csv", "to_html", "to_markdown", "write", "write_file"]  # fmt: skip
