"""Several models asked the same thing at once: a comparison, with no Qt.

A :class:`Comparison` holds 2 to 4 panes, each one
:class:`~kanoa_desktop.core.ask.pipeline.ConversationRunner` over its own profile (or the
same server with another model, :func:`profiles_for_models`), all sharing one
:class:`~kanoa_desktop.core.ask.services.Services`. :meth:`Comparison.ask` sends the same
question, with what the comparison's :class:`~kanoa_desktop.core.ask.outbox.Outbox` holds,
to every pane concurrently (each pane starts from a copy of it); a follow-up goes to every
pane too, each continuing its own conversation. One pane or all can be
stopped; a stopped pane ends (and is recorded) with its partial answer like any turn.

Events: every pane's runner events reach the listener unchanged (``ev.runner`` says which
pane, :meth:`Comparison.pane_of`); after every pane's turn ended, one
:class:`ComparisonEnded` follows with the comparison table (:class:`PaneResult` rows: TTFT,
tokens/s, output tokens, cost, energy, finish reason).

History: with a store, the comparison is one entry (``HistoryStore.create_comparison``):
each pane's conversation is linked to it as soon as it is recorded, and it exports to
Markdown, HTML and PDF with one reproducibility block per model
(:func:`kanoa_desktop.core.ask.compare_report.export_comparison`).

Energy: the GPU energy span of each pane covers the whole GPU while it answered; panes
answering at the same time on one GPU each see the same watts, so the figures overlap.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kanoa_desktop.core.ask.outbox import Outbox
from kanoa_desktop.core.ask.pipeline import AskEvent, ConversationRunner, TurnEnded, reopened
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.history.endings import label as ending_label
from kanoa_desktop.core.listeners import tell
from kanoa_desktop.core.reports.document import Table
from kanoa_desktop.core.reports.writer import block_markdown

MIN_PANES = 2
MAX_PANES = 4
TITLE_LENGTH = 120


class ComparisonError(KanoaError):
    """A comparison cannot be set up as asked."""

    title = "Cannot compare"


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class PaneResult:
    """One pane's last answer, as a row of the comparison table."""

    pane: int  # 0-based
    label: str  # what the pane is called (profile, or profile · model)
    model: str
    endpoint: str
    state: str  # done, stopped, error, interrupted
    finish_reason: str | None
    ttft_s: float | None
    tokens_per_s: float | None
    prompt_tokens: int | None
    output_tokens: int | None
    estimated: bool
    cost: float | None
    energy_wh: float | None
    error: str = ""

    @property
    def finish(self) -> str:
        """How the answer ended, in :mod:`~kanoa_desktop.core.history.endings`' words."""
        return ending_label(self.state, self.finish_reason, self.error)


TABLE_HEADERS = (
    "Model",
    "TTFT",
    "Tokens/s",
    "Output tokens",
    "Cost",
    "Energy",
    "Finish",
)


def table_cells(rows: Sequence[PaneResult]) -> list[list[str]]:
    """The comparison table as text cells, one list per row (headers: TABLE_HEADERS)."""
    out = []
    for r in rows:
        est = "~" if r.estimated and r.output_tokens is not None else ""
        out.append(
            [
                r.label if r.label == r.model or not r.model else f"{r.label} ({r.model})",
                f"{r.ttft_s:.2f} s" if r.ttft_s is not None else "–",
                f"{r.tokens_per_s:,.1f}" if r.tokens_per_s else "–",
                f"{est}{r.output_tokens:,}" if r.output_tokens is not None else "–",
                format_cost(r.cost, r.estimated) if r.cost is not None else "–",
                f"{r.energy_wh:.3f} Wh" if r.energy_wh is not None else "–",
                r.finish,
            ]
        )
    return out


#: The PDF's column widths (percent of the page): the Model column wide enough for
#: "label (model)" to wrap between words.
TABLE_WIDTHS = (34, 11, 11, 11, 11, 11, 11)


