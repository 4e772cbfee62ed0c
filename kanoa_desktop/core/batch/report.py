"""A batch's report: Markdown (thumbnails beside it), self-contained HTML (thumbnails
embedded), PDF or CSV, by the path's suffix (:func:`write_report`): per item the answer,
tokens, time and cost, the totals, and the failures with their messages; the server, the
model and what was asked (the question and context templates, each item's filled ones in
the CSV). Built as a report document and written by the one report writer
(:mod:`kanoa_desktop.core.reports`), which makes it safe.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kanoa_desktop.core.batch.plan import BatchError, BatchItem
from kanoa_desktop.core.batch.store import ItemResult
from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.history import endings
from kanoa_desktop.core.history.export import usage_line
from kanoa_desktop.core.history.records import safe_endpoint
from kanoa_desktop.core.reports import document as R
from kanoa_desktop.core.reports.writer import write

if TYPE_CHECKING:
    from kanoa_desktop.core.batch.runner import Batch


@dataclass(frozen=True)
class Totals:
    items: int
    done: int
    failed: int
    missing: int  # no result yet (cancelled before they ran)
    prompt_tokens: int
    output_tokens: int
    cost: float
    estimated: bool  # some of the cost is estimated (the server did not count the tokens)
    duration_s: float


def totals(items: Sequence[BatchItem], results: Sequence[ItemResult]) -> Totals:
    done = [r for r in results if r.ok]
    return Totals(
        items=len(items),
        done=len(done),
        failed=len(results) - len(done),
        missing=len(items) - len(results),
        prompt_tokens=sum(r.prompt_tokens or 0 for r in done),
        output_tokens=sum(r.output_tokens or 0 for r in done),
        cost=sum(r.cost or 0.0 for r in done),
        estimated=any(r.estimated and r.cost for r in done),
        duration_s=sum(r.duration_s or 0.0 for r in done),
    )


def _title(batch: Batch) -> str:
    names = ", ".join(s.name for s in batch.sources[:3]) + (" …" if len(batch.sources) > 3 else "")
    return f"Batch: {names}"


def _asked(batch: Batch, results: Sequence[ItemResult]) -> list[tuple[str, str]]:
    """What was asked: the templates, and the question the items were asked when the
    template left it to the default."""
    t = batch.template
    asked = t.question or " / ".join(sorted({r.question for r in results if r.question}))
    pairs = [("Context template", t.context), ("Focus template", t.focus),
             ("Question template" if t.question else "Question", asked)]  # fmt: skip
    return [(label, text) for label, text in pairs if text.strip()]


def _thumb_name(index: int, r: ItemResult) -> str:
    return f"{index:03d}-{hashlib.sha1(r.key.encode()).hexdigest()[:8]}.png"


def report_document(batch: Batch) -> R.Document:
    """The batch's report as a document: server, model and what was asked; the totals;
    the failures; per item its thumbnail, answer and usage (or why it failed); and, for
    CSV, one row per item."""
    results = batch.ordered_results()
    t = totals(batch.items or [], results)
    p = batch.profile
    doc = R.Document(_title(batch), width="60rem", figures="thumbs", data=_csv_table(batch))
    doc.add(
        R.Facts(
            [("Server", f"{safe_endpoint(p.api_base)} (profile {p.name})"),
             ("Model", next((r.model for r in results if r.model), p.model or "-"))]
            + [(label, " ".join(text.split())) for label, text in _asked(batch, results)]
        ),
        R.Heading("Totals"),
        R.Facts(
            [("Items", f"{t.items:,} ({t.done:,} done, {t.failed:,} failed"
                       + (f", {t.missing:,} not run yet" if t.missing else "") + ")"),
             ("Tokens", f"{t.prompt_tokens:,} prompt + {t.output_tokens:,} output"),
             ("Time (sum over items)", f"{t.duration_s:,.1f} s"),
             ("Cost", format_cost(t.cost, t.estimated))],
            cls="totals",
        ),
    )  # fmt: skip
    failures = [r for r in results if not r.ok]
    if failures:
        doc.add(R.Heading("Failures"), R.Items([(r.label, _failure(r)) for r in failures]))
    doc.add(R.Heading("Items"))
    for n, r in enumerate(results, 1):
        if r.ok:
            # How it ended when not plainly (cut at max tokens), as every export says it.
            note = endings.note(r.state, r.finish_reason)
            body: list[R.Block] = [R.Markdown(r.answer, demote=3)]
            body += [R.Paragraph(note, style="note")] if note else []
            body.append(R.Paragraph(usage_line(r), style="small"))
        else:
            error = endings.LABELS[endings.ERROR] + ":"
            body = [R.Paragraph(_failure(r), lead=error, style="note")]
        doc.add(R.Heading(f"{n}. {r.label}", 3))
        if r.thumbnail:
            thumb = R.Figure(r.thumbnail, r.label, file=_thumb_name(n, r), thumb=True)
            doc.add(R.Columns([[thumb], body], cls="item", part="item-body"))
        else:
            doc.add(*body)
    return doc


def _failure(r: ItemResult) -> str:
    return r.error + (f" ({r.hint})" if r.hint else "")


CSV_COLUMNS = (
    "item", "file", "kind", "state", "server", "model", "question", "context",
    "prompt_tokens", "output_tokens", "estimated",
    "ttft_s", "tokens_per_s", "duration_s", "cost", "ending", "error", "answer",
)  # fmt: skip


def _csv_table(batch: Batch) -> R.Table:
    """One row per item (items not run yet have state "pending")."""
    rows = []
    for item in batch.items or ():
        r = batch.results.get(item.key)
        if r is None:
            rows.append([item.label, str(item.path), item.kind, "pending"] + [""] * 14)
            continue
        rows.append(
            [
                r.label, r.path, r.kind, r.state, r.server, r.model, r.question, r.context,
                r.prompt_tokens, r.output_tokens,
                int(r.estimated), _num(r.ttft_s), _num(r.tokens_per_s), _num(r.duration_s),
                f"{r.cost:.8f}" if r.cost is not None else "", endings.label(r.state, r.finish_reason),
                r.error, r.answer,
            ]
        )  # fmt: skip
    return R.Table(CSV_COLUMNS, rows)


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


REPORT_SUFFIXES = (".md", ".html", ".pdf", ".csv")


def write_report(batch: Batch, path: Path | str) -> Path:
    """Write the report by the path's suffix (.md with thumbnails in ``<stem>_thumbs/``,
    .html, .pdf, .csv). Raises BatchError for another suffix or a file it cannot write."""
    return write(report_document(batch), path, error=BatchError)
