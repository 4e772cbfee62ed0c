"""Export a stored conversation as Markdown, self-contained HTML or PDF.

The conversation is built as a report document (:mod:`kanoa_desktop.core.reports`) and
written by the one report writer, which makes every export safe the same way (nothing an
answer, a file name or a server says can run or load anything in a viewer). Plain
synchronous functions (no Qt), so the UI runs them on its thread pool. Each export carries
a reproducibility block: model, server (API base and kind), parameters, figure hashes,
knowledge-base sources, and the kanoa desktop version. The history never holds an API key,
and error messages are scrubbed of keys and ``Bearer`` tokens; endpoints are written
without user info or query.

Markdown writes the figures beside the file in ``<stem>_figures/``; HTML embeds them as
data URLs; PDF draws them. Every function returns the path written and raises
:class:`ExportError` (a KanoaError with a plain message and hint) when the file cannot be
written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kanoa_desktop import __version__
from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.history.endings import note
from kanoa_desktop.core.history.store import StoredConversation, safe_endpoint
from kanoa_desktop.core.reports import document as R
from kanoa_desktop.core.reports.writer import slug, to_markdown, write
from kanoa_desktop.core.safety import scrub_secrets

FORMATS = {"markdown": ".md", "html": ".html", "pdf": ".pdf"}


class ExportError(KanoaError):
    """The export could not be written."""

    title = "Cannot export the conversation"


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


def usage_line(use: Any) -> str:
    """What an answer used, on one line: tokens (marked when estimated), time, speed, time
    to first token, cost (``~`` when estimated), energy. ``use`` is a stored turn or a
    batch item's result; what it does not have is left out."""
    get = lambda name: getattr(use, name, None)  # noqa: E731
    bits = []
    if get("prompt_tokens") is not None:
        est = " (estimated)" if get("estimated") else ""
        bits.append(
            f"{use.prompt_tokens:,} prompt + {get('output_tokens') or 0:,} output tokens{est}"
        )
    if get("duration_s") is not None:
        bits.append(f"{use.duration_s:.1f} s")
    if get("tokens_per_s"):
        bits.append(f"{use.tokens_per_s:.1f} tok/s")
    if get("ttft_s") is not None:
        bits.append(f"TTFT {use.ttft_s:.2f} s")
    if get("cost") is not None:
        bits.append(format_cost(use.cost, bool(get("estimated"))))
    if get("energy_wh") is not None:
        bits.append(f"{use.energy_wh:.2f} Wh")
    return " · ".join(bits)


# --------------------------------------------------------------------------- the document


def figure_block(f: Any, index: int) -> R.Figure:
    """A stored figure as a report figure: its sent bytes, its name, its hash."""
    return R.Figure(
        f.data,
        f.name,
        caption=f"{f.name}  sha256 {f.hash[:16]}…",
        mime=f.mime,
        width=f.width,
        height=f.height,
        file=f"{index:02d}-{slug(f.name.rsplit('.', 1)[0])}-{f.hash[:8]}.{f.extension}",
    )


def inputs_blocks(conv: StoredConversation) -> list[R.Block]:
    """What a conversation was about: its figures, context and the table summary sent."""
    out: list[R.Block] = []
    if conv.figures:
        out.append(R.Heading("Figures"))
        out += [figure_block(f, i) for i, f in enumerate(conv.figures, 1)]
    if conv.context.strip():
        # Markdown: a notebook figure's context holds its cell's code in a fence.
        out += [R.Paragraph("", lead="Context:"), R.Markdown(conv.context, cls="context")]
    if conv.table_summary.strip():
        # The summary is Markdown (headings, lists, tables): rendered, its headings under
        # the section's own.
        out.append(R.Heading("Table summary sent"))
        out.append(R.Markdown(conv.table_summary, demote=1, cls="table-summary"))
    return out


def turn_notes(turn: Any) -> list[R.Block]:
    """How a turn ended (when not plainly) and what it used."""
    note, usage = state_note(turn), usage_line(turn)
    return [R.Paragraph(note, style="note") if note else None,
            R.Paragraph(usage, style="small") if usage else None]  # fmt: skip


def conversation_document(conv: StoredConversation) -> R.Document:
    """The conversation as a report document: inputs, each question and answer, how each
    ended and what it used, its sources, the reproducibility block."""
    doc = R.Document(conv.title)
    doc.add(*inputs_blocks(conv))
    for t in conv.turns:
        doc.add(
            R.Heading(f"Question {t.index + 1}"),
            R.Quote(t.question),
            R.Heading(f"Answer ({t.model or conv.model}, {_when(t.started)})", 3),
            R.Markdown(t.answer),
            *turn_notes(t),
        )
        if t.passages:
            doc.add(
                R.Paragraph("Sources:"),
                R.Items(
                    [f"[{p.get('number')}] {p.get('label') or p.get('file')}" for p in t.passages]
                ),  # fmt: skip
            )
    doc.add(R.Heading("Reproducibility"), R.Facts(reproducibility(conv)))
    return doc


def conversation_markdown(conv: StoredConversation) -> str:
    """The conversation as one Markdown text (figures listed by name, not linked): what
    ``history show`` prints."""
    return to_markdown(conversation_document(conv))


def export_path(path: Path | str, fmt: str | None) -> tuple[Path, str]:
    """The path and format of an export: ``fmt`` ("markdown", "html", "pdf"), or by the
    path's suffix (Markdown for another); the format's suffix added when missing."""
    path = Path(path)
    if fmt is None:
        fmt = {v: k for k, v in FORMATS.items()}.get(path.suffix.lower(), "markdown")
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}.", "Use Markdown, HTML or PDF.")
    if path.suffix.lower() != FORMATS[fmt]:
        path = path.with_name(path.name + FORMATS[fmt])
    return path, fmt


def export(conv: StoredConversation, path: Path | str, fmt: str | None = None) -> Path:
    """Export in ``fmt`` ("markdown", "html", "pdf"), or by the path's suffix."""
    path, fmt = export_path(path, fmt)
    return write(conversation_document(conv), path, fmt, error=ExportError)


__all__ = [
    "ExportError",
    "FORMATS",
    "conversation_document",
    "conversation_markdown",
    "export",
    "export_path",
    "figure_block",
    "inputs_blocks",
    "reproducibility",
    "state_note",
    "turn_notes",
    "usage_line",
]