def comparison_table(rows: Sequence[PaneResult]) -> Table:
    """The comparison table as a report table (headers: TABLE_HEADERS)."""
    return Table(TABLE_HEADERS, table_cells(rows), align="lrrrrrl", widths=TABLE_WIDTHS)


def table_markdown(rows: Sequence[PaneResult]) -> str:
    """The comparison table in Markdown, written by the report writer."""
    return block_markdown(comparison_table(rows))


def stored_results(panes: Sequence[Any], labels: Sequence[str] | None = None) -> list[list]:
    """Rows per question of a stored comparison: ``[question_index][pane]`` PaneResults
    (a pane with fewer questions has none for the later ones). ``panes`` are
    StoredConversation objects in pane order."""
    by_question: list[list[PaneResult]] = []
    labels = labels or pane_labels(profiles_for_stored(panes))
    for i, conv in enumerate(panes):
        turns = [t for t in conv.turns if t.finish_reason != "retried"]
        label = labels[i]
        for q, t in enumerate(turns):
            while len(by_question) <= q:
                by_question.append([])
            by_question[q].append(
                PaneResult(
                    pane=i,
                    label=label,
                    model=t.model or conv.model,
                    endpoint=conv.endpoint,
                    state=t.state,
                    finish_reason=t.finish_reason,
                    ttft_s=t.ttft_s,
                    tokens_per_s=t.tokens_per_s,
                    prompt_tokens=t.prompt_tokens,
                    output_tokens=t.output_tokens,
                    estimated=t.estimated,
                    cost=t.cost,
                    energy_wh=t.energy_wh,
                    error=t.error_title or "",
                )
            )
    return by_question


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class ComparisonEnded:
    """Every pane's turn is over (done, stopped or failed); ``results`` in pane order."""

    comparison: Comparison
    results: list[PaneResult]
    ended: list[TurnEnded]


CompareEvent = AskEvent | ComparisonEnded


# ---------------------------------------------------------------- profiles


def pane_labels(profiles: Sequence[Any]) -> list[str]:
    """What to call each pane: the profile's name, with the model when names repeat."""
    names = [p.name for p in profiles]
    out = []
    for p in profiles:
        if names.count(p.name) > 1 and p.model:
            out.append(f"{p.name} · {p.model}")
        else:
            out.append(p.name or p.model or p.api_base)
    return out


def profiles_for_models(profile: Profile, models: Sequence[str]) -> list[Profile]:
    """One profile per model of one server (same endpoint, key and settings)."""
    return [dataclasses.replace(profile, model=m) for m in models]


def profiles_for_stored(panes: Sequence[Any], store: Any = None) -> list[Profile]:
    """The profiles a stored comparison's panes (StoredConversation objects) were asked
    with, to show and continue it: each pane's profile by name from ``store`` (a
    ProfileStore) with the pane's model, else one made from its endpoint."""
    out = []
    for conv in panes:
        known = store.get(conv.profile_name) if store is not None and conv.profile_name else None
        if known is not None:
            out.append(dataclasses.replace(known, model=conv.model or known.model))
        else:
            params = {k: v for k, v in conv.params.items() if k in ("temperature", "max_tokens",
                                                                       "top_p")}  # fmt: skip
            out.append(Profile(name=conv.profile_name or conv.model, api_base=conv.endpoint,
                               model=conv.model, **params))  # fmt: skip
    return out


def check_profiles(profiles: Sequence[Profile]) -> None:
    """Raise :class:`ComparisonError` unless 2 to 4 panes are asked for."""
    n = len(profiles)
    if n < MIN_PANES or n > MAX_PANES:
        raise ComparisonError(
            f"A comparison takes {MIN_PANES} to {MAX_PANES} profiles or models; "
            f"{n} {'was' if n == 1 else 'were'} given.",
            "Choose between two and four profiles (or models of one server).",
        )


