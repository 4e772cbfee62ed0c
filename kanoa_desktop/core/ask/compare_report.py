"""Export a stored comparison as Markdown, self-contained HTML or PDF.

The inputs once, per question a comparison table and each model's answer (side by side in
HTML), and one reproducibility block per model; built as a report document and written by
the one report writer (:mod:`kanoa_desktop.core.reports`), safe as every export is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kanoa_desktop.core.ask.compare import (
    comparison_table,
    pane_labels,
    profiles_for_stored,
    stored_results,
)
from kanoa_desktop.core.history.export import (
    ExportError,
    export_path,
    inputs_blocks,
    reproducibility,
    turn_notes,
)
from kanoa_desktop.core.history.store import StoredConversation
from kanoa_desktop.core.reports import document as R
from kanoa_desktop.core.reports.writer import to_markdown, write


def _comparison_parts(cmp: Any) -> tuple[list[str], list[list], list[Any]]:
    """Pane labels (from the profiles the panes were asked with), the table rows per
    question, and the first pane (for the inputs)."""
    labels = pane_labels(profiles_for_stored(cmp.panes))
    return labels, stored_results(cmp.panes), cmp.panes[0]


def _pane_turns(conv: StoredConversation) -> list[Any]:
    return [t for t in conv.turns if t.finish_reason != "retried"]


def comparison_document(cmp: Any) -> R.Document:
    """A stored comparison (``HistoryStore.load_comparison``) as a report document."""
    labels, rounds, first = _comparison_parts(cmp)
    doc = R.Document(cmp.title, width="110rem").add(*inputs_blocks(first))
    for q, rows in enumerate(rounds):
        answered = [(i, c, _pane_turns(c)[q]) for i, c in enumerate(cmp.panes)
                    if len(_pane_turns(c)) > q]  # fmt: skip
        question = answered[0][2].question if answered else ""
        panes = [
            [
                R.Heading(f"{labels[i]} ({t.model or conv.model})", 3),
                # Answer headings nest under the pane's own (## becomes #####).
                R.Markdown(t.answer, demote=3),
                *(n for n in turn_notes(t) if n is not None),
            ]
            for i, conv, t in answered
        ]
        doc.add(R.Heading(f"Question {q + 1}"), R.Quote(question), comparison_table(rows),
                R.Columns(panes))  # fmt: skip
    doc.add(R.Heading("Reproducibility"))
    for i, conv in enumerate(cmp.panes):
        doc.add(R.Heading(labels[i], 3), R.Facts(reproducibility(conv)))
    return doc


def comparison_markdown(cmp: Any) -> str:
    """A stored comparison as one Markdown text (figures listed by name)."""
    return to_markdown(comparison_document(cmp))


def export_comparison(cmp: Any, path: Path | str, fmt: str | None = None) -> Path:
    """Export a stored comparison in ``fmt`` ("markdown", "html", "pdf"), or by the path's
    suffix; Markdown writes the figures beside it in ``<stem>_figures/``."""
    path, fmt = export_path(path, fmt)
    return write(comparison_document(cmp), path, fmt, error=ExportError)


__all__ = ["comparison_document", "comparison_markdown", "export_comparison"]
