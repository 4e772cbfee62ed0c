"""One conversation's questions, end to end, with no Qt: the pipeline every face drives.

A :class:`ConversationRunner` owns one conversation. :meth:`ConversationRunner.ask` runs a
question through the whole pipeline:

    resolve the model -> vision gate -> images-per-prompt limit -> knowledge-base grounding
    (within the context budget) -> request -> stream -> stats and cost -> GPU energy span
    -> history record

and reports it as typed events to its listener, in this order for one turn::

    TurnStarted -> StateChanged("connecting") -> ModelResolved -> Notice*
        -> Asked -> StateChanged("waiting") -> Progress* -> StateChanged("streaming")
        -> (AnswerDelta | ReasoningDelta | Progress)* -> Sources? -> TurnEnded

``Progress`` says what the server is doing (:mod:`~kanoa_desktop.core.ask.watch`): reading
the prompt (llama.cpp's own progress), the queue ahead (vLLM's ``/metrics``), or how long
the question has waited or the tokens have stopped; at least once a second while waiting
or silent. A server that stops listening ends the turn at once with an error.

``TurnEnded`` comes exactly once per ``TurnStarted``, from a ``finally``, whatever happens:
done, stopped by the user, an error (the ``error`` field), an unexpected exception (turned
into a :class:`~kanoa_desktop.core.endpoint.errors.KanoaError`), or the task cancelled
because the user started another conversation. It carries the partial text and the stats,
and the turn is recorded in history with them. ``Asked`` and everything after it only come
once a request was built; a turn that fails before (no server, no model) ends with
``TurnEnded(state="error")`` and records nothing.

What the question carries comes from the runner's
:class:`~kanoa_desktop.core.ask.outbox.Outbox` (the conversation's figures, table, context,
focus); its collaborators from one :class:`~kanoa_desktop.core.ask.services.Services`.
Several runners can run concurrently on one loop (a comparison's panes, a batch's workers)
on one Services. The window, the command line, a comparison and a batch all use this class;
none of them re-implements a step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from kanoa_desktop.core.ask.outbox import Carried, Outbox
from kanoa_desktop.core.ask.prompts import DEFAULT_SYSTEM_PROMPT
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.logs import report_hint
from kanoa_desktop.core.config.pricing import Prices, prices_for
from kanoa_desktop.core.config.profiles import Profile, vision_block_reason
from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import ChatRequest, Conversation, Turn
from kanoa_desktop.core.endpoint.events import (
    Finished,
    FirstToken,
    PromptProgress,
    ReasoningDelta,
    RequestSent,
    TextDelta,
)
from kanoa_desktop.core.endpoint.stats import StreamStats
from kanoa_desktop.core.history import endings
from kanoa_desktop.core.listeners import tell
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
class Progress:
    """What the server is doing now (``activity.text()`` is one line for a status bar)."""

    runner: ConversationRunner
    activity: Any  # core.ask.watch.Activity


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
    note: str = ""  # the line under the answer (core.history.endings.note)
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
    | Progress
    | Sources
    | TurnEnded
)


def you_markdown(asked: str, index: int | None = None) -> str:
    """The user's side of a turn as the answer views show it: what was asked, quoted."""
    quoted = "\n".join(f"> {line}" if line else ">" for line in asked.strip().splitlines())
    return f"**You**{f' ({index})' if index else ''}\n\n{quoted}\n\n"


def conversation_markdown(conversation: Conversation) -> str:
    """A conversation as Markdown: what the user asked (never the prompt sent) and answers."""
    from kanoa_desktop.core.history.store import question_text

    parts = []
    for i, turn in enumerate(conversation.turns):
        asked = turn.asked or question_text(turn.user)
        note = f"\n\n*{turn.note}*" if turn.note else ""
        parts.append(f"{you_markdown(asked, i + 1)}{turn.assistant}{note}\n\n---\n\n")
    return "".join(parts)


def reopened(conv: Any) -> tuple[Conversation, Outbox]:
    """A stored conversation (``HistoryStore.load_conversation``) to show and continue: its
    messages, each turn with what was asked and how it ended, and its outbox."""
    conversation, outbox = conv.conversation(), Outbox.restored(conv)
    for turn, asked in zip(conversation.turns, outbox.asked_texts(), strict=False):
        turn.asked = asked
    return conversation, outbox


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

    question: str
    carried: Carried = Carried()
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


