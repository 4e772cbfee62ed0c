"""The benchmark's accuracy pass: a short chart-reading score beside the speed figures.

Speed alone does not say whether a setup reads charts right (quantisation, the image size
sent and the prompt all move accuracy). After the speed suite, :class:`AccuracyPass` asks
the first :data:`ACCURACY_ITEMS` items of the chart suite (seed :data:`ACCURACY_SEED`, so
every benchmark of every server answers the same questions) through the score run of
:mod:`kanoa_desktop.core.score`, and reports the accuracy with its Wilson 95 % interval.
Sixteen items give a wide interval (about ±20 points): a first look, not a ranking; the
Score models window and ``kanoa-desktop score`` run more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.score.run import ProfileSummary, ScoreEvent, ScoreRun, suite_source

ACCURACY_ITEMS = 16
ACCURACY_SEED = 0


@dataclass(frozen=True)
class AccuracyResult:
    """What the pass found: ``summary`` (None when skipped), ``state`` of the run
    (``done``, ``stopped``, ``incomplete``, ``skipped``) and what was scored."""

    label: str
    state: str
    summary: ProfileSummary | None = None
    skipped: str = ""

    def line(self) -> str:
        """One line for a table's foot: ``Chart reading (charts-v1, seed 0, 16 items):
        11/16 right, 68.8 % (95 % CI 44.4–85.8 %), 0.0 % unparsed.``"""
        head = f"Chart reading ({self.label})"
        s = self.summary
        if s is None or not s.n:
            return f"{head}: {self.skipped or 'nothing scored'}."
        text = (
            f"{head}: {s.correct}/{s.n} right, {s.accuracy * 100:.1f} % "
            f"(95 % CI {s.ci_low * 100:.1f}–{s.ci_high * 100:.1f} %), "
            f"{(s.unparsed_share or 0) * 100:.1f} % unparsed"
        )
        if s.n < s.total:
            text += f"; {s.total - s.n} of {s.total} not scored ({self.state})"
        return text + "."


class AccuracyPass:
    """One profile (its model may be overridden) scored on the short suite with the face's
    services (its items kept in ``services.history``). ``vision`` False skips it (a
    text-only model cannot read a chart)."""

    def __init__(
        self,
        profile: Profile,
        services: Any,
        *,
        model: str | None = None,
        items: int = ACCURACY_ITEMS,
        seed: int = ACCURACY_SEED,
        vision: bool | None = None,
        concurrency: int = 4,
        listener: Callable[[ScoreEvent], None] | None = None,
    ) -> None:
        self.profile = dataclasses.replace(profile, model=model) if model else profile
        self.source = suite_source(items, seed)
        self.vision = vision
        self.run: ScoreRun | None = None
        if vision is not False:
            self.run = ScoreRun(
                self.source,
                [self.profile],
                services,
                concurrency=concurrency,
                listener=listener,
            )

    @property
    def items(self) -> int:
        return len(self.source.items)

    async def run_pass(self) -> AccuracyResult:
        if self.run is None:
            return AccuracyResult(
                self.source.label, "skipped", skipped="skipped: the model reads text only"
            )
        ended = await self.run.run()
        return AccuracyResult(self.source.label, ended.state, ended.summaries[0])

    async def after(self, speed: Any) -> AccuracyResult:
        """Run the pass after a speed suite (a ``SuiteResult``): skipped when the suite
        found the model reads text only (its vision tasks were skipped)."""
        why = next((t.skipped for t in speed.tasks if t.task.kind == "vision" and t.skipped), "")
        if why:
            return AccuracyResult(self.source.label, "skipped", skipped=f"skipped: {why}")
        return await self.run_pass()

    def stop(self) -> None:
        if self.run is not None:
            self.run.stop()


__all__ = ["ACCURACY_ITEMS", "ACCURACY_SEED", "AccuracyPass", "AccuracyResult"]
