"""One conversation's questions, end to end, with no Qt: the pipeline every face drives.

A :class:`ConversationRunner` owns one conversation. :meth:`ConversationRunner.ask` runs a
question through the whole pipeline:

    resolve the model -> vision gate -> images-per-prompt limit -> knowledge-base grounding
    (within the context budget) -> request -> stream -> stats and cost -> GPU energy span
    -> history record

and reports it as typed events to its listener, in this order for one turn::

    TurnStarted -> StateChanged("connecting") -> ModelResolved -> Notice*
        -> Asked -> StateChanged("waiting") -> StateChanged("streaming")
        -> (AnswerDelta | ReasoningDelta)* -> Sources? -> TurnEnded

``TurnEnded`` comes exactly once per ``TurnStarted``, from a ``finally``, whatever happens:
done, stopped by the user, an error (the ``error`` field), an unexpected exception (turned
into a :class:`~kanoa_desktop.core.endpoint.errors.KanoaError`), or the task cancelled
because the user started another conversation. It carries the partial text and the stats,
and the turn is recorded in history with them. ``Asked`` and everything after it only come
once a request was built; a turn that fails before (no server, no model) ends with
``TurnEnded(state="error")`` and records nothing.

Several runners can run concurrently on one loop (a comparison's panes, a batch's workers);
they share a :class:`~kanoa_desktop.core.endpoint.pool.ClientPool`. The window, the command
line, a comparison and a batch all use this class; none of them re-implements a step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from kanoa_desktop.core.ask.interpret import GenerationParams, Inputs, build_turn
from kanoa_desktop.core.ask.prompts import DEFAULT_SYSTEM_PROMPT
from kanoa_desktop.core.config.logs import report_hint
from kanoa_desktop.core.config.pricing import CostTracker, KanoaPricing, Prices, prices_for
from kanoa_desktop.core.config.profiles import Profile, vision_block_reason
from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import Conversation, Turn
from kanoa_desktop.core.endpoint.events import (
    Finished,
    FirstToken,
    ReasoningDelta,
    RequestSent,
    TextDelta,
)
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.endpoint.stats import StreamStats
from kanoa_desktop.core.tokens import TOKENS_PER_IMAGE, estimate_message_tokens

if TYPE_CHECKING:  # the client (httpx) loads with the first request
    from kanoa_desktop.core.endpoint.client import ModelInfo

log = logging.getLogger(__name__)

#: Seconds a question may spend embedding knowledge-base chunks that lack vectors before
#: it goes on (the rest follows with the next questions).
HYBRID_EMBED_SECONDS_PER_QUESTION = 20.0
#: How often buffered answer text is written to history while tokens stall.
HISTORY_FLUSH_S = 1.0
# Longest run of buffered events handled without giving the event loop a turn. When the
# machine was busy (a local model's server on the same CPUs), a socket holds hundreds of
# events, and reading them in one go held the window 40-60 ms (issue 25, compare bench).
YIELD_AFTER_S = 0.008

STATES = ("idle", "connecting", "waiting", "streaming", "done", "stopped", "error")


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class TurnStarted:
    runner: ConversationRunner


@dataclass(frozen=True)
class StateChanged:
    runner: ConversationRunner
    state: str  # one of STATES
    detail: str = ""


@dataclass(frozen=True)
class ModelResolved:
    runner: ConversationRunner
    model: str
    context_length: int | None
    max_tokens: int | None


@dataclass(frozen=True)
class Notice:
    """Something the user should know that does not stop the question."""

    runner: ConversationRunner
    title: str
    message: str
    hint: str = ""


@dataclass(frozen=True)
class Asked:
    """The request is built: ``asked`` is what the user asked (Markdown, for the view)."""

    runner: ConversationRunner
    asked: str
    turn_index: int
    payload: dict[str, Any]
    images_blocked: str | None  # why figures were not sent, or None


@dataclass(frozen=True)
class AnswerDelta:
    runner: ConversationRunner
    text: str


@dataclass(frozen=True)
class ReasoningText:
    runner: ConversationRunner
    text: str


@dataclass(frozen=True)
class Sources:
    runner: ConversationRunner
    grounding: Any  # kb.retrieval.Grounding
    answer: str


@dataclass(frozen=True)
class TurnEnded:
    """The turn is over. ``state``: done, stopped or error; ``answer`` the text received."""

    runner: ConversationRunner
    state: str
    finish_reason: str | None
    answer: str
    reasoning: str
    stats: StreamStats | None
    note: str = ""  # a line the view appends under the answer ("Stopped by you.")
    error: E.KanoaError | None = None
    can_retry: bool = False
    energy_wh: float | None = None
    turn_id: int | None = None  # the history record, when recorded
    cost: float = 0.0


AskEvent = (
    TurnStarted
    | StateChanged
    | ModelResolved
    | Notice
    | Asked
    | AnswerDelta
    | ReasoningText
    | Sources
    | TurnEnded
)


# ---------------------------------------------------------------- collaborators


class EnergySpans(Protocol):
    """Marks a GPU energy span around an answer (the GPU panel's poller, or none)."""

    def begin(self) -> Any: ...

    def end(self, handle: Any) -> float | None:  # watt-hours, None when unknown
        ...


class VisionCache(Protocol):
    """Remembers which models refused images (the profile store)."""

    def cached_vision(self, api_base: str, model: str) -> bool | None: ...

    def remember_vision(self, api_base: str, model: str, supported: bool) -> None: ...


class _NoVisionCache:
    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], bool] = {}

    def cached_vision(self, api_base: str, model: str) -> bool | None:
        return self._seen.get((api_base, model))

    def remember_vision(self, api_base: str, model: str, supported: bool) -> None:
        self._seen[(api_base, model)] = supported


