"""What the next question of a conversation sends, and what the conversation sent already.

One :class:`Outbox` per conversation, in every face (the window's inputs, ``interpret``,
each pane of a comparison, each item of a batch): its figures (a notebook's with the code of
their cells), its table and its summary, the context and the focus. Each goes once, with
the next question while it is new or changed; then the conversation's messages carry it to
every follow-up. A figure added after the first question goes with the next one and stays;
a new conversation (a new Outbox) starts empty.

:meth:`Outbox.pending` says what the next question carries (a :class:`Carried`),
:meth:`Outbox.message` builds its user message and :meth:`Outbox.asked` what the user sees
of it. The runner records the question once its turn is in the conversation
(:meth:`Outbox.mark_sent`) and takes the record back when a failed turn is dropped for a
retry (:meth:`Outbox.unmark`). :meth:`Outbox.restored` rebuilds the record of a stored one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kanoa_desktop.core.ask.prompts import build_question
from kanoa_desktop.core.endpoint.chat import user_message

if TYPE_CHECKING:  # figures pull in numpy and Pillow, tables pandas
    from kanoa_desktop.core.inputs.figures import PreparedFigure
    from kanoa_desktop.core.inputs.tables import LoadedTable


@dataclass(frozen=True)
class Carried:
    """What one question carries besides its text. ``images`` False: the figures are named
    but not sent (a model that cannot see them)."""

    figures: tuple[PreparedFigure, ...] = ()
    table: LoadedTable | None = None
    table_summary: str = ""
    context: str = ""
    focus: str = ""
    images: bool = True

    @property
    def sent_figures(self) -> tuple[PreparedFigure, ...]:
        return self.figures if self.images else ()


@dataclass
class _Sent:
    number: int  # the question (1-based) of the conversation that carried it
    carried: Carried
    asked: str


class Outbox:
    """The inputs of one conversation; see the module docstring."""

    def __init__(
        self,
        figures: Any = (),
        *,
        table: LoadedTable | None = None,
        table_summary: str = "",
        context: str = "",
        focus: str = "",
    ) -> None:
        self.figures: list[PreparedFigure] = []
        self.codes: dict[int, str] = {}  # id(figure) -> its cell's code
        self.table, self.table_summary = table, table_summary
        self.context, self.focus = context, focus
        self.log: list[_Sent] = []
        for fig in figures:
            self.add_figure(fig)

    # -- what the user gives -----------------------------------------------------------

    def add_figure(self, fig: PreparedFigure, code: str = "") -> bool:
        """Add a figure (``code``: the notebook cell that drew it). False when the same
        image is in this conversation already."""
        if any(f.data == fig.data for f in self.figures):
            return False
        self.figures.append(fig)
        if code.strip():
            self.codes[id(fig)] = code.strip()
        return True

    def remove_figure(self, fig: PreparedFigure) -> bool:
        """Take a figure out before it is sent; False once sent (the messages keep it)."""
        if fig not in self.figures or self.sent_with(fig):
            return False
        self.figures.remove(fig)
        self.codes.pop(id(fig), None)
        return True

    def set_table(self, table: LoadedTable | None, summary: str = "") -> None:
        self.table, self.table_summary = table, summary

    def code_of(self, fig: PreparedFigure) -> str:
        """The code of the notebook cell that drew ``fig`` ("" for other figures)."""
        return self.codes.get(id(fig), "")

    # -- what went, what goes ----------------------------------------------------------

    def sent_with(self, fig: PreparedFigure) -> int | None:
        """The question (1-based) that sent ``fig``, or None while it waits."""
        return next((s.number for s in self.log if fig in s.carried.sent_figures), None)

    def _last(self, name: str) -> Any:
        return next((getattr(s.carried, name) for s in reversed(self.log)
                     if getattr(s.carried, name)), None)  # fmt: skip

    def pending(self, *, images: bool = True) -> Carried:
        """What the next question carries: whatever is new or changed since it was sent."""
        figures = tuple(f for f in self.figures if not self.sent_with(f))
        table = self.table if self._last("table") is not self.table else None
        context, focus = self.context.strip(), self.focus.strip()
        return Carried(
            figures=figures,
            table=table,
            table_summary=self.table_summary if table is not None else "",
            context=context if context != self._last("context") else "",
            focus=focus if focus != self._last("focus") else "",
            images=images,
        )

    def message(self, question: str, carried: Carried, *, grounding: str = "") -> dict:
        """The user message of a question that carries ``carried``: the notebook cells' code
        of its figures follows the context."""
        codes = [self.code_of(f) for f in carried.figures]
        text = build_question(
            question=question,
            context="\n\n".join(p for p in (carried.context, *codes) if p),
            focus=carried.focus,
            n_figures=len(carried.sent_figures),
            table_summary=carried.table_summary,
            grounding=grounding,
        )
        return user_message(text, [f.data_url() for f in carried.sent_figures])

    def asked(
        self, question: str, carried: Carried, blocked: str | None = None, table: str = ""
    ) -> str:
        """What the user asked, as the view and a reopened conversation show it (Markdown):
        the question, then what went with it; never the prompt that was sent."""
        bits = [question.strip() or ("Go on." if self.log else "Interpret.")]
        if carried.figures:
            names = ", ".join(f.name + (" (with its cell's code)" if self.code_of(f) else "")
                              for f in carried.figures)  # fmt: skip
            sent = "sent" if carried.images else f"not sent: {blocked or 'text-only model'}"
            bits.append(f"Figures ({sent}): {names}")
        if (t := carried.table) is not None:
            table = f"{t.name} ({t.rows:,} rows × {t.columns} columns)"
        bits += [f"{k}: {v}" for k, v in (("Table", table), ("Context", carried.context),
                                          ("Focus", carried.focus)) if v]  # fmt: skip
        return "\n\n".join(bits)

    def mark_sent(self, number: int, carried: Carried, asked: str = "") -> None:
        """Record that question ``number`` of the conversation carried ``carried``."""
        self.log.append(_Sent(number, carried, asked))

    def unmark(self, number: int) -> None:
        """Take back the record of question ``number`` (its failed turn was dropped)."""
        self.log = [s for s in self.log if s.number != number]

    def copy(self) -> Outbox:
        """The same inputs, nothing sent (a comparison's panes each start from one)."""
        out = Outbox(table=self.table, table_summary=self.table_summary, context=self.context,
                     focus=self.focus)  # fmt: skip
        for fig in self.figures:
            out.add_figure(fig, self.code_of(fig))
        return out

    @classmethod
    def taking(cls, taken: Any, context: str = "", focus: str = "") -> Outbox:
        """A new conversation's outbox of what the input plan took (``core.inputs.plan``
        ``Taken``): its figures, its table and summary, the notebook cells' code after
        ``context``."""
        context = "\n\n".join(t for t in (context, taken.context) if t)
        return cls(taken.figures, table=taken.table, table_summary=taken.table_summary,
                   context=context, focus=focus)  # fmt: skip

    @classmethod
    def restored(cls, conv: Any) -> Outbox:
        """The outbox of a stored conversation (``HistoryStore.load_conversation``): its
        figures, summary, context and focus, all sent by the turns that carried them; the
        log says what each turn (retried ones left out) asked."""
        figs = {f.data_url(): f.prepared() for f in conv.figures}
        out = cls(figs.values(), table_summary=conv.table_summary, context=conv.context,
                  focus=conv.focus)  # fmt: skip
        turns = [t for t in conv.turns if t.finish_reason != "retried"]
        for n, t in enumerate(turns, 1):
            content = t.user_message.get("content")
            urls = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"
                    ] if isinstance(content, list) else []  # fmt: skip
            first = n == 1
            carried = Carried(
                figures=tuple(figs[u] for u in urls if u in figs),
                context=conv.context.strip() if first else "",
                focus=conv.focus.strip() if first else "",
            )
            asked = out.asked(t.question, carried, table=conv.table_name if first else "")
            summary = conv.table_summary if first else ""
            out.mark_sent(n, dataclasses.replace(carried, table_summary=summary), asked)
        return out

    def asked_texts(self) -> list[str]:
        """What each recorded question asked, in order."""
        return [s.asked for s in self.log]


__all__ = ["Carried", "Outbox"]