# ---------------------------------------------------------------- history


class _PaneHistory:
    """The history store as one pane's runner sees it: every conversation it starts is
    linked to the comparison at once, so the history lists one entry, never N."""

    def __init__(self, comparison: Comparison, pane: int) -> None:
        self._comparison = comparison
        self._pane = pane

    def begin_turn(self, conversation_id: int | None, **kw: Any):
        store = self._comparison.history
        recorder = store.begin_turn(conversation_id, **kw)
        if recorder.conversation_id != conversation_id:
            cid = self._comparison._comparison_id_for(kw)
            store.link_comparison(cid, recorder.conversation_id, self._pane)
        return recorder

    def __getattr__(self, name: str) -> Any:  # mark_retried and the rest: the store's
        return getattr(self._comparison.history, name)


def _subject(outbox: Outbox, question: str) -> str:
    names = [f.name for f in outbox.figures]
    if outbox.table is not None:
        names.append(outbox.table.name)
    question = " ".join(question.split())
    if question and question.rstrip(".?! ").lower() not in ("interpret", ""):
        return question
    subject = ", ".join(names) or question or "Interpret"
    focus = " ".join(outbox.focus.split())
    return f"{subject}: {focus}" if focus and names else subject


# ---------------------------------------------------------------- the comparison


@dataclass
class Pane:
    index: int
    label: str
    runner: ConversationRunner
    ended: TurnEnded | None = None

    @property
    def profile(self) -> Profile:
        return self.runner.profile