CpuRunner = Callable[[Callable[[], Any]], Awaitable[Any]]


async def _to_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


def asked_markdown(inputs: Inputs, first: bool, images_blocked: str | None) -> str:
    """What the user asked, for the view and history: never the prompt that was sent."""
    bits = [inputs.question.strip() or ("Interpret." if first else "Go on.")]
    if first:
        if inputs.figures:
            names = ", ".join(f.name for f in inputs.figures)
            sent = "not sent: text-only model" if images_blocked else "sent"
            bits.append(f"Figures ({sent}): {names}")
        if inputs.table is not None:
            t = inputs.table
            bits.append(f"Table: {t.name} ({t.rows:,} rows × {t.columns} columns)")
        if inputs.context.strip():
            bits.append(f"Context: {inputs.context.strip()}")
    if inputs.focus.strip():
        bits.append(f"Focus: {inputs.focus.strip()}")
    return "\n\n".join(bits)


def quote(text: str) -> str:
    """``text`` as a Markdown block quote."""
    return "\n".join(f"> {line}" if line else ">" for line in text.strip().splitlines())


def you_markdown(asked: str, index: int | None = None) -> str:
    """The user's side of a turn as shown in the answer view and exports."""
    label = f"**You** ({index})" if index else "**You**"
    return f"{label}\n\n{quote(asked)}\n\n"


def conversation_markdown(conversation: Conversation) -> str:
    """A conversation as Markdown: what the user asked (never the prompt sent) and answers."""
    from kanoa_desktop.core.history.store import question_text

    parts = []
    for i, turn in enumerate(conversation.turns):
        asked = turn.asked or question_text(turn.user)
        parts.append(f"{you_markdown(asked, i + 1)}{turn.assistant}\n\n---\n\n")
    return "".join(parts)


def asked_from_stored(conv: Any) -> list[str]:
    """What the user asked in each turn of a stored conversation (the reopened view), in
    the order of ``conv.conversation().turns``: never the prompt that was sent."""
    out: list[str] = []
    first = True
    for t in conv.turns:
        if t.finish_reason == "retried":
            continue
        bits = [t.question or ("Interpret." if first else "Go on.")]
        if first:
            names = ", ".join(f.name for f in conv.figures if getattr(f, "name", ""))
            if names:
                bits.append(f"Figures: {names}")
            if conv.table_name:
                bits.append(f"Table: {conv.table_name}")
            if conv.context.strip():
                bits.append(f"Context: {conv.context.strip()}")
            if conv.focus.strip():
                bits.append(f"Focus: {conv.focus.strip()}")
        out.append("\n\n".join(bits))
        first = False
    return out


