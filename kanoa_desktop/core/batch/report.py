"""A batch's reports: Markdown (thumbnails beside it), self-contained HTML (thumbnails
embedded) or CSV, by the path's suffix (:func:`write_report`): per item the answer,
tokens, time and cost, the totals, and the failures with their messages; the server, the
model and what was asked (the question and context templates, each item's filled ones in
the CSV).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kanoa_desktop.core.batch.plan import BatchError, BatchItem
from kanoa_desktop.core.batch.store import ItemResult
from kanoa_desktop.core.config.atomic import write_atomic
from kanoa_desktop.core.config.disk import os_reason
from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.history.records import safe_endpoint
from kanoa_desktop.core.reports.markdown import demote_headings

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
        duration_s=sum(r.duration_s or 0.0 for r in done),
    )


def _usage(r: ItemResult) -> str:
    bits = []
    if r.prompt_tokens is not None:
        est = "~" if r.estimated else ""
        bits.append(
            f"{est}{r.prompt_tokens:,} prompt + {est}{r.output_tokens or 0:,} output tokens"
        )
    if r.duration_s is not None:
        bits.append(f"{r.duration_s:.1f} s")
    if r.tokens_per_s:
        bits.append(f"{r.tokens_per_s:.1f} tok/s")
    if r.cost is not None:
        bits.append(format_cost(r.cost))
    return " · ".join(bits)


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


def report_markdown(batch: Batch, thumb_folder: str | None = None) -> str:
    """The report as Markdown; ``thumb_folder`` is where :func:`write_report` put the
    thumbnails (relative), else none are linked."""
    results = batch.ordered_results()
    t = totals(batch.items or [], results)
    p = batch.profile
    out = [f"# {_title(batch)}", ""]
    out += [
        f"- **Server**: {safe_endpoint(p.api_base)} (profile {p.name})",
        f"- **Model**: {next((r.model for r in results if r.model), p.model or '-')}",
    ]
    for label, text in _asked(batch, results):
        out.append(f"- **{label}**: {' '.join(text.split())}")
    out += [
        "",
        "## Totals",
        "",
        f"- **Items**: {t.items:,} ({t.done:,} done, {t.failed:,} failed"
        + (f", {t.missing:,} not run yet" if t.missing else "")
        + ")",
        f"- **Tokens**: {t.prompt_tokens:,} prompt + {t.output_tokens:,} output",
        f"- **Time** (sum over items): {t.duration_s:,.1f} s",
        f"- **Cost**: {format_cost(t.cost)}",
        "",
    ]
    failures = [r for r in results if not r.ok]
    if failures:
        out += ["## Failures", ""]
        out += [
            f"- **{r.label}**: {r.error}" + (f" *{r.hint}*" if r.hint else "") for r in failures
        ]
        out.append("")
    out += ["## Items", ""]
    for n, r in enumerate(results, 1):
        out += [f"### {n}. {r.label}", ""]
        if r.thumbnail and thumb_folder:
            out += [f"![{r.label}]({thumb_folder}/{_thumb_name(n, r)})", ""]
        if r.ok:
            out += [demote_headings(r.answer.strip()) or "*(no text)*", "", f"*{_usage(r)}*", ""]
        else:
            out += [f"**Failed:** {r.error}" + (f" *{r.hint}*" if r.hint else ""), ""]
    return "\n".join(out)


def report_html(batch: Batch) -> str:
    """The report as one self-contained HTML page (thumbnails embedded)."""
    from kanoa_desktop.core.reports.markdown import render_markdown

    e = html.escape
    results = batch.ordered_results()
    t = totals(batch.items or [], results)
    css = (
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
        "line-height:1.5;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:.2rem .5rem;vertical-align:top;text-align:left}.num{text-align:right}"
        ".fail{color:#a40000}.item{display:flex;gap:1rem;border-top:1px solid #ddd;"
        "padding-top:.5rem}.item img{max-width:192px;border:1px solid #ddd;align-self:start}"
        ".usage{color:#666;font-size:.85em}"
    )
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{e(_title(batch))}</title><style>{css}</style></head><body>",
        f"<h1>{e(_title(batch))}</h1>",
        f"<p>Server {e(safe_endpoint(batch.profile.api_base))} (profile {e(batch.profile.name)})"
        f", model {e(next((r.model for r in results if r.model), batch.profile.model or '-'))}</p>",
        *(f"<p>{e(label)}: {e(text)}</p>" for label, text in _asked(batch, results)),
        "<h2>Totals</h2><table>",
        f"<tr><th>Items</th><td class='num'>{t.items:,}</td></tr>",
        f"<tr><th>Done</th><td class='num'>{t.done:,}</td></tr>",
        f"<tr><th>Failed</th><td class='num'>{t.failed:,}</td></tr>",
    ]
    if t.missing:
        out.append(f"<tr><th>Not run yet</th><td class='num'>{t.missing:,}</td></tr>")
    out += [
        f"<tr><th>Prompt tokens</th><td class='num'>{t.prompt_tokens:,}</td></tr>",
        f"<tr><th>Output tokens</th><td class='num'>{t.output_tokens:,}</td></tr>",
        f"<tr><th>Time (sum)</th><td class='num'>{t.duration_s:,.1f} s</td></tr>",
        f"<tr><th>Cost</th><td class='num'>{e(format_cost(t.cost))}</td></tr></table>",
    ]
    failures = [r for r in results if not r.ok]
    if failures:
        out.append("<h2>Failures</h2><ul>")
        out += [
            f"<li class='fail'><strong>{e(r.label)}</strong>: {e(r.error)}"
            + (f" <em>{e(r.hint)}</em>" if r.hint else "")
            + "</li>"
            for r in failures
        ]
        out.append("</ul>")
    out.append("<h2>Items</h2>")
    for n, r in enumerate(results, 1):
        img = ""
        if r.thumbnail:
            src = "data:image/png;base64," + base64.b64encode(r.thumbnail).decode()
            img = f'<img src="{src}" alt="{e(r.label)}">'
        if r.ok:
            body = render_markdown(demote_headings(r.answer)) + (
                f'<p class="usage">{e(_usage(r))}</p>'
            )
        else:
            body = f"<p class='fail'><strong>Failed:</strong> {e(r.error)} <em>{e(r.hint)}</em></p>"
        out.append(f'<h3>{n}. {e(r.label)}</h3><div class="item">{img}<div>{body}</div></div>')
    out.append("</body></html>")
    return "\n".join(out)


CSV_COLUMNS = (
    "item", "file", "kind", "state", "server", "model", "question", "context",
    "prompt_tokens", "output_tokens", "estimated",
    "ttft_s", "tokens_per_s", "duration_s", "cost", "finish_reason", "error", "answer",
)  # fmt: skip


def report_csv(batch: Batch) -> str:
    """One row per item (items not run yet have state "pending")."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for item in batch.items or ():
        r = batch.results.get(item.key)
        if r is None:
            w.writerow([item.label, str(item.path), item.kind, "pending"] + [""] * 14)
            continue
        w.writerow(
            [
                r.label, r.path, r.kind, r.state, r.server, r.model, r.question, r.context,
                r.prompt_tokens, r.output_tokens,
                int(r.estimated), _num(r.ttft_s), _num(r.tokens_per_s), _num(r.duration_s),
                f"{r.cost:.8f}" if r.cost is not None else "", r.finish_reason or "",
                r.error, r.answer,
            ]
        )  # fmt: skip
    return buf.getvalue()


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


REPORT_SUFFIXES = (".md", ".html", ".csv")


def write_report(batch: Batch, path: Path | str) -> Path:
    """Write the report by the path's suffix (.md with thumbnails in ``<stem>_thumbs/``,
    .html, .csv). Raises BatchError for another suffix or a file it cannot write."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".markdown",):
        suffix = ".md"
    if suffix not in REPORT_SUFFIXES:
        raise BatchError(
            f"{path.name}: a report is Markdown (.md), HTML (.html) or CSV (.csv).",
            "Name the report file with one of these extensions.",
        )
    try:
        if suffix == ".html":
            write_atomic(path, report_html(batch))
        elif suffix == ".csv":
            write_atomic(path, report_csv(batch))
        else:
            folder = path.with_name(f"{path.stem}_thumbs")
            results = batch.ordered_results()
            for n, r in enumerate(results, 1):
                if r.thumbnail:
                    write_atomic(folder / _thumb_name(n, r), r.thumbnail)
            write_atomic(path, report_markdown(batch, folder.name))
    except OSError as exc:  # a full disk leaves no half-written report behind
        raise BatchError(
            f"{path} could not be written: {os_reason(exc, path.parent)}.",
            "Choose another folder, or free some space there.",
        ) from exc
    return path
