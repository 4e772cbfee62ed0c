"""A score run: every item asked of 1 to 4 profiles, judged, summarised, kept; no Qt.

A :class:`ScoreRun` takes a :class:`Source` (the chart suite for a seed, or an answer key)
and profiles, and asks each profile every item through the one question path
(:mod:`.question`), up to ``concurrency`` items at a time per profile, on the face's
:class:`~kanoa_desktop.core.ask.services.Services` (one client pool, the history, prices,
the worker pool). Figures are drawn and prepared off the loop's thread
(``services.run_cpu``), a few items ahead of the questions, once per item and image size
whatever the number of profiles.

What a caller may rely on:

- **Events** (to ``listener``): :class:`ItemScored` or :class:`ItemFailed` as each item
  ends, :class:`RunNotice` for what the user should know (a run continued, a profile whose
  server stopped answering), and one :class:`ScoreEnded` per :meth:`ScoreRun.run` with the
  summaries and the paired comparisons.
- **Nothing scored is lost.** With a history (``services.history``), each item's
  conversation is recorded by its
  runner and its score committed the moment it is judged
  (:class:`~kanoa_desktop.core.history.scores.ScoreRecords`). :meth:`ScoreRun.stop` stops
  the questions in flight (those items stay unscored) and keeps the rest. A profile whose
  questions fail :data:`HALT_AFTER` times in a row (a server that died) stops asking; the
  others go on.
- **A run continues.** Its identity (:func:`run_key`) is what went in: the items (suite,
  seed and n, or the key's bytes and figures), the profiles' endpoints, models and
  generation settings, and the prompt. A new run with the same identity continues the
  newest unfinished one: scored items are kept and not asked again; failed and unasked
  ones are asked. Calling :meth:`ScoreRun.run` again on the same object does the same.
- **Statistics** follow :mod:`.stats` and :mod:`.extract`: ``n`` counts scored items
  (a failed request is not a wrong reading: failures are counted apart).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kanoa_desktop.core.ask.compare import pane_labels
from kanoa_desktop.core.ask.pipeline import internal_error
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.listeners import tell
from kanoa_desktop.core.score import question as Q
from kanoa_desktop.core.score.extract import ANSWER_INSTRUCTION, extract, judge
from kanoa_desktop.core.score.items import ScoreItem
from kanoa_desktop.core.score.stats import Paired, paired, wilson_interval

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 32
MAX_PROFILES = 4
#: Consecutive failed questions after which a profile stops asking (its server is down).
HALT_AFTER = 3


class ScoreError(KanoaError):
    """The run cannot start as asked (no profile, too many, nothing to score)."""

    title = "Cannot score"


# ---------------------------------------------------------------- what is scored


@dataclass(frozen=True)
class Source:
    """The items of a run and how to name them. ``spec`` goes into reports and the
    history (suite, seed, n and renderer, or the key's path and digest); ``identity`` is
    the part of the run's identity that the items make."""

    kind: str  # "suite" or "key"
    items: list[ScoreItem]
    label: str
    spec: dict[str, Any]
    identity: str


def suite_source(n: int, seed: int = 0) -> Source:
    """The first ``n`` items of the chart suite for ``seed`` (cheap: charts are drawn
    when asked). Raises :class:`~kanoa_desktop.core.score.suite.SuiteError`."""
    from kanoa_desktop.core.score.suite import SUITE_ID, renderer_name, spec_digest, suite_items

    items = suite_items(n, seed)
    return Source(
        kind="suite",
        items=items,
        label=f"{SUITE_ID}, seed {seed}, {n} item{'s' if n != 1 else ''}",
        spec={"suite": SUITE_ID, "seed": seed, "n": n, "renderer": renderer_name()},
        identity=f"suite:{SUITE_ID}:{seed}:{n}:{spec_digest(items)}",
    )


def key_source(path: Path | str) -> Source:
    """The items of an answer key (blocking: checks and hashes every figure). Raises
    :class:`~kanoa_desktop.core.score.keys.KeyError_`."""
    from kanoa_desktop.core.score.keys import load_key

    key = load_key(path)
    return Source(
        kind="key",
        items=key.items,
        label=f"key {key.name}, {len(key.items)} item{'s' if len(key.items) != 1 else ''}",
        spec={"key": str(key.path), "digest": key.digest, "n": len(key.items)},
        identity=f"key:{key.digest}",
    )


def run_key(source: Source, profiles: Sequence[Profile]) -> str:
    """The identity of a run: same items, profiles' settings and prompt, same key."""
    from kanoa_desktop.core.history.records import safe_endpoint

    spec = {
        "items": source.identity,
        "profiles": [
            [safe_endpoint(p.api_base), p.model, p.temperature, p.max_tokens, p.top_p,
             p.image_long_side]
            for p in profiles
        ],
        "prompt": [Q.SYSTEM_PROMPT, ANSWER_INSTRUCTION],
    }  # fmt: skip
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class ItemScore:
    """One item as one profile answered it. ``answer`` is the raw reply; ``extracted``
    and ``how`` what was read from it (:class:`~.extract.Extracted`)."""

    item: str
    index: int
    template: str
    question: str
    truth: str
    kind: str
    answer: str
    extracted: str
    how: str
    correct: bool
    rel_error: float | None = None
    model: str = ""
    output_tokens: int | None = None
    generation_s: float | None = None  # from the first token to the last
    tokens_per_s: float | None = None
    cost: float = 0.0
    estimated: bool = True
    finish_reason: str | None = None
    conversation_id: int | None = None
    source: str = ""

    @property
    def unparsed(self) -> bool:
        return self.how == "unparsed"


@dataclass(frozen=True)
class ItemFailure:
    item: str
    index: int
    error: str
    hint: str = ""


@dataclass(frozen=True)
class TemplateScore:
    n: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None


@dataclass(frozen=True)
class ProfileSummary:
    """One profile's score. ``n`` items scored of ``total``; ``failed`` requests that
    failed (not counted in n); the interval is Wilson's 95 %; ``tokens_per_s`` is every
    scored answer's output tokens after its first over their generation time;
    ``cost_per_correct`` None when nothing was right."""

    index: int
    label: str
    model: str
    endpoint: str
    total: int
    n: int
    correct: int
    ci_low: float
    ci_high: float
    unparsed: int
    failed: int
    by_template: dict[str, TemplateScore]
    mean_rel_error: float | None
    tokens_per_s: float | None
    cost: float
    estimated: bool
    halted: str = ""

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None

    @property
    def unparsed_share(self) -> float | None:
        return self.unparsed / self.n if self.n else None

    @property
    def cost_per_correct(self) -> float | None:
        return self.cost / self.correct if self.correct else None


def summarise(
    index: int,
    label: str,
    model: str,
    endpoint: str,
    total: int,
    scores: Sequence[ItemScore],
    failed: int = 0,
    halted: str = "",
) -> ProfileSummary:
    """The summary of one profile's scores (see :class:`ProfileSummary`)."""
    n = len(scores)
    correct = sum(1 for s in scores if s.correct)
    low, high = wilson_interval(correct, n)
    by: dict[str, list[int]] = {}
    for s in scores:
        counts = by.setdefault(s.template, [0, 0])
        counts[0] += 1
        counts[1] += int(s.correct)
    rel = [s.rel_error for s in scores if s.kind == "number" and s.rel_error is not None]
    tokens = sum(max(0, (s.output_tokens or 0) - 1) for s in scores if s.generation_s)
    seconds = sum(s.generation_s for s in scores if s.generation_s)
    return ProfileSummary(
        index=index,
        label=label,
        model=model,
        endpoint=endpoint,
        total=total,
        n=n,
        correct=correct,
        ci_low=low,
        ci_high=high,
        unparsed=sum(1 for s in scores if s.unparsed),
        failed=failed,
        by_template={t: TemplateScore(c[0], c[1]) for t, c in sorted(by.items())},
        mean_rel_error=sum(rel) / len(rel) if rel else None,
        tokens_per_s=tokens / seconds if seconds > 0 and tokens else None,
        cost=sum(s.cost for s in scores),
        estimated=any(s.estimated for s in scores),
        halted=halted,
    )


def stored_summaries(stored: Any) -> tuple[list[ProfileSummary], list[Paired]]:
    """The summaries and paired comparisons of a run as the history kept it (a
    :class:`~kanoa_desktop.core.history.scores.StoredRun`): what an earlier run showed."""
    profiles = stored.spec.get("profiles") or []
    total = int((stored.spec.get("source") or {}).get("n") or 0)
    names = set(ItemScore.__dataclass_fields__)
    scores: dict[int, list[ItemScore]] = {}
    failed: dict[int, int] = {}
    for (p, _item), fields in stored.results.items():
        if fields.get("state") == "scored":
            with contextlib.suppress(TypeError):
                scores.setdefault(p, []).append(
                    ItemScore(**{k: v for k, v in fields.items() if k in names})
                )
        else:
            failed[p] = failed.get(p, 0) + 1
    summaries = []
    for i, prof in enumerate(profiles):
        mine = sorted(scores.get(i, []), key=lambda s: s.index)
        model = next((s.model for s in mine if s.model), prof.get("model", ""))
        summaries.append(
            summarise(
                i,
                prof.get("name", f"profile {i + 1}"),
                model,
                prof.get("endpoint", ""),
                total,
                mine,
                failed=failed.get(i, 0),
            )  # fmt: skip
        )
    pairs = []
    for a in range(len(summaries)):
        for b in range(a + 1, len(summaries)):
            pairs.append(
                paired(
                    summaries[a].label,
                    summaries[b].label,
                    {s.item: s.correct for s in scores.get(a, [])},
                    {s.item: s.correct for s in scores.get(b, [])},
                )  # fmt: skip
            )
    return summaries, pairs


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class ItemScored:
    run: ScoreRun
    profile: int
    score: ItemScore


@dataclass(frozen=True)
class ItemFailed:
    run: ScoreRun
    profile: int
    failure: ItemFailure


@dataclass(frozen=True)
class RunNotice:
    run: ScoreRun
    message: str


@dataclass(frozen=True)
class ScoreEnded:
    """:meth:`ScoreRun.run` is over: ``state`` ``done`` (every item scored by every
    profile), ``stopped`` (by the user) or ``incomplete`` (failures, a server that
    stopped answering: run again to continue)."""

    run: ScoreRun
    state: str
    summaries: list[ProfileSummary]
    paired: list[Paired]


ScoreEvent = ItemScored | ItemFailed | RunNotice | ScoreEnded


# ---------------------------------------------------------------- the run


class _ItemHistory:
    """The history as one item's runner sees it: the conversation it starts is linked to
    the run at once, so the history's list never shows it as an entry of its own."""

    def __init__(self, run: ScoreRun) -> None:
        self._run = run

    def begin_turn(self, conversation_id: int | None, **kw: Any):
        recorder = self._run.history.begin_turn(conversation_id, **kw)
        if self._run.records is not None and self._run.run_id is not None:
            self._run.records.link_conversation(self._run.run_id, recorder.conversation_id)
        return recorder

    def __getattr__(self, name: str) -> Any:  # mark_retried and the rest: the store's
        return getattr(self._run.history, name)


@dataclass
class _Lane:
    """One profile's queue and state within a run."""

    index: int
    profile: Profile
    label: str
    pending: deque = field(default_factory=deque)
    in_a_row: int = 0  # consecutive failures
    halted: str = ""
    model: str = ""


class ScoreRun:
    """Score ``source`` on ``profiles``; see the module docstring. ``history`` is a
    :class:`~kanoa_desktop.core.history.store.HistoryStore` (or None: nothing kept)."""

    def __init__(
        self,
        source: Source,
        profiles: Sequence[Profile],
        services: Any,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        listener: Callable[[ScoreEvent], None] | None = None,
        lookahead: int | None = None,
    ) -> None:
        if not profiles:
            raise ScoreError("Choose at least one profile to score.", "Add one in Settings.")
        if len(profiles) > MAX_PROFILES:
            raise ScoreError(
                f"A score run takes 1 to {MAX_PROFILES} profiles; {len(profiles)} were given.",
                "Score the others in another run.",
            )
        if not source.items:
            raise ScoreError("There is nothing to score.", "Give a suite size or a key.")
        self.source = source
        self.items = list(source.items)
        self.profiles = list(profiles)
        self.labels = pane_labels(self.profiles)
        self.services = services
        self.history = services.history
        self.records = None
        if self.history is not None:
            from kanoa_desktop.core.history.scores import ScoreRecords

            self.records = ScoreRecords(self.history)
        self.concurrency = max(1, min(int(concurrency), MAX_CONCURRENCY))
        self.listeners: list[Callable[[ScoreEvent], None]] = [listener] if listener else []
        self.run_cpu = services.run_cpu
        self.lookahead = lookahead if lookahead is not None else self.concurrency + 2
        self.key = run_key(source, self.profiles)
        self.run_id: int | None = None
        self.continued = 0  # scores taken over from an earlier run with the same identity
        self.scores: dict[tuple[int, str], ItemScore] = {}
        self.failures: dict[tuple[int, str], ItemFailure] = {}
        self.state = "new"
        self.started: float | None = None
        self.elapsed_s = 0.0
        self._lanes = [
            _Lane(i, p, label, model=p.model)
            for i, (p, label) in enumerate(zip(self.profiles, self.labels, strict=True))
        ]
        self._figures: dict[tuple[str, int], asyncio.Future] = {}
        self._needed: dict[tuple[str, int], int] = {}
        self._runners: set[Any] = set()
        self._stopping = False
        self._running = False
        self._task: asyncio.Task | None = None
        # The runners' services: the history links each item's conversation to the run.
        self._item_services = services.replace(
            history=_ItemHistory(self) if self.history is not None else None
        )

    # -- events ----------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[ScoreEvent], None]) -> None:
        self.listeners.append(listener)

    def unsubscribe(self, listener: Callable[[ScoreEvent], None]) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def _emit(self, event: ScoreEvent) -> None:
        tell(self.listeners, event, "score")

    # -- results ---------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while :meth:`run` runs (started by :meth:`start` or awaited directly)."""
        return self._running or (self._task is not None and not self._task.done())

    @property
    def title(self) -> str:
        names = " vs ".join(self.labels)
        return f"Score {self.source.label}: {names}"

    def model_of(self, index: int) -> str:
        return self._lanes[index].model or self.profiles[index].model

    def profile_scores(self, index: int) -> list[ItemScore]:
        """One profile's scores in item order."""
        return [self.scores[(index, i.id)] for i in self.items if (index, i.id) in self.scores]

    def summaries(self) -> list[ProfileSummary]:
        from kanoa_desktop.core.history.records import safe_endpoint

        out = []
        for lane in self._lanes:
            failed = sum(1 for (p, _) in self.failures if p == lane.index)
            out.append(
                summarise(
                    lane.index,
                    lane.label,
                    self.model_of(lane.index),
                    safe_endpoint(lane.profile.api_base),
                    len(self.items),
                    self.profile_scores(lane.index),
                    failed=failed,
                    halted=lane.halted,
                )
            )
        return out

    def paired(self) -> list[Paired]:
        """McNemar's exact test for every pair of profiles, on the items both scored."""
        out = []
        for a in range(len(self._lanes)):
            for b in range(a + 1, len(self._lanes)):
                right_a = {k: s.correct for (p, k), s in self.scores.items() if p == a}
                right_b = {k: s.correct for (p, k), s in self.scores.items() if p == b}
                out.append(paired(self.labels[a], self.labels[b], right_a, right_b))
        return out

    def spec(self) -> dict[str, Any]:
        """How the run was made, for reports and the history."""
        from kanoa_desktop.core.history.records import profile_params, safe_endpoint

        return {
            "source": self.source.spec,
            "label": self.source.label,
            "system_prompt": Q.SYSTEM_PROMPT,
            "instruction": ANSWER_INSTRUCTION,
            "concurrency": self.concurrency,
            "profiles": [
                {
                    "name": lane.label,
                    "endpoint": safe_endpoint(lane.profile.api_base),
                    "model": self.model_of(lane.index),
                    "params": profile_params(lane.profile),
                }
                for lane in self._lanes
            ],
        }

    # -- control ---------------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        """Run :meth:`run` as a task on the running loop (the window's way)."""
        if self.busy:
            raise RuntimeError("the score run is already running")
        self._task = asyncio.ensure_future(self.run())
        return self._task

    def stop(self) -> None:
        """Stop asking: questions in flight end as stopped (their items stay unscored),
        what was scored is kept; :meth:`run` returns ScoreEnded("stopped")."""
        self._stopping = True
        for runner in list(self._runners):
            runner.stop("Score run stopped.")

    async def stop_and_wait(self) -> None:
        task = self._task
        self.stop()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    # -- running ---------------------------------------------------------------------------

    def _open_record(self) -> None:
        """Continue the newest unfinished run with this identity, or start one."""
        if self.records is None or self.run_id is not None:
            return
        import sqlite3

        try:
            found = self.records.latest_open(self.key)
            stored = self.records.load(found) if found is not None else None
            if stored is not None:
                known = {i.id for i in self.items}
                for (p, item), fields in stored.results.items():
                    if fields.get("state") != "scored" or item not in known:
                        continue
                    fields = {
                        k: v for k, v in fields.items() if k in ItemScore.__dataclass_fields__
                    }
                    with contextlib.suppress(TypeError):
                        self.scores[(p, item)] = ItemScore(**fields)
                self.run_id = stored.id
                self.continued = len(self.scores)
                self.records.set_state(stored.id, "running")
            else:
                self.run_id = self.records.create_run(self.key, self.title, self.spec())
                if self.run_id is None:
                    self._emit(
                        RunNotice(
                            self,
                            "This run is not kept as a run in the history (the disk refuses "
                            "writes now); each question is, and is saved when the disk is back.",
                        )
                    )
        except sqlite3.Error as exc:
            log.warning("score run not recorded: %s", exc)
            self.records = None
            self._emit(RunNotice(self, f"This run is not saved to the history ({exc})."))

    async def run(self) -> ScoreEnded:
        """Ask every (profile, item) without a score; returns (and emits) ScoreEnded.
        Never raises for a failed item."""
        if self._running:
            raise RuntimeError("the score run is already running")
        self._running = True
        try:
            return await self._run()
        finally:
            self._running = False

    async def _run(self) -> ScoreEnded:
        self._stopping = False
        self.state = "running"
        self._open_record()
        if self.continued:
            total = len(self.items) * len(self._lanes)
            self._emit(
                RunNotice(
                    self,
                    f"Continuing the unfinished run with the same items and profiles: "
                    f"{self.continued} of {total} answers already scored are kept.",
                )
            )
        self.failures.clear()
        if self.records is not None and self.run_id is not None:
            import sqlite3

            with contextlib.suppress(sqlite3.Error):
                self.records.forget_failures(self.run_id)  # asked again now
        for lane in self._lanes:
            lane.halted, lane.in_a_row = "", 0
            lane.pending = deque(i for i in self.items if (lane.index, i.id) not in self.scores)
            for item in lane.pending:
                k = (item.id, lane.profile.image_long_side)
                self._needed[k] = self._needed.get(k, 0) + 1
        t0 = time.monotonic()
        self.started = self.started or time.time()
        workers = [
            asyncio.ensure_future(self._worker(lane))
            for lane in self._lanes
            for _ in range(min(self.concurrency, max(1, len(lane.pending))))
        ]
        cancelled = False
        try:
            await asyncio.gather(*workers)
        except asyncio.CancelledError:
            cancelled = True
            self._stopping = True
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        finally:
            for fut in self._figures.values():
                fut.cancel()
            self._figures.clear()
            self._needed.clear()
            self.elapsed_s += time.monotonic() - t0
        complete = len(self.scores) == len(self.items) * len(self._lanes)
        state = "done" if complete else ("stopped" if self._stopping else "incomplete")
        self.state = state
        if self.records is not None and self.run_id is not None:
            import sqlite3

            with contextlib.suppress(sqlite3.Error):
                self.records.set_state(self.run_id, state)
        ended = ScoreEnded(self, state, self.summaries(), self.paired())
        self._emit(ended)
        if cancelled:
            raise asyncio.CancelledError
        return ended

    async def _worker(self, lane: _Lane) -> None:
        while lane.pending and not self._stopping and not lane.halted:
            item = lane.pending.popleft()
            for ahead in list(lane.pending)[: self.lookahead]:
                self._figure(ahead, lane.profile.image_long_side)
            await self._score(lane, item)

    def _figure(self, item: ScoreItem, long_side: int) -> asyncio.Future:
        key = (item.id, long_side)
        fut = self._figures.get(key)
        if fut is None:
            fut = asyncio.ensure_future(self.run_cpu(lambda: Q.prepare(item, long_side)))
            # A figure drawn ahead and then not asked (stopped): its error is not news.
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._figures[key] = fut
        return fut

    def _release_figure(self, item: ScoreItem, long_side: int) -> None:
        key = (item.id, long_side)
        left = self._needed.get(key, 0) - 1
        if left <= 0:
            self._needed.pop(key, None)
            self._figures.pop(key, None)
        else:
            self._needed[key] = left

    async def _score(self, lane: _Lane, item: ScoreItem) -> None:
        long_side = lane.profile.image_long_side
        try:
            try:
                figure = await asyncio.shield(self._figure(item, long_side))
            except KanoaError as err:  # a key's figure that cannot be read: this item only
                self._fail(lane, item, err, server=False)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad figure must not stop the run
                log.exception("score: preparing %s failed", item.id)
                self._fail(lane, item, internal_error(exc), server=False)
                return
            if self._stopping:
                return
            runner = Q.new_runner(lane.profile, self._item_services, figure)
            self._runners.add(runner)
            try:
                ended = await Q.ask(runner, item)
            finally:
                self._runners.discard(runner)
            if runner.model:
                lane.model = runner.model
            if ended.state == "stopped":
                return  # not scored: asked again when the run continues
            if ended.state == "error":
                self._fail(lane, item, ended.error or KanoaError("The question failed."))
                return
            lane.in_a_row = 0
            self._record(lane, item, ended, runner)
        finally:
            self._release_figure(item, long_side)

    def _record(self, lane: _Lane, item: ScoreItem, ended: Any, runner: Any) -> None:
        got = extract(ended.answer, item.kind, item.choices)
        verdict = judge(got, item.truth, item.kind, tolerance=item.tolerance,
                        axis_span=item.axis_span)  # fmt: skip
        stats = ended.stats
        gen = None
        if stats is not None and stats.t_first is not None and stats.t_end is not None:
            gen = max(0.0, stats.t_end - stats.t_first)
        score = ItemScore(
            item=item.id,
            index=item.index,
            template=item.template,
            question=item.question,
            truth=item.truth,
            kind=item.kind,
            answer=ended.answer,
            extracted=got.value,
            how=got.how,
            correct=verdict.correct,
            rel_error=verdict.rel_error,
            model=runner.model,
            output_tokens=stats.output_tokens if stats else None,
            generation_s=gen,
            tokens_per_s=stats.tokens_per_s() if stats else None,
            cost=ended.cost,
            estimated=bool(stats.estimated) if stats else True,
            finish_reason=ended.finish_reason,
            conversation_id=runner.conversation_id,
            source=item.source,
        )
        self.scores[(lane.index, item.id)] = score
        self._put(lane.index, item.id, "scored", asdict(score))
        self._emit(ItemScored(self, lane.index, score))

    def _fail(self, lane: _Lane, item: ScoreItem, err: KanoaError, *, server: bool = True) -> None:
        failure = ItemFailure(item.id, item.index, err.message, err.hint or "")
        self.failures[(lane.index, item.id)] = failure
        self._put(lane.index, item.id, "failed", asdict(failure))
        self._emit(ItemFailed(self, lane.index, failure))
        if not server:
            return
        lane.in_a_row += 1
        if lane.in_a_row >= HALT_AFTER and not lane.halted:
            scored = len(self.profile_scores(lane.index))
            lane.halted = (
                f"{lane.label}: {HALT_AFTER} questions in a row failed (last: {err.title}: "
                f"{err.message}). {scored} of {len(self.items)} items are scored and kept; "
                "run again to continue."
            )
            self._emit(RunNotice(self, lane.halted))

    def _put(self, profile: int, item: str, state: str, fields: dict) -> None:
        if self.records is None or self.run_id is None:
            return
        import sqlite3

        try:
            self.records.put(self.run_id, profile, item, state, fields)
        except sqlite3.Error as exc:  # the score still counts here; only continuing loses it
            log.warning("score: result of %s not saved: %s", item, exc)


__all__ = [
    "DEFAULT_CONCURRENCY",
    "HALT_AFTER",
    "MAX_CONCURRENCY",
    "MAX_PROFILES",
    "ItemFailed",
    "ItemFailure",
    "ItemScore",
    "ItemScored",
    "ProfileSummary",
    "RunNotice",
    "ScoreEnded",
    "ScoreError",
    "ScoreEvent",
    "ScoreRun",
    "Source",
    "TemplateScore",
    "key_source",
    "run_key",
    "suite_source",
    "stored_summaries",
    "summarise",
]