class Comparison:
    """2 to 4 runners asked the same question concurrently; see the module docstring.

    ``services`` are every pane's (``services.history`` a
    :class:`~kanoa_desktop.core.history.store.HistoryStore`, or None); ``outbox`` what the
    first question carries; ``stored`` a comparison from the history, continued.
    """

    def __init__(
        self,
        profiles: Sequence[Profile],
        services: Services,
        *,
        listener: Callable[[CompareEvent], None] | None = None,
        outbox: Outbox | None = None,
        system_prompt: str | None = None,
        stored: Any = None,
    ) -> None:
        check_profiles(profiles)
        self.services = services
        self.history = services.history
        self.outbox = outbox or Outbox()
        self.listeners: list[Callable[[CompareEvent], None]] = [listener] if listener else []
        self.comparison_id: int | None = stored.id if stored is not None else None
        self.title = stored.title if stored is not None else ""
        self.rounds = 0  # questions asked of all panes
        self._task: asyncio.Task | None = None
        self.panes: list[Pane] = []
        for i, (profile, label) in enumerate(zip(profiles, pane_labels(profiles), strict=True)):
            restored: dict[str, Any] = dict(outbox=self.outbox.copy())
            if stored is not None and i < len(stored.panes):
                # A reopened comparison: follow-ups continue each pane's conversation.
                conv = stored.panes[i]
                conversation, outbox = reopened(conv)
                restored = dict(conversation=conversation, conversation_id=conv.id, outbox=outbox)
            pane_history = _PaneHistory(self, i) if self.history is not None else None
            runner = ConversationRunner(
                profile,
                services.replace(history=pane_history),
                listener=self._emit,
                system_prompt=system_prompt,
                **restored,
            )
            if stored is not None and i < len(stored.panes):
                runner.model = stored.panes[i].model or runner.model
            self.panes.append(Pane(i, label, runner))

    # -- events ----------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[CompareEvent], None]) -> None:
        self.listeners.append(listener)

    def unsubscribe(self, listener: Callable[[CompareEvent], None]) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def _emit(self, event: CompareEvent) -> None:
        tell(self.listeners, event, "comparison")

    def pane_of(self, runner: ConversationRunner) -> int | None:
        """The pane (0-based) a runner answers in, or None."""
        for pane in self.panes:
            if pane.runner is runner:
                return pane.index
        return None

    # -- control ---------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return any(p.runner.busy for p in self.panes) or (
            self._task is not None and not self._task.done()
        )

    async def ask(self, question: str = "") -> list[TurnEnded]:
        """Ask every pane ``question`` at once (with the outbox's inputs the first time, a
        follow-up after); returns each pane's TurnEnded in pane order. Never raises for a
        failed pane."""
        if any(p.runner.busy for p in self.panes):
            raise RuntimeError("the comparison is still answering")
        if not self.title:
            self.title = self._title(question)
        self.rounds += 1
        ended = await asyncio.gather(*(p.runner.ask(question) for p in self.panes))
        for pane, end in zip(self.panes, ended, strict=True):
            pane.ended = end
        self._emit(ComparisonEnded(self, self.results(), list(ended)))
        return list(ended)

    def start(self, question: str = "") -> asyncio.Task:
        """Run :meth:`ask` as a task (the window's way)."""
        if self.busy:
            raise RuntimeError("the comparison is still answering")
        self._task = asyncio.ensure_future(self.ask(question))
        return self._task

    def stop(self, pane: int, why: str = "") -> None:
        """Stop one pane; it ends with its partial answer, the others go on."""
        self.panes[pane].runner.stop(why)

    def stop_all(self, why: str = "") -> None:
        for pane in self.panes:
            pane.runner.stop(why)

    async def stop_and_wait(self, why: str = "") -> None:
        """Stop every pane and wait until every turn has ended (and been recorded)."""
        task = self._task
        self.stop_all(why)
        await asyncio.gather(*(p.runner.stop_and_wait(why) for p in self.panes))
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    # -- results ---------------------------------------------------------------------------

    def results(self) -> list[PaneResult]:
        """The comparison table of the last round (panes not yet ended are left out)."""
        rows = []
        for pane in self.panes:
            end = pane.ended
            if end is None:
                continue
            stats = end.stats
            counted = stats if stats is not None and stats.served else None  # as recorded
            runner = pane.runner
            rows.append(
                PaneResult(
                    pane=pane.index,
                    label=pane.label,
                    model=runner.model or pane.profile.model,
                    endpoint=pane.profile.api_base,
                    state=end.state,
                    finish_reason=end.finish_reason,
                    ttft_s=stats.ttft_s if stats else None,
                    tokens_per_s=stats.tokens_per_s() if stats else None,
                    prompt_tokens=counted.prompt_tokens if counted else None,
                    output_tokens=counted.output_tokens if counted else None,
                    estimated=bool(counted and counted.estimated),
                    cost=end.cost if stats else None,
                    energy_wh=end.energy_wh,
                    error=end.error.title if end.error else "",
                )
            )
        return rows

    def table_markdown(self) -> str:
        return table_markdown(self.results())

    # -- history ---------------------------------------------------------------------------

    def _title(self, question: str) -> str:
        title = f"Compare {' vs '.join(p.label for p in self.panes)}: {_subject(self.outbox, question)}"
        return title if len(title) <= TITLE_LENGTH else title[: TITLE_LENGTH - 1] + "…"

    def _comparison_id_for(self, begin_kw: dict[str, Any]) -> int:
        if self.comparison_id is None:
            self.comparison_id = self.history.create_comparison(self.title or "Comparison")
        return self.comparison_id

    def load(self) -> Any:
        """The comparison as recorded (a StoredComparison), or None without history."""
        if self.history is None or self.comparison_id is None:
            return None
        return self.history.load_comparison(self.comparison_id)


__all__ = [
    "MAX_PANES",
    "MIN_PANES",
    "TABLE_HEADERS",
    "TABLE_WIDTHS",
    "CompareEvent",
    "Comparison",
    "ComparisonEnded",
    "ComparisonError",
    "Pane",
    "PaneResult",
    "check_profiles",
    "comparison_table",
    "pane_labels",
    "profiles_for_models",
    "profiles_for_stored",
    "stored_results",
    "table_cells",
    "table_markdown",
]
