"""A score run written out: JSON, a terminal table, Markdown, HTML and CSV; no Qt.

Every format says how the run was made (suite, version and seed, or the key; the renderer;
the prompt; profiles, endpoints and models), the summaries, the paired comparisons and,
per item, the question, the truth, what was read and each model's raw answer.

Text from outside (a model's answer, a key's question and answer, a file or model name)
goes through :func:`safe_text` for its format, the one place that decides what is safe:
never raw HTML or Markdown that renders (answers sit in code fences or ``<pre>``), never a
CSV cell a spreadsheet reads as a formula (OWASP: a cell starting ``=``, ``+``, ``-``,
``@``, tab or carriage return gets a leading ``'``, unless it is a plain number such as
``-700``), never a terminal escape.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import time
from pathlib import Path
from typing import Any

from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.safety import escape_control, replace_surrogates
from kanoa_desktop.core.score import question as Q
from kanoa_desktop.core.score.stats import format_p

FORMATS = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".csv": "csv"}
# Emphasis, code, links and images, tables, strikethrough: what makes Markdown render.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]!|~])")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


class ReportError(KanoaError):
    title = "Cannot write the report"


def safe_text(text: Any, fmt: str) -> str:
    """``text`` made safe for ``fmt``: ``terminal`` (control characters shown as escapes),
    ``md`` (one line, Markdown and HTML characters escaped), ``html`` (escaped, newlines
    kept for ``pre``), ``csv`` (control characters but newlines and tabs escaped, formula
    starts defused) or ``code`` (for inside a Markdown code fence: control characters
    escaped, newlines kept)."""
    t = replace_surrogates("" if text is None else str(text))
    if fmt == "terminal":
        return escape_control(t)
    if fmt == "code":
        return escape_control(t, keep="\n\t")
    if fmt == "html":
        return html.escape(escape_control(t, keep="\n\t"), quote=True)
    if fmt == "md":
        t = " ".join(escape_control(t, keep="\n\t").split())
        t = _MD_SPECIAL.sub(r"\\\1", t)
        return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if fmt == "csv":
        t = escape_control(t, keep="\n\t")
        if _PLAIN_NUMBER.fullmatch(t):  # -700 is a number, not a formula: kept as one
            return t
        return "'" + t if t.startswith(_FORMULA_START) else t
    raise ValueError(f"unknown format {fmt!r}")


def _fence(text: str) -> str:
    """A Markdown code fence longer than any run of backticks in ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


# ---------------------------------------------------------------- numbers


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f} %"


def _ci(s) -> str:
    return f"{s.ci_low * 100:.1f}–{s.ci_high * 100:.1f} %" if s.n else "–"


def _num(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def _cost(s) -> str:
    if s.cost_per_correct is None:
        return "–"
    return ("~" if s.estimated else "") + format_cost(s.cost_per_correct)


SUMMARY_HEADERS = (
    "Profile", "Model", "n", "Correct", "Accuracy", "95 % CI", "Unparsed", "Failed",
    "Mean rel. error", "Tokens/s", "Cost per correct",
)  # fmt: skip


def summary_cells(summaries) -> list[list[str]]:
    """The result table as text cells (headers: SUMMARY_HEADERS); names are not escaped."""
    return [
        [
            s.label,
            s.model or "–",
            f"{s.n}/{s.total}",
            str(s.correct),
            _pct(s.accuracy),
            _ci(s),
            _pct(s.unparsed_share),
            str(s.failed),
            _pct(s.mean_rel_error),
            _num(s.tokens_per_s),
            _cost(s),
        ]
        for s in summaries
    ]


# ---------------------------------------------------------------- JSON


def to_json(run, summaries=None, paired=None) -> dict[str, Any]:
    """The ``--json`` object: ``{"results": [...], "paired": [...]}`` plus how the run was
    made (``run``)."""
    summaries = summaries if summaries is not None else run.summaries()
    paired = paired if paired is not None else run.paired()
    return {
        "results": [
            {
                "profile": s.label,
                "model": s.model,
                "endpoint": s.endpoint,
                "n": s.n,
                "total": s.total,
                "correct": s.correct,
                "accuracy": s.accuracy,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
                "unparsed": s.unparsed,
                "unparsed_share": s.unparsed_share,
                "failed": s.failed,
                "mean_rel_error": s.mean_rel_error,
                "tokens_per_s": s.tokens_per_s,
                "cost": s.cost,
                "cost_per_correct": s.cost_per_correct,
                "cost_estimated": s.estimated,
                "by_template": {
                    t: {"n": v.n, "correct": v.correct, "accuracy": v.accuracy}
                    for t, v in s.by_template.items()
                },
            }
            for s in summaries
        ],
        "paired": [
            {
                "a": p.a,
                "b": p.b_name,
                "mcnemar_p": p.p,
                "n": p.n,
                "a_only": p.b,
                "b_only": p.c,
                "better": p.better or None,
            }
            for p in paired
        ],  # fmt: skip
        "run": {
            "state": run.state,
            "id": run.run_id,
            **run.spec(),
        },
    }


def json_text(run, summaries=None, paired=None) -> str:
    """The JSON object as text, ASCII only (no terminal escape can pass)."""
    return json.dumps(to_json(run, summaries, paired), ensure_ascii=True, indent=2)


# ---------------------------------------------------------------- terminal


def terminal_text(run, summaries=None, paired=None) -> str:
    """The results as the command line prints them: an aligned table and the verdicts."""
    summaries = summaries if summaries is not None else run.summaries()
    paired = paired if paired is not None else run.paired()
    rows = [list(SUMMARY_HEADERS)] + [
        [safe_text(c, "terminal") for c in r] for r in summary_cells(summaries)
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(SUMMARY_HEADERS))]
    lines = [f"Score: {safe_text(run.source.label, 'terminal')}"]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))))  # fmt: skip
    for s in summaries:
        if s.halted:
            lines.append(safe_text(s.halted, "terminal"))
    for p in paired:
        lines.append(safe_text(p.verdict(), "terminal"))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Markdown


