"""A score run written out: the ``--json`` object, and a report document (Markdown, HTML or
CSV by the one report writer, :mod:`kanoa_desktop.core.reports.writer`); no Qt.

The report says how the run was made (suite, version and seed, or the key; the renderer;
the prompt; profiles, endpoints and models), the summaries, the accuracy per template, the
paired comparisons and, per item, the question, the truth, what was read and each model's
raw answer (a code block). The writer makes text from outside (an answer, a key's question
and answer, a file or model name) safe in every format: never HTML or Markdown that
renders, never a CSV cell a spreadsheet reads as a formula, never a control character.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.reports import document as R
from kanoa_desktop.core.reports import writer
from kanoa_desktop.core.reports.writer import Number, ReportError
from kanoa_desktop.core.score import question as Q

#: The formats of a score report, and the suffixes that name them.
FORMATS = ("md", "html", "csv")
SUFFIXES = {suffix: fmt for suffix, fmt in writer.SUFFIXES.items() if fmt in FORMATS}


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


# ---------------------------------------------------------------- the report


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


def _truth(item) -> str:
    if item.kind != "number":
        return item.truth
    span = f", axis span {item.axis_span:g}" if item.axis_span else ""
    return f"{item.truth} (tolerance {item.tolerance:g}{span})"


def report_document(run) -> R.Document:
    """The run's report: how it was made, the prompt, the results, the paired comparisons,
    the accuracy per template and every item with each model's raw answer; as CSV, one row
    per item and profile."""
    summaries, paired = run.summaries(), run.paired()
    doc = R.Document(f"Score: {run.source.label}", width="64rem", data=_csv_table(run))
    doc.add(
        R.Facts(_how_made(run)),
        R.Heading("Prompt"),
        R.Code(Q.prompt_description()),
        R.Heading("Results"),
        R.Table(SUMMARY_HEADERS, summary_cells(summaries), align="ll" + "r" * 9),
        *(R.Paragraph(s.halted, style="note") for s in summaries if s.halted),
    )
    if paired:
        doc.add(R.Heading("Paired comparisons (McNemar's exact test)"),
                R.Items([p.verdict() for p in paired]))  # fmt: skip
    templates = sorted({t for s in summaries for t in s.by_template})
    if templates:
        rows = [
            [t] + [f"{v.correct}/{v.n} ({_pct(v.accuracy)})" if (v := s.by_template.get(t))
                   else "–" for s in summaries]
            for t in templates
        ]  # fmt: skip
        doc.add(R.Heading("Accuracy per template"),
                R.Table(["Template", *(s.label for s in summaries)], rows,
                        align="l" + "r" * len(summaries)))  # fmt: skip
    doc.add(R.Heading("Items"))
    for item, per in _item_rows(run):
        doc.add(
            R.Heading(f"{item.index + 1}. {item.template} — {item.source}", 3),
            R.Items([("Question", item.question), ("Truth", _truth(item))]),
        )
        for label, score, failure in per:
            if score is not None:
                mark = "right" if score.correct else "wrong"
                read = f"{score.extracted} ({score.how})" if not score.unparsed else "nothing"
                doc.add(R.Paragraph(f"{mark}; read {read}", lead=f"{label}:"),
                        R.Code(score.answer))  # fmt: skip
            elif failure is not None:
                doc.add(R.Paragraph(f"failed: {failure.error}", lead=f"{label}:", style="note"))
            else:
                doc.add(R.Paragraph("not scored yet", lead=f"{label}:", style="note"))
    return doc


CSV_COLUMNS = (
    "run", "item", "template", "figure", "question", "truth", "tolerance", "axis_span",
    "profile", "model", "state", "answer", "extracted", "how", "correct", "rel_error",
    "output_tokens", "tokens_per_s", "cost", "prompt", "system_prompt",
)  # fmt: skip


def _csv_table(run) -> R.Table:
    """One row per item and profile (state ``scored``, ``failed`` or ``pending``)."""
    rows = []
    for item, per in _item_rows(run):
        for i, (label, score, failure) in enumerate(per):
            state = "scored" if score else ("failed" if failure else "pending")
            rows.append(
                [
                    run.source.label, item.id, item.template, item.source, item.question,
                    Number(item.truth), f"{item.tolerance:g}",
                    "" if item.axis_span is None else f"{item.axis_span:g}",
                    label, run.model_of(i), state,
                    score.answer if score else (failure.error if failure else ""),
                    Number(score.extracted) if score else "", score.how if score else "",
                    int(score.correct) if score else "",
                    "" if not score or score.rel_error is None else f"{score.rel_error:.6g}",
                    "" if not score or score.output_tokens is None else score.output_tokens,
                    "" if not score or score.tokens_per_s is None else f"{score.tokens_per_s:.3f}",
                    f"{score.cost:.8f}" if score else "",
                    Q.question_text(item), Q.SYSTEM_PROMPT,
                ]
            )  # fmt: skip
    return R.Table(CSV_COLUMNS, rows)


def check(path: Path | str) -> str:
    """The format ``path``'s suffix names ("md", "html" or "csv"); raises
    :class:`ReportError` saying which suffixes a score report takes for another."""
    return writer.format_of(path, formats=FORMATS)


def write(run, path: Path | str) -> Path:
    """Write the report by the path's suffix (.md, .html, .csv) through the one report
    writer. Raises :class:`ReportError` for another suffix or a file it cannot write."""
    return writer.write(report_document(run), Path(path).expanduser(), formats=FORMATS)


__all__ = ["CSV_COLUMNS", "FORMATS", "SUFFIXES", "SUMMARY_HEADERS", "ReportError", "check",
           "report_document", "summary_cells", "to_json", "write"]  # fmt: skip
