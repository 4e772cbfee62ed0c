"""Recording one streamed answer into the history as it arrives."""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from kanoa_desktop.core.history.liveness import HEARTBEAT_S
from kanoa_desktop.core.history.records import STATES, passages_json

if TYPE_CHECKING:
    from kanoa_desktop.core.history.store import HistoryStore

log = logging.getLogger(__name__)


class TurnRecorder:
    """Records one streamed answer. Call :meth:`append` per delta, then :meth:`finish`.

    ``append`` never blocks on more than one small UPDATE, and only when at least
    ``flush_interval_s`` passed since the last write (by the store's monotonic clock).
    :meth:`flush_if_due` lets a timer write buffered text when deltas stop arriving, and
    the turn's heartbeat every ``HEARTBEAT_S`` while nothing arrives. ``conversation_id``
    and ``turn_id`` are placeholders (negative) while the store's writes wait for the disk;
    the store sets the real ones when it writes them. ``saved`` says whether everything
    given to the recorder has reached the file.
    """

    def __init__(self, store: HistoryStore, conversation_id: int, turn_id: int, index: int) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.turn_id = turn_id
        self.index = index
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._last_flush = self._last_beat = store.clock()
        self.finished = False
        self.writes = 0  # how many flushes reached the database (for tests and benches)

    def append(self, text: str) -> None:
        """Add answer text; written within about ``flush_interval_s``."""
        if self.finished or not text:
            return
        self._text.append(text)
        self.flush_if_due()

    def append_reasoning(self, text: str) -> None:
        """Add reasoning text (kept apart from the answer)."""
        if self.finished or not text:
            return
        self._reasoning.append(text)
        self.flush_if_due()

    def flush_if_due(self) -> bool:
        """Write buffered text if the interval has passed; True when it wrote."""
        now = self.store.clock()
        if now - self._last_flush >= self.store.flush_interval_s:
            if self._text or self._reasoning:
                return self.flush()
            if now - self._last_beat >= HEARTBEAT_S and not self.finished:
                self._last_beat = now
                self.store._beat(self.turn_id)
        return False

    @property
    def saved(self) -> bool:
        """The turn as given so far is in the history file (not waiting in memory)."""
        return self.turn_id >= 0 and not self.store.pending and not self._text

    def flush(self) -> bool:
        """Write buffered text now; True when there was something to write."""
        self._last_flush = self._last_beat = self.store.clock()
        if not (self._text or self._reasoning) or self.finished:
            return False
        text, reasoning = "".join(self._text), "".join(self._reasoning)
        self._text.clear()
        self._reasoning.clear()
        try:
            written = self.store._append_text(self.turn_id, text, reasoning)
        except sqlite3.Error as exc:
            # Not the disk (the store keeps those writes itself): keep the text for the
            # next try; the answer on screen is unaffected.
            self._text.insert(0, text)
            self._reasoning.insert(0, reasoning)
            log.warning("history write failed: %s", exc)
            return False
        self.writes += written
        return written

    def finish(
        self,
        state: str = "done",
        finish_reason: str | None = None,
        *,
        stats: Any = None,
        answer: str | None = None,
        reasoning: str | None = None,
        error_title: str | None = None,
        error_message: str | None = None,
        energy_wh: float | None = None,
        passages: Any = None,
    ) -> None:
        """Close the turn: ``state`` is done, stopped, error or interrupted.

        ``stats`` (a :class:`~kanoa_desktop.core.endpoint.stats.StreamStats`) gives tokens, the
        estimated flag, TTFT, tokens/s, duration and cost. ``answer``/``reasoning``, when
        given, replace the recorded text (the full text from ``Finished``); otherwise the
        buffered text is written. A second call does nothing.
        """
        if self.finished:
            return
        if state not in STATES or state == "streaming":
            raise ValueError(f"not a final state: {state!r}")
        values: dict[str, Any] = {
            "state": state,
            "finish_reason": finish_reason or (stats.finish_reason if stats else None),
            "error_title": error_title,
            "error_message": error_message,
            "energy_wh": energy_wh,
            "finished": time.time(),
        }
        if stats is not None:
            now = time.monotonic()
            served = getattr(stats, "served", True)  # refused: no tokens, no cost
            values.update(
                prompt_tokens=stats.prompt_tokens if served else None,
                output_tokens=stats.output_tokens if served else None,
                estimated=served and bool(stats.estimated),
                ttft_s=stats.ttft_s,
                tokens_per_s=stats.tokens_per_s(now),
                duration_s=stats.elapsed(now),
                cost=stats.cost,
            )
        if passages is not None:
            values["passages"] = passages_json(passages)
        if answer is None or reasoning is None:
            self.flush()  # the buffered remainder, then the final values
        if answer is not None:
            values["answer"] = answer
        if reasoning is not None:
            values["reasoning"] = reasoning
        self.finished = True
        self.store._finish(self.turn_id, self.conversation_id, values)