def _how_made(run) -> list[tuple[str, str]]:
    spec = run.source.spec
    rows = []
    if run.source.kind == "suite":
        rows += [
            ("Suite", f"{spec['suite']} (seed {spec['seed']}, {spec['n']} items)"),
            ("Charts drawn with", spec.get("renderer", "")),
        ]
    else:
        rows += [("Answer key", spec["key"]), ("Key sha256", spec["digest"])]
    for i, p in enumerate(run.spec()["profiles"]):
        params = ", ".join(f"{k} {v}" for k, v in p["params"].items() if v is not None)
        rows.append(
            (f"Profile {i + 1}", f"{p['name']} at {p['endpoint']}, model {p['model'] or '?'}"
             + (f" ({params})" if params else ""))
        )  # fmt: skip
    rows.append(("State", f"{run.state}" + (f", history run {run.run_id}" if run.run_id else "")))
    rows.append(("Written", time.strftime("%Y-%m-%d %H:%M:%S")))
    return rows


def _item_rows(run):
    """Per item in order: (item, [(label, score or None, failure or None) per profile])."""
    for item in run.items:
        yield (
            item,
            [
                (label, run.scores.get((i, item.id)), run.failures.get((i, item.id)))
                for i, label in enumerate(run.labels)
            ],
        )


def to_markdown(run) -> str:
    summaries, paired = run.summaries(), run.paired()
    md = lambda t: safe_text(t, "md")  # noqa: E731
    out = [f"# Score: {md(run.source.label)}", ""]
    out += [f"- **{k}**: {md(v)}" for k, v in _how_made(run)]
    prompt = safe_text(Q.prompt_description(), "code")
    fence = _fence(prompt)
    out += ["", "**Prompt**", "", f"{fence}text", prompt, fence, "", "## Results", ""]
    out.append("| " + " | ".join(SUMMARY_HEADERS) + " |")
    out.append("|" + "|".join(["---", "---"] + ["---:"] * (len(SUMMARY_HEADERS) - 2)) + "|")
    for cells in summary_cells(summaries):
        out.append("| " + " | ".join(md(c) for c in cells) + " |")
    out.append("")
    for s in summaries:
        if s.halted:
            out += [f"- {md(s.halted)}"]
    if paired:
        out += ["", "## Paired comparisons (McNemar's exact test)", ""]
        out += [f"- {md(p.verdict())}" for p in paired]
    templates = sorted({t for s in summaries for t in s.by_template})
    if templates:
        out += ["", "## Accuracy per template", ""]
        out.append("| Template | " + " | ".join(md(s.label) for s in summaries) + " |")
        out.append("|---|" + "---:|" * len(summaries))
        for t in templates:
            cells = []
            for s in summaries:
                v = s.by_template.get(t)
                cells.append(f"{v.correct}/{v.n} ({_pct(v.accuracy)})" if v else "–")
            out.append(f"| {md(t)} | " + " | ".join(cells) + " |")
    out += ["", "## Items", ""]
    for item, per in _item_rows(run):
        out += [
            f"### {item.index + 1}. {md(item.template)} — {md(item.source)}",
            "",
            f"- **Question**: {md(item.question)}",
            f"- **Truth**: {md(item.truth)}"
            + (f" (tolerance {item.tolerance:g}" + (f", axis span {item.axis_span:g}" if item.axis_span else "") + ")"
               if item.kind == "number" else ""),
        ]  # fmt: skip
        for label, score, failure in per:
            if score is not None:
                mark = "right" if score.correct else "wrong"
                read = md(score.extracted) if not score.unparsed else "*unparsed*"
                out.append(f"- **{md(label)}**: {mark}; read {read} ({md(score.how)})")
                answer = safe_text(score.answer, "code")
                fence = _fence(answer)
                out += ["", f"{fence}text", answer, fence, ""]
            elif failure is not None:
                out.append(f"- **{md(label)}**: failed: {md(failure.error)}")
            else:
                out.append(f"- **{md(label)}**: not scored yet")
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- HTML


