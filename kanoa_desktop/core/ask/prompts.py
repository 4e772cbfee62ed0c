"""Prompts for interpreting figures and tables, in the spirit of kanoa's ``interpret``.

kanoa's ``interpret(fig=..., data=..., context=..., focus=...)`` asks a model for a
scientist's reading of a plot or a table. The same fields live here; the window and the
command line build their questions through :func:`build_question`.
"""

from __future__ import annotations

DEFAULT_SYSTEM_PROMPT = """\
You are an expert scientific analyst helping a researcher read figures and data.
When given a figure, first say what kind of plot it is and what its axes, units, legend and \
panels show; then describe the main patterns, trends, outliers and uncertainties; then give \
the scientific interpretation and its limits. Quote numbers you can read from the figure \
and say when a value is an estimate. When given a table summary, describe its structure, \
notable statistics, missing data and relationships worth checking. Never invent values \
that are not visible. Be concise and use Markdown (short headings, bullet lists, tables \
where they help)."""

DEFAULT_QUESTION_FIGURE = "Interpret this figure."
DEFAULT_QUESTION_TABLE = "Interpret this data."
DEFAULT_QUESTION_FOLLOWUP = "Go on."


def build_question(
    *,
    question: str = "",
    context: str = "",
    focus: str = "",
    n_figures: int = 0,
    table_summary: str = "",
    grounding: str = "",
) -> str:
    """The text of a user turn: the question with kanoa's context and focus fields.

    ``grounding`` is a block of numbered knowledge-base passages; ``table_summary`` a
    Markdown summary sized to its token budget. Empty parts are left out.
    """
    q = question.strip()
    if not q:
        if n_figures:
            q = DEFAULT_QUESTION_FIGURE if n_figures == 1 else "Interpret these figures."
        elif table_summary:
            q = DEFAULT_QUESTION_TABLE
        else:
            q = DEFAULT_QUESTION_FOLLOWUP
    parts: list[str] = []
    if grounding.strip():
        parts.append(grounding.strip())
    if table_summary.strip():
        parts.append("## Data\n\n" + table_summary.strip())
    if context.strip():
        parts.append(f"Context: {context.strip()}")
    if focus.strip():
        parts.append(f"Focus your interpretation on: {focus.strip()}")
    parts.append(q)
    return "\n\n".join(parts)
