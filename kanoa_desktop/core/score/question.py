"""The one place where a scored item becomes a question on the one question path.

A scored item is asked like any other question: a fresh
:class:`~kanoa_desktop.core.ask.pipeline.ConversationRunner` (its own conversation and its
own history record) on the face's :class:`~kanoa_desktop.core.ask.services.Services`, its
:class:`~kanoa_desktop.core.ask.outbox.Outbox` holding the item's figure, asked the item's
question followed by the ``ANSWER:`` instruction, under the scoring system prompt. Nothing
else in :mod:`kanoa_desktop.core.score` builds a request.
"""

from __future__ import annotations

from typing import Any

from kanoa_desktop.core.ask.outbox import Outbox
from kanoa_desktop.core.ask.pipeline import ConversationRunner, TurnEnded
from kanoa_desktop.core.score.extract import ANSWER_INSTRUCTION
from kanoa_desktop.core.score.items import ScoreItem

#: The system prompt of every scored question (the same for every profile, so scores
#: compare models, not prompts; a report prints it).
SYSTEM_PROMPT = (
    "You read scientific charts precisely. Answer the question about the figure from what "
    "the figure shows. Keep any working short."
)


def question_text(item: ScoreItem) -> str:
    """What is asked: the item's question, then the instruction for the final line."""
    return f"{item.question.strip()}\n\n{ANSWER_INSTRUCTION.format(hint=item.hint)}"


def prompt_description() -> str:
    """The prompt as a report shows it (system prompt, then the question's form)."""
    return (
        f"System: {SYSTEM_PROMPT}\n"
        f"User: <figure> <question>\n\n{ANSWER_INSTRUCTION.format(hint=' (<kind hint>)')}"
    )


def prepare(item: ScoreItem, long_side: int) -> Any:
    """The item's figure as sent (a PreparedFigure): a key's file through the one input plan,
    the suite's chart (drawn or cached) through the same figure preparation. Blocking CPU
    work; raises the figure's typed error."""
    if item.path is not None:
        from kanoa_desktop.core.inputs.plan import PlanOptions, take

        return take([item.path], PlanOptions(long_side=long_side)).figures[0]
    from kanoa_desktop.core.inputs.figures import prepare_figure
    from kanoa_desktop.core.score.suite import chart_png

    return prepare_figure(chart_png(item.chart), long_side=long_side, name=item.figure_name)


def new_runner(profile: Any, services: Any, figure: Any) -> ConversationRunner:
    """A runner for one item: its own conversation with the item's figure in its outbox,
    the scoring prompt, no knowledge base (passages would change what is measured)."""
    return ConversationRunner(
        profile,
        services.replace(knowledge_base=lambda: None),
        outbox=Outbox([figure]),
        system_prompt=SYSTEM_PROMPT,
    )


async def ask(runner: ConversationRunner, item: ScoreItem) -> TurnEnded:
    """Ask ``item`` (its figure is in the runner's outbox); the turn's end (never raises
    for a failed question; re-raises cancellation from outside after the turn is
    recorded)."""
    return await runner.ask(question_text(item))


__all__ = ["SYSTEM_PROMPT", "ask", "new_runner", "prepare", "prompt_description", "question_text"]