def to_html(run) -> str:
    summaries, paired = run.summaries(), run.paired()
    e = lambda t: safe_text(t, "html")  # noqa: E731
    css = (
        "body{font-family:system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;"
        "line-height:1.45;color:#222}table{border-collapse:collapse;margin:.5rem 0}"
        "td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;vertical-align:top}"
        ".num{text-align:right}pre{white-space:pre-wrap;background:#f6f6f6;padding:.5rem;"
        "border:1px solid #e2e2e2}.right{color:#1a6d1a}.wrong{color:#a40000}"
    )
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        f"<title>Score: {e(run.source.label)}</title><style>{css}</style></head><body>",
        f"<h1>Score: {e(run.source.label)}</h1><table>",
    ]
    out += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _how_made(run)]
    out += ["</table>", f"<p><strong>Prompt</strong></p><pre>{e(Q.prompt_description())}</pre>"]
    out.append("<h2>Results</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in SUMMARY_HEADERS)
               + "</tr>")  # fmt: skip
    for cells in summary_cells(summaries):
        out.append("<tr>" + "".join(
            f"<td{' class=num' if i >= 2 else ''}>{e(c)}</td>" for i, c in enumerate(cells)
        ) + "</tr>")  # fmt: skip
    out.append("</table>")
    out += [f"<p>{e(s.halted)}</p>" for s in summaries if s.halted]
    if paired:
        out.append("<h2>Paired comparisons (McNemar's exact test)</h2><ul>")
        out += [f"<li>{e(p.verdict())}</li>" for p in paired]
        out.append("</ul>")
    out.append("<h2>Items</h2>")
    for item, per in _item_rows(run):
        out.append(
            f"<h3>{item.index + 1}. {e(item.template)} — {e(item.source)}</h3>"
            f"<p><strong>Question</strong>: {e(item.question)}<br>"
            f"<strong>Truth</strong>: {e(item.truth)}</p>"
        )
        for label, score, failure in per:
            if score is not None:
                cls = "right" if score.correct else "wrong"
                read = e(score.extracted) if not score.unparsed else "<em>unparsed</em>"
                out.append(
                    f"<p><strong>{e(label)}</strong>: <span class='{cls}'>{cls}</span>; "
                    f"read {read} ({e(score.how)})</p><pre>{e(score.answer)}</pre>"
                )
            elif failure is not None:
                out.append(f"<p><strong>{e(label)}</strong>: failed: {e(failure.error)}</p>")
            else:
                out.append(f"<p><strong>{e(label)}</strong>: not scored yet</p>")
    out.append("</body></html>")
    return "\n".join(out)


# ---------------------------------------------------------------- CSV

CSV_COLUMNS = (
    "run", "item", "template", "figure", "question", "truth", "tolerance", "axis_span",
    "profile", "model", "state", "answer", "extracted", "how", "correct", "rel_error",
    "output_tokens", "tokens_per_s", "cost", "prompt", "system_prompt",
)  # fmt: skip


def to_csv(run) -> str:
    """One row per item and profile (state ``scored``, ``failed`` or ``pending``); every
    text cell from outside through :func:`safe_text` (``csv``)."""
    c = lambda t: safe_text(t, "csv")  # noqa: E731
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for item, per in _item_rows(run):
        for label, score, failure in per:
            i = run.labels.index(label)
            state = "scored" if score else ("failed" if failure else "pending")
            w.writerow(
                [
                    c(run.source.label), c(item.id), c(item.template), c(item.source),
                    c(item.question), c(item.truth), f"{item.tolerance:g}",
                    "" if item.axis_span is None else f"{item.axis_span:g}",
                    c(label), c(run.model_of(i)), state,
                    c(score.answer if score else (failure.error if failure else "")),
                    c(score.extracted) if score else "", score.how if score else "",
                    ("1" if score.correct else "0") if score else "",
                    "" if not score or score.rel_error is None else f"{score.rel_error:.6g}",
                    "" if not score or score.output_tokens is None else score.output_tokens,
                    "" if not score or score.tokens_per_s is None else f"{score.tokens_per_s:.3f}",
                    f"{score.cost:.8f}" if score else "",
                    c(Q.question_text(item)), c(Q.SYSTEM_PROMPT),
                ]
            )  # fmt: skip
    return buf.getvalue()


def write(run, path: Path | str) -> Path:
    """Write the report by the path's suffix (.md, .html, .csv). Raises
    :class:`ReportError` for another suffix or a file it cannot write."""
    path = Path(path).expanduser()
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ReportError(
            f"{safe_text(path.name, 'terminal')}: a score report is Markdown (.md), HTML "
            "(.html) or CSV (.csv).",
            "Name the file with one of these extensions.",
        )
    text = {"md": to_markdown, "html": to_html, "csv": to_csv}[fmt](run)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="" if fmt == "csv" else None)
    except OSError as exc:
        raise ReportError(
            f"{safe_text(path, 'terminal')} could not be written ({exc.strerror or exc}).",
            "Choose another folder, or check that there is free space.",
        ) from exc
    return path


__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "SUMMARY_HEADERS",
    "ReportError",
    "format_p",
    "json_text",
    "safe_text",
    "summary_cells",
    "terminal_text",
    "to_csv",
    "to_html",
    "to_json",
    "to_markdown",
    "write",
]
