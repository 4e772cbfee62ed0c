"""From inputs to a chat request: the one path the window and the command line share.

``load_input`` (from :mod:`kanoa_desktop.core.inputs.load`) is CPU work (decoding images,
parsing tables, opening PDFs): run it off the GUI thread.
``build_turn`` is cheap and decides what goes into the next user message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kanoa_desktop.core.ask.prompts import build_question
from kanoa_desktop.core.endpoint.chat import ChatRequest, Conversation, user_message
from kanoa_desktop.core.inputs.figures import PreparedFigure, prepare_figure

# Routing and loading live with the inputs (figures, tables, PDFs, notebooks); these names
# stay importable from here for the window and the command line.
from kanoa_desktop.core.inputs.load import TABLE_SUFFIXES, input_kind, load_input  # noqa: F401
from kanoa_desktop.core.inputs.tables import (
    DEFAULT_TABLE_TOKEN_BUDGET,
    LoadedTable,
    quick_plot,
    summarise_table,
)


def plot_table(
    table: LoadedTable, x: str | None, y: str | None, kind: str, *, long_side: int
) -> PreparedFigure:
    """Draw a quick plot of a table and prepare it like any dropped figure."""
    png = quick_plot(table, x, y, kind)
    return prepare_figure(png, long_side=long_side, name=f"{table.name} ({kind} of {y or x})")


@dataclass
class Inputs:
    """What the user gave for one question."""

    figures: list[PreparedFigure] = field(default_factory=list)
    table: LoadedTable | None = None
    table_summary: str = ""
    context: str = ""
    focus: str = ""
    question: str = ""


@dataclass
class GenerationParams:
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None


def build_turn(
    conversation: Conversation,
    inputs: Inputs,
    params: GenerationParams,
    *,
    send_images: bool = True,
    grounding: str = "",
) -> tuple[ChatRequest, dict[str, Any]]:
    """The request for the next question, and the user message to store in the turn.

    Figures and the table summary go with the first question of a conversation only:
    follow-ups carry them through the earlier turns.
    """
    first = not conversation.turns
    figures = inputs.figures if (first and send_images) else []
    summary = inputs.table_summary if first else ""
    text = build_question(
        question=inputs.question,
        context=inputs.context if first or inputs.context else "",
        focus=inputs.focus,
        n_figures=len(figures),
        table_summary=summary,
        grounding=grounding,
    )
    msg = user_message(text, [f.data_url() for f in figures])
    request = ChatRequest(
        model=params.model,
        messages=conversation.messages_for(msg),
        temperature=params.temperature,
        max_tokens=params.max_tokens,
        top_p=params.top_p,
    )
    return request, msg


def inputs_from(taken: Any, context: str = "", focus: str = "", question: str = "") -> Inputs:
    """A question's :class:`Inputs` from what the input plan took (core/inputs/plan.py
    ``Taken``): its figures and table, the notebook cells' code after ``context``."""
    context = "\n\n".join(t for t in (context, taken.context) if t)
    figures, table, summary = taken.figures, taken.table, taken.table_summary
    return Inputs(figures=figures, table=table, table_summary=summary, context=context,
                  focus=focus, question=question)  # fmt: skip


def summarise(table: LoadedTable, budget: int = DEFAULT_TABLE_TOKEN_BUDGET) -> str:
    return summarise_table(table, token_budget=budget, name=table.name)