def as_error(exc: BaseException) -> Any:
    """Any exception as something with title, message and hint for the banner: typed
    errors (KanoaError, FigureError, TableError...) as they are, others as internal."""
    if isinstance(exc, E.KanoaError) or (hasattr(exc, "message") and hasattr(exc, "title")):
        return exc
    return internal_error(exc)


def internal_error(exc: BaseException) -> E.KanoaError:
    """An unexpected exception as a message a user can read (the log has the traceback)."""
    return E.KanoaError(
        f"Something went wrong inside kanoa desktop: {type(exc).__name__}: {exc}",
        "Your inputs and the answer so far are kept. " + report_hint(),
    )


# ---------------------------------------------------------------- the runner


@dataclass
class _TurnState:
    """Everything one turn accumulates; read by the ``finally`` that ends it."""

    inputs: Inputs
    model: str = ""
    prices: Prices | None = None
    turn: Turn | None = None
    recorder: Any = None
    grounding: Any = None
    energy_handle: Any = None
    energy_started: bool = False
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    notices: tuple = ()  # Finished.notices: e.g. the server ignored max_tokens
    started: float = field(default_factory=time.monotonic)


class ConversationRunner:
    """Runs the questions of one conversation; see the module docstring for the events.

    ``profile`` may be replaced between questions (:attr:`profile`); ``history`` None records
    nothing; ``knowledge_base`` returns the knowledge base to ground in (or None);
    ``run_cpu`` runs blocking work off the loop's thread (default: a thread).
    """

    def __init__(
        self,
        profile: Profile,
        *,
        pool: ClientPool,
        listener: Callable[[AskEvent], None] | None = None,
        history: Any = None,
        knowledge_base: Callable[[], Any] | None = None,
        vision: VisionCache | None = None,
        kanoa_pricing: KanoaPricing | None = None,
        energy: EnergySpans | None = None,
        costs: CostTracker | None = None,
        run_cpu: CpuRunner | None = None,
        system_prompt: str | None = None,
        conversation: Conversation | None = None,
        conversation_id: int | None = None,
        table_budget: int | None = None,
    ) -> None:
        self.profile = profile
        self.pool = pool
        self.listeners: list[Callable[[AskEvent], None]] = [listener] if listener else []
        self.history = history
        self.knowledge_base = knowledge_base or (lambda: None)
        self.vision = vision or _NoVisionCache()
        self.kanoa_pricing = kanoa_pricing
        self.energy = energy
        self.costs = costs if costs is not None else CostTracker()
        self.run_cpu = run_cpu or _to_thread
        self.conversation = conversation or Conversation(
            system_prompt=system_prompt or profile.system_prompt or DEFAULT_SYSTEM_PROMPT
        )
        if system_prompt is not None:
            self.conversation.system_prompt = system_prompt or DEFAULT_SYSTEM_PROMPT
        self.conversation_id = conversation_id
        self.table_budget = table_budget
        self.state = "idle"
        self.model = profile.model
        self.model_info: ModelInfo | None = None
        self.stats: StreamStats | None = None
        self.last_request: dict[str, Any] | None = None
        self.last_inputs: Inputs | None = None
        self.last_turn_id: int | None = None
        self.last_error: E.KanoaError | None = None
        self.turns_asked: list[str] = []  # what the user asked, per turn (for the view)
        self._task: asyncio.Task | None = None
        self._stop_note = "Stopped by you."
        self._stop_requested = False
        self._active = False

    # -- events ----------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[AskEvent], None]) -> None:
        self.listeners.append(listener)

    def unsubscribe(self, listener: Callable[[AskEvent], None]) -> None:
        with contextlib.suppress(ValueError):
            self.listeners.remove(listener)

    def _emit(self, event: AskEvent) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a broken view must not break the question
                log.exception("ask listener failed on %s", type(event).__name__)

    def _set_state(self, state: str, detail: str = "") -> None:
        self.state = state
        self._emit(StateChanged(self, state, detail))

    # -- control ---------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True from :meth:`start` (or the start of :meth:`ask`) until the turn ended."""
        return self._active or (self._task is not None and not self._task.done())

    def start(self, inputs: Inputs, *, retry: bool = False) -> asyncio.Task:
        """Run :meth:`ask` (or :meth:`retry`) as a task on the running loop (the window's
        way); :attr:`busy` is true from this call on."""
        if self.busy:
            raise RuntimeError("a question is already running in this conversation")
        self._task = asyncio.ensure_future(self.retry() if retry else self.ask(inputs))
        return self._task

    def stop(self, note: str = "Stopped by you.") -> None:
        """Cancel the running question; it ends (and is recorded) with its partial text."""
        if self._task is not None and not self._task.done():
            self._stop_note = note
            self._stop_requested = True
            self._task.cancel()

    async def stop_and_wait(self, note: str = "Stopped by you.") -> None:
        task = self._task
        self.stop(note)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def can_retry(self) -> bool:
        return (
            not self.busy
            and self.last_inputs is not None
            and not isinstance(self.last_error, E.AuthFailed)
        )

    def drop_failed_turn(self) -> bool:
        """Before a retry: take the failed last turn out of the conversation (and mark it
        retried in history, where it stays on record). True when a turn was dropped."""
        turns = self.conversation.turns
        if not turns or turns[-1].finish_reason != "error":
            return False
        turns.pop()
        if self.turns_asked:
            self.turns_asked.pop()
        if self.history is not None and self.last_turn_id is not None:
            with contextlib.suppress(sqlite3.Error):
                self.history.mark_retried(self.last_turn_id)
        return True

    async def retry(self) -> TurnEnded:
        """Ask the last question again, without its failed turn; honours Retry-After."""
        if self.last_inputs is None:
            raise RuntimeError("nothing to retry")
        wait = getattr(self.last_error, "retry_after_s", None)
        self.drop_failed_turn()
        if wait:
            self._emit(
                Notice(self, "Waiting for the server", f"Retrying in {wait:.0f} s, as it asked.")
            )
            await asyncio.sleep(min(float(wait), 600.0))
        return await self.ask(self.last_inputs)

    # -- the pipeline ----------------------------------------------------------------------

    def images_blocked(self, model: str | None = None) -> str | None:
        """Why figures cannot be sent to ``model`` on this profile, or None."""
        profile = self.profile
        model = model or profile.model or self.pool.first_model(profile.api_base)
        probed = self.vision.cached_vision(profile.api_base, model) if model else None
        return vision_block_reason(profile, probed)

    async def ask(self, inputs: Inputs) -> TurnEnded:
        """Run one question end to end; returns the turn's :class:`TurnEnded` (also emitted).

        Never raises for a failed question (the error is on the event); re-raises
        cancellation only after the turn has ended and been recorded.
        """
        self.last_inputs = inputs
        self.last_error = None
        self._stop_note = "Stopped by you."
        self._stop_requested = False
        self._task = asyncio.current_task()
        self._active = True
        st = _TurnState(inputs)
        ended: TurnEnded | None = None
        cancelled = False
        error: E.KanoaError | None = None
        self.stats = None
        self._emit(TurnStarted(self))
        flusher: asyncio.Task | None = None
        try:
            self._set_state("connecting")
            flusher = asyncio.ensure_future(self._flush_history(st))
            await self._run(st)
        except asyncio.CancelledError:
            cancelled = True
        except E.KanoaError as err:
            error = err
        except Exception as exc:  # noqa: BLE001 - every turn ends, whatever happened
            log.exception("unexpected error while asking")
            error = internal_error(exc)
        finally:
            if flusher is not None:
                flusher.cancel()
            self._active = False
            self._task = None
            ended = self._end_turn(st, cancelled=cancelled, error=error)
        if cancelled:
            task = asyncio.current_task()
            if self._stop_requested and task is not None and task.cancelling():
                task.uncancel()  # our own stop(): the turn ended normally, as "stopped"
            else:
                raise asyncio.CancelledError  # cancelled from outside (shutdown): go on
        self._stop_requested = False
        return ended

    async def _flush_history(self, st: _TurnState) -> None:
        # Saves streamed text at least once a second even when tokens stall.
        while True:
            await asyncio.sleep(HISTORY_FLUSH_S)
            if st.recorder is not None:
                with contextlib.suppress(sqlite3.Error):
                    st.recorder.flush_if_due()

    async def _run(self, st: _TurnState) -> None:
        profile = self.profile
        inputs = st.inputs
        client = self.pool.client_for(profile)
        model, info = await self.pool.resolve_model(profile)
        st.model = self.model = model
        self.model_info = info
        self._emit(
            ModelResolved(self, model, info.context_length if info else None, profile.max_tokens)
        )
        first = not self.conversation.turns
        if first and inputs.table is not None and not inputs.table_summary:
            # A table asked about before its summary was ready (the window shows a table
            # as soon as it is read): the summary the model needs is made here.
            from kanoa_desktop.core.ask.interpret import summarise

            table = inputs.table
            inputs.table_summary = await self.run_cpu(lambda: summarise(table))
        blocked = self.images_blocked(model)
        send_images = blocked is None
        if blocked and first and inputs.figures:
            self._emit(Notice(self, "Figures not sent", blocked))
        if send_images and first and inputs.figures and profile.max_images is not None:
            if len(inputs.figures) > profile.max_images:
                n = profile.max_images
                raise E.BadRequest(
                    f"This endpoint takes at most {n} image{'s' if n != 1 else ''} per prompt; "
                    f"you added {len(inputs.figures)}.",
                    "Remove figures, or raise Images per prompt in Settings > Images if the "
                    "server allows more.",
                )
        params = GenerationParams(model, profile.temperature, profile.max_tokens, profile.top_p)
        st.grounding = await self._ground(st, params, send_images, info)
        request, user_msg = build_turn(
            self.conversation,
            inputs,
            params,
            send_images=send_images,
            grounding=st.grounding.prompt_block if st.grounding else "",
        )
        self.last_request = request.payload()
        st.prices = prices_for(profile, self.kanoa_pricing, model=model)
        self.stats = StreamStats(
            price_in_per_million=st.prices.input_per_million,
            price_out_per_million=st.prices.output_per_million,
            # Images at the server's measured cost when known (the context gauge).
            prompt_estimate=estimate_message_tokens(request.messages)
            + request.n_images * (self.image_tokens() - TOKENS_PER_IMAGE),
        )
        asked = asked_markdown(inputs, first, blocked)
        st.turn = self.conversation.add_turn(user_msg)
        st.turn.asked = asked
        self.turns_asked.append(asked)
        st.recorder = self._begin_record(st, user_msg, model, first)
        self._emit(Asked(self, asked, len(self.conversation.turns), self.last_request, blocked))
        if self.energy is not None:
            with contextlib.suppress(Exception):
                st.energy_handle = self.energy.begin()
                st.energy_started = True
        try:
            await self._stream(st, client, request)
        except E.VisionUnsupported:
            # Remembered, so Retry (and every later question) goes without the figures.
            self.vision.remember_vision(profile.api_base, model, False)
            raise

    async def _stream(self, st: _TurnState, client, request) -> None:
        stream = client.stream_chat(request)
        turn_ends = time.monotonic() + YIELD_AFTER_S
        try:
            async for ev in stream:
                if time.monotonic() > turn_ends:  # a backlog: let the window paint first
                    await asyncio.sleep(0)
                    turn_ends = time.monotonic() + YIELD_AFTER_S
                self.stats.feed(ev)
                if isinstance(ev, TextDelta):
                    st.text.append(ev.text)
                    if st.recorder is not None:
                        st.recorder.append(ev.text)
                    self._emit(AnswerDelta(self, ev.text))
                elif isinstance(ev, ReasoningDelta):
                    st.reasoning.append(ev.text)
                    if st.recorder is not None:
                        st.recorder.append_reasoning(ev.text)
                    self._emit(ReasoningText(self, ev.text))
                elif isinstance(ev, RequestSent):
                    self._set_state("waiting")
                elif isinstance(ev, FirstToken):
                    self._set_state("streaming")
                elif isinstance(ev, Finished):
                    st.notices = ev.notices
        finally:
            await stream.aclose()

    async def _ground(self, st: _TurnState, params, send_images: bool, info) -> Any:
        """Knowledge-base passages within what the context leaves (None without one).

        Hybrid search falls back to keywords on *any* embedding failure, with a notice.
        """
        kb = self.knowledge_base()
        if kb is None:
            return None
        from kanoa_desktop.core.kb.budget import token_budget
        from kanoa_desktop.core.kb.retrieval import aground

        profile = self.profile
        inputs = st.inputs
        probe, _ = build_turn(self.conversation, inputs, params, send_images=send_images)
        if probe.n_images:
            # The budget uses the server's real number (measured once; never raises).
            await self.pool.measure_image_tokens(self.profile, self.model)
        image_tokens = probe.n_images * self.image_tokens()
        prompt = estimate_message_tokens(probe.messages) - probe.n_images * TOKENS_PER_IMAGE
        cap = profile.kb_max_context_tokens
        context_length = info.context_length if info else None
        if context_length:
            budget = min(
                token_budget(context_length, prompt, image_tokens, params.max_tokens or 0), cap
            )
        else:
            budget = cap
        hints = [f.name for f in inputs.figures]
        if inputs.table is not None:
            hints += [inputs.table.name, *map(str, list(inputs.table.frame.columns)[:30])]
        kwargs = dict(
            context=inputs.context,
            focus=inputs.focus,
            hints=hints,
            k=max(1, profile.kb_top_k),
        )
        embed = await self._hybrid_embedder(kb)
        if embed is not None:
            try:
                return await aground(
                    kb,
                    inputs.question,
                    budget,
                    embed=embed,
                    embed_model=profile.kb_embeddings_model or "",
                    **kwargs,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any embedding failure: keywords
                self._hybrid_notice(exc)
        return await aground(kb, inputs.question, budget, **kwargs)

    def image_tokens(self) -> int:
        """What one image costs in prompt tokens on this endpoint: the server's own number
        once measured (:meth:`ChatClient.image_token_cost`), else a conservative guess."""
        client = self.pool.client_for(self.profile)
        measured = client.measured_image_tokens(self.model) if self.model else None
        return int(measured) if measured else TOKENS_PER_IMAGE

    def _hybrid_notice(self, exc: BaseException) -> None:
        message = exc.message if isinstance(exc, E.KanoaError) else f"{type(exc).__name__}: {exc}"
        self._emit(
            Notice(
                self,
                "Hybrid search unavailable",
                f"{message} Keyword search is used instead.",
                "Check the embedding model, or clear it in Settings > Knowledge base.",
            )
        )

    async def _hybrid_embedder(self, kb) -> Callable | None:
        """The query embedder after embedding pending chunks (bounded per question);
        None (keywords only) without an embedding model or when embedding fails."""
        model = self.profile.kb_embeddings_model
        if not model:
            return None
        from kanoa_desktop.core.kb.retrieval import embed_pending

        client = self.pool.client_for(self.profile)
        loop = asyncio.get_running_loop()
        timeout = max(float(self.profile.request_timeout_s), 30.0)

        def embed_on_worker(texts: list[str]) -> list[list[float]]:
            # Runs on a worker thread; the request itself runs on the loop.
            future = asyncio.run_coroutine_threadsafe(client.embeddings(model, texts), loop)
            return future.result(timeout=timeout)

        deadline = time.monotonic() + HYBRID_EMBED_SECONDS_PER_QUESTION
        try:
            await self.run_cpu(
                lambda: embed_pending(
                    kb, embed_on_worker, model, cancel=lambda: time.monotonic() > deadline
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure: keyword search
            self._hybrid_notice(exc)
            return None
        return lambda texts: client.embeddings(model, texts)

    # -- history ---------------------------------------------------------------------------

    def _begin_record(self, st: _TurnState, user_msg, model: str, first: bool) -> Any:
        if self.history is None:
            return None
        inputs = st.inputs
        try:
            recorder = self.history.begin_turn(
                self.conversation_id,
                user_message=user_msg,
                question=inputs.question.strip() or ("Interpret." if first else "Go on."),
                model=model,
                profile=self.profile,
                system_prompt=self.conversation.system_prompt,
                context=inputs.context,
                focus=inputs.focus,
                table_name=inputs.table.name if inputs.table is not None else "",
                table_summary=inputs.table_summary if first else "",
                figures=inputs.figures if first else (),
                passages=st.grounding,
            )
        except sqlite3.Error as exc:
            self._emit(
                Notice(
                    self,
                    "History not saved",
                    f"This answer is not being saved to the history: {exc}.",
                    "Check free disk space; the answer itself is not affected.",
                )
            )
            return None
        self.conversation_id = recorder.conversation_id
        return recorder

    def _end_turn(
        self, st: _TurnState, *, cancelled: bool, error: E.KanoaError | None
    ) -> TurnEnded:
        """End the turn exactly once: conversation, history, cost, energy, event."""
        answer, reasoning = "".join(st.text), "".join(st.reasoning)
        stats = self.stats if st.turn is not None else None
        energy_wh = None
        if st.energy_started and self.energy is not None:
            try:
                energy_wh = self.energy.end(st.energy_handle)
            except Exception:  # noqa: BLE001 - energy is a nicety
                log.debug("energy span failed", exc_info=True)
        note = ""
        if cancelled:
            state, finish_reason, note = "stopped", "stopped", self._stop_note
        elif error is not None:
            state, finish_reason = "error", None
            note = f"Answer interrupted: {error.title}." if st.text else ""
        else:
            state = "done"
            finish_reason = (stats.finish_reason if stats else None) or "stop"
            runaway = [n.message for n in st.notices if n.kind == "max_tokens_ignored"]
            if not answer.strip() and reasoning.strip():
                note = (
                    "The model only reasoned and gave no answer (it may have run out of "
                    "tokens while thinking): raise Max tokens in Settings > Generation."
                )
            elif runaway:
                note = runaway[0]  # the client cut a stream that ignored max_tokens
            elif finish_reason == "length":
                note = "Stopped at the max tokens limit (Settings > Generation)."
        if st.turn is not None:
            st.turn.assistant = answer
            st.turn.finish_reason = "error" if error is not None else finish_reason
        cost = 0.0
        if stats is not None and st.prices is not None:
            cost = self.costs.add(stats.prompt_tokens, stats.output_tokens, st.prices).cost
        turn_id = None
        if st.recorder is not None:
            try:
                st.recorder.finish(
                    state,
                    finish_reason,
                    stats=stats,
                    energy_wh=energy_wh,
                    answer=answer,
                    reasoning=reasoning,
                    error_title=error.title if error else None,
                    error_message=error.message if error else None,
                )
                turn_id = st.recorder.turn_id
            except sqlite3.Error as exc:
                log.warning("history: could not finish the turn: %s", exc)
        self.last_turn_id = turn_id if turn_id is not None else self.last_turn_id
        self.last_error = error
        can_retry = error is not None and not isinstance(error, E.AuthFailed)
        ended = TurnEnded(
            self,
            state,
            finish_reason,
            answer,
            reasoning,
            stats,
            note=note,
            error=error,
            can_retry=can_retry,
            energy_wh=energy_wh,
            turn_id=turn_id,
            cost=cost,
        )
        self.state = state
        if st.grounding is not None and st.turn is not None:
            self._emit(Sources(self, st.grounding, answer))
        self._emit(StateChanged(self, state, error.title if error else ""))
        self._emit(ended)
        return ended


def profile_with(profile: Profile, **values: Any) -> Profile:
    """A copy of ``profile`` with some fields changed (command-line overrides)."""
    return replace(profile, **{k: v for k, v in values.items() if v is not None})


def runner_events(events: Sequence[AskEvent], kind: type) -> list:
    """The events of one kind (for tests and the command line)."""
    return [e for e in events if isinstance(e, kind)]


__all__ = [
    "AnswerDelta",
    "AskEvent",
    "Asked",
    "ConversationRunner",
    "EnergySpans",
    "ModelResolved",
    "Notice",
    "ReasoningText",
    "Sources",
    "StateChanged",
    "TurnEnded",
    "TurnStarted",
    "VisionCache",
    "as_error",
    "asked_from_stored",
    "conversation_markdown",
    "quote",
    "you_markdown",
    "asked_markdown",
    "internal_error",
    "profile_with",
    "runner_events",
]