class ConversationRunner:
    """Runs the questions of one conversation; see the module docstring for the events.

    ``profile`` may be replaced between questions (:attr:`profile`); ``outbox`` holds what
    the conversation sends (a new, empty one by default); ``services`` its collaborators.
    """

    def __init__(
        self,
        profile: Profile,
        services: Services,
        *,
        listener: Callable[[AskEvent], None] | None = None,
        outbox: Outbox | None = None,
        system_prompt: str | None = None,
        conversation: Conversation | None = None,
        conversation_id: int | None = None,
        table_budget: int | None = None,
    ) -> None:
        self.profile = profile
        self.services = services
        self.pool = services.pool
        self.listeners: list[Callable[[AskEvent], None]] = [listener] if listener else []
        self.outbox = outbox if outbox is not None else Outbox()
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
        self.last_request: dict[str, Any] | None = None  # the body exactly as sent
        self.last_question: str | None = None
        self.last_turn_id: int | None = None
        self.last_error: E.KanoaError | None = None
        self._task: asyncio.Task | None = None
        self._stop_why = ""
        self._stop_requested = False
        self._active = False

    # -- events ----------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[AskEvent], None]) -> None:
        self.listeners.append(listener)

    def unsubscribe(self, listener: Callable[[AskEvent], None]) -> None:
        with contextlib.suppress(ValueError):
            self.listeners.remove(listener)

    def _emit(self, event: AskEvent) -> None:
        tell(self.listeners, event, "ask")

    def _set_state(self, state: str, detail: str = "") -> None:
        self.state = state
        self._emit(StateChanged(self, state, detail))

    # -- control ---------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True from :meth:`start` (or the start of :meth:`ask`) until the turn ended."""
        return self._active or (self._task is not None and not self._task.done())

    def start(self, question: str = "", *, retry: bool = False) -> asyncio.Task:
        """Run :meth:`ask` (or :meth:`retry`) as a task on the running loop (the window's
        way); :attr:`busy` is true from this call on."""
        if self.busy:
            raise RuntimeError("a question is already running in this conversation")
        self._task = asyncio.ensure_future(self.retry() if retry else self.ask(question))
        return self._task

    def stop(self, why: str = "") -> None:
        """Cancel the running question; it ends (and is recorded) with its partial text,
        "Stopped by you", with ``why`` ("you started a new conversation") in its note."""
        if self._task is not None and not self._task.done():
            self._stop_why = why
            self._stop_requested = True
            self._task.cancel()

    async def stop_and_wait(self, why: str = "") -> None:
        task = self._task
        self.stop(why)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def can_retry(self) -> bool:
        return (
            not self.busy
            and self.last_question is not None
            and not isinstance(self.last_error, E.AuthFailed)
        )

    def drop_failed_turn(self) -> bool:
        """Before a retry: take the failed last turn out of the conversation (and mark it
        retried in history, where it stays on record); what it carried waits again. True
        when a turn was dropped."""
        turns = self.conversation.turns
        if not turns or turns[-1].finish_reason != "error":
            return False
        self.outbox.unmark(len(turns))
        turns.pop()
        if self.services.history is not None and self.last_turn_id is not None:
            with contextlib.suppress(sqlite3.Error):
                self.services.history.mark_retried(self.last_turn_id)
        return True

    async def retry(self) -> TurnEnded:
        """Ask the last question again, without its failed turn; honours Retry-After."""
        if self.last_question is None:
            raise RuntimeError("nothing to retry")
        wait = getattr(self.last_error, "retry_after_s", None)
        self.drop_failed_turn()
        if wait:
            self._emit(
                Notice(self, "Waiting for the server", f"Retrying in {wait:.0f} s, as it asked.")
            )
            await asyncio.sleep(min(float(wait), 600.0))
        return await self.ask(self.last_question)

    # -- the pipeline ----------------------------------------------------------------------

    def images_blocked(self, model: str | None = None) -> str | None:
        """Why figures cannot be sent to ``model`` on this profile, or None."""
        profile = self.profile
        model = model or profile.model or self.pool.first_model(profile.api_base)
        probed = self.services.vision.cached_vision(profile.api_base, model) if model else None
        return vision_block_reason(profile, probed)

    async def ask(self, question: str = "") -> TurnEnded:
        """Ask ``question`` with what the outbox holds for it; returns the turn's
        :class:`TurnEnded` (also emitted).

        Never raises for a failed question (the error is on the event); re-raises
        cancellation only after the turn has ended and been recorded.
        """
        self.last_question = question
        self.last_error = None
        self._stop_why = ""
        self._stop_requested = False
        self._task = asyncio.current_task()
        self._active = True
        st = _TurnState(question)
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

    def _request(self, model: str, user_msg: dict[str, Any]) -> ChatRequest:
        p = self.profile
        request = ChatRequest(model, self.conversation.messages_for(user_msg), p.temperature,
                              p.max_tokens, p.top_p)  # fmt: skip
        owner = self.model_info.owned_by if self.model_info else ""
        # Usage as it comes, so a stopped answer keeps the server's own count: vLLM sends
        # it on every chunk when asked, llama.cpp its timings.
        if owner == "vllm":
            request.extra["stream_options"] = {"include_usage": True,
                                               "continuous_usage_stats": True}  # fmt: skip
        elif owner == "llamacpp":
            request.extra["timings_per_token"] = True
        return request

    async def _run(self, st: _TurnState) -> None:
        profile = self.profile
        outbox = self.outbox
        client = self.pool.client_for(profile)
        model, info = await self.pool.resolve_model(profile)
        st.model = self.model = model
        self.model_info = info
        self._emit(
            ModelResolved(self, model, info.context_length if info else None, profile.max_tokens)
        )
        blocked = self.images_blocked(model)
        carried = outbox.pending(images=blocked is None)
        if carried.table is not None and not carried.table_summary:
            # A table asked about before its summary was ready (the window shows a table
            # as soon as it is read): the summary the model needs is made here.
            from kanoa_desktop.core.inputs.plan import table_summary

            table, budget = carried.table, self.table_budget
            summary = await self.run_cpu(lambda: table_summary(table, *([budget] if budget else [])))
            if outbox.table is table:
                outbox.table_summary = summary
            carried = replace(carried, table_summary=summary)
        st.carried = carried
        if blocked and carried.figures:
            self._emit(Notice(self, "Figures not sent", blocked))
        st.grounding = await self._ground(st, model)
        grounding = st.grounding.prompt_block if st.grounding else ""
        user_msg = outbox.message(st.question, carried, grounding=grounding)
        request = self._request(model, user_msg)
        limit = profile.max_images
        if limit is not None and carried.sent_figures and request.n_images > limit:
            before = request.n_images - len(carried.sent_figures)
            raise E.BadRequest(
                f"This endpoint takes at most {limit} image{'s' if limit != 1 else ''} per "
                f"prompt; this question would send {request.n_images}"
                + (f" ({before} of them in the conversation already)." if before else "."),
                "Remove figures (or start a new conversation), or raise Images per prompt in "
                "Settings > Images if the server allows more.",
            )
        self.last_request = request.payload()
        st.prices = prices_for(profile, self.services.pricing, model=model)
        self.stats = StreamStats(
            price_in_per_million=st.prices.input_per_million,
            price_out_per_million=st.prices.output_per_million,
            # Images at the server's measured cost when known (the context gauge).
            prompt_estimate=estimate_message_tokens(request.messages)
            + request.n_images * (self.image_tokens() - TOKENS_PER_IMAGE),
        )
        asked = outbox.asked(st.question, carried, blocked)
        st.turn = self.conversation.add_turn(user_msg)
        st.turn.asked = asked
        number = len(self.conversation.turns)
        outbox.mark_sent(number, carried, asked)
        st.recorder = self._begin_record(st, user_msg, model, number == 1)
        self._emit(Asked(self, asked, number, self.last_request, blocked))
        if self.services.energy is not None:
            with contextlib.suppress(Exception):
                st.energy_handle = self.services.energy.begin()
                st.energy_started = True
        try:
            await self._stream(st, client, request)
        except E.VisionUnsupported:
            # Remembered, so Retry (and every later question) goes without the figures.
            self.services.vision.remember_vision(profile.api_base, model, False)
            raise

    @property
    def run_cpu(self):
        return self.services.run_cpu

    async def _stream(self, st: _TurnState, client, request) -> None:
        """Consume the stream beside a :class:`~kanoa_desktop.core.ask.watch.ServerWatch`:
        whichever ends first ends the turn (the watch only when the server is gone)."""
        from kanoa_desktop.core.ask.watch import ServerWatch

        watch = ServerWatch(
            client, lambda a: self._emit(Progress(self, a)), partial=lambda: "".join(st.text)
        )
        consumer = asyncio.ensure_future(self._consume(st, client, request, watch))
        watcher = asyncio.ensure_future(watch.run())
        try:
            await asyncio.wait({consumer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not consumer.done():
                raise watcher.result()  # the server stopped listening
            consumer.result()
        finally:
            for task in (watcher, consumer):
                task.cancel()
            await asyncio.gather(watcher, consumer, return_exceptions=True)

    async def _consume(self, st: _TurnState, client, request, watch) -> None:
        stream = client.stream_chat(request)
        turn_ends = time.monotonic() + YIELD_AFTER_S
        try:
            async for ev in stream:
                watch.feed(ev)
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
                    self.last_request = ev.payload or self.last_request  # exactly as sent
                    self._set_state("waiting")
                elif isinstance(ev, FirstToken):
                    self._set_state("streaming")
                elif isinstance(ev, PromptProgress):
                    self._emit(Progress(self, watch.activity(ev.t)))  # at once, not per tick
                elif isinstance(ev, Finished):
                    st.notices = ev.notices
        finally:
            await stream.aclose()

    async def _ground(self, st: _TurnState, model: str) -> Any:
        """Knowledge-base passages within what the context leaves (None without one), found
        by the question and what the conversation is about.

        Hybrid search falls back to keywords on *any* embedding failure, with a notice.
        """
        kb = self.services.knowledge_base()
        if kb is None:
            return None
        from kanoa_desktop.core.kb.budget import token_budget
        from kanoa_desktop.core.kb.retrieval import aground

        profile, outbox, info = self.profile, self.outbox, self.model_info
        probe = self._request(model, outbox.message(st.question, st.carried))
        if probe.n_images:
            # The budget uses the server's real number (measured once; never raises).
            cost = await self.pool.measure_image_tokens(self.profile, self.model)
            remember = getattr(self.services.vision, "remember_image_tokens", None)
            if cost and callable(remember):
                remember(self.profile.api_base, self.model, cost)
        image_tokens = probe.n_images * self.image_tokens()
        prompt = estimate_message_tokens(probe.messages) - probe.n_images * TOKENS_PER_IMAGE
        cap = profile.kb_max_context_tokens
        context_length = info.context_length if info else None
        if context_length:
            budget = min(
                token_budget(context_length, prompt, image_tokens, profile.max_tokens or 0), cap
            )
        else:
            budget = cap
        hints = [f.name for f in outbox.figures]
        if outbox.table is not None:
            hints += [outbox.table.name, *map(str, list(outbox.table.frame.columns)[:30])]
        kwargs = dict(
            context=outbox.context,
            focus=outbox.focus,
            hints=hints,
            k=max(1, profile.kb_top_k),
        )
        embed = await self._hybrid_embedder(kb)
        if embed is not None:
            try:
                return await aground(
                    kb,
                    st.question,
                    budget,
                    embed=embed,
                    embed_model=profile.kb_embeddings_model or "",
                    **kwargs,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any embedding failure: keywords
                self._hybrid_notice(exc)
        return await aground(kb, st.question, budget, **kwargs)

    def image_tokens(self) -> int:
        """What one image costs in prompt tokens on this endpoint: the server's own number
        once measured (:meth:`ChatClient.image_token_cost`), else a conservative guess."""
        client = self.pool.client_for(self.profile)
        measured = client.measured_image_tokens(self.model) if self.model else None
        if not measured and self.model:
            # Measured earlier (a connection test, a past session), kept by the store.
            cached = getattr(self.services.vision, "cached_image_tokens", None)
            measured = cached(self.profile.api_base, self.model) if callable(cached) else None
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
        history, carried = self.services.history, st.carried
        if history is None:
            return None
        try:
            recorder = history.begin_turn(
                self.conversation_id,
                user_message=user_msg,
                question=st.question.strip() or ("Interpret." if first else "Go on."),
                model=model,
                profile=self.profile,
                system_prompt=self.conversation.system_prompt,
                context=carried.context,
                focus=carried.focus,
                table_name=carried.table.name if carried.table is not None else "",
                table_summary=carried.table_summary,
                figures=carried.sent_figures,
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
        if st.energy_started and self.services.energy is not None:
            try:
                energy_wh = self.services.energy.end(st.energy_handle)
            except Exception:  # noqa: BLE001 - energy is a nicety
                log.debug("energy span failed", exc_info=True)
        detail = ""
        if cancelled:
            state, finish_reason, detail = "stopped", "stopped", self._stop_why
        elif error is not None:
            state, finish_reason = "error", None
            detail = "the text received until then is kept" if st.text else ""
        else:
            state = "done"
            finish_reason = (stats.finish_reason if stats else None) or "stop"
            runaway = [n.message for n in st.notices if n.kind == "max_tokens_ignored"]
            if not answer.strip() and reasoning.strip():
                detail = ("The model only reasoned and gave no answer (it may have run out of "
                          f"tokens while thinking): {endings.DETAILS[endings.MAX_TOKENS]}")  # fmt: skip
            elif runaway:
                detail = runaway[0]  # the client cut a stream that ignored max_tokens
        error_title = error.title if error else ""
        note = endings.note(state, finish_reason, error_title, detail) if (
            detail or state != "error") else ""  # fmt: skip
        if st.turn is not None:
            st.turn.assistant, st.turn.note = answer, note
            st.turn.finish_reason = "error" if error is not None else finish_reason
        cost = 0.0
        if stats is not None and st.prices is not None and stats.served:
            cost = self.services.costs.add(stats.prompt_tokens, stats.output_tokens, st.prices,
                                           estimated=stats.estimated).cost  # fmt: skip
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


__all__ = [
    "AnswerDelta",
    "Progress",
    "AskEvent",
    "Asked",
    "ConversationRunner",
    "ModelResolved",
    "Notice",
    "ReasoningText",
    "Sources",
    "StateChanged",
    "TurnEnded",
    "TurnStarted",
    "as_error",
    "conversation_markdown",
    "reopened",
    "you_markdown",
    "internal_error",
    "profile_with",
]
