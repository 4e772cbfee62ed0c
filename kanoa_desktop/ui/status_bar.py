"""The live status of an answer: model, state, tokens, speed, TTFT, context and cost.

Each readout is a small label with a stable object name; :meth:`StreamStatus.show_stats`
is called a few times a second by a timer, never per token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QSizePolicy, QWidget

from kanoa_desktop.core.config import pricing
from kanoa_desktop.core.history import endings
from kanoa_desktop.core.safety import plain_tooltip

if TYPE_CHECKING:  # the stats module (and its events) load with the first question
    from kanoa_desktop.core.endpoint.stats import StreamStats

STATES = {
    "idle": "Ready",
    "connecting": "Connecting…",
    "waiting": "Waiting for first token…",
    "streaming": "Streaming",
}


def state_text(state: str, detail: str = "", finish_reason: str | None = None) -> str:
    """A live state in words; an ended one says how the answer ended, in
    :mod:`~kanoa_desktop.core.history.endings`' words (``detail``: the error's title)."""
    if endings.ending(state, finish_reason) is not None:
        return endings.label(state, finish_reason, detail)
    return STATES.get(state, state) + (f": {detail}" if detail else "")


def _label(name: str, accessible: str, tip: str) -> QLabel:
    lab = QLabel()
    lab.setTextFormat(Qt.TextFormat.PlainText)  # model names come from the server
    lab.setObjectName(name)
    lab.setAccessibleName(accessible)
    lab.setToolTip(tip)
    lab.setProperty("baseTip", tip)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return lab


class StreamStatus(QWidget):
    """Permanent widget of the main window's status bar."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("streamStatus")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.setSpacing(14)
        self.model = _label("statusModel", "Model", "The model answering")
        self.state = _label("statusState", "State", "What the request is doing")
        self.tokens = _label(
            "statusTokens", "Tokens", "Prompt and output tokens (~ marks an estimate)"
        )
        self.speed = _label("statusSpeed", "Speed", "Output tokens per second")
        self.ttft = _label("statusTtft", "Time to first token", "Time to first token")
        self.context = QProgressBar()
        self.context.setObjectName("statusContext")
        self.context.setAccessibleName("Context used")
        self.context.setMaximumWidth(110)
        self.context.setMaximumHeight(14)
        self.context.setTextVisible(False)
        self.context.setRange(0, 1000)
        self.cost = _label("statusCost", "Cost", "Cost of this answer and of the session "
                           "(~: an estimate; a request the server refused costs nothing)")
        self.energy = _label(
            "statusEnergy", "Energy", "GPU energy of the last answer (NVML power × duration)"
        )
        self.energy.hide()
        for w in (self.model, self.state, self.tokens, self.speed, self.ttft):
            lay.addWidget(w)
        lay.addWidget(QLabel("Context"))
        lay.addWidget(self.context)
        lay.addWidget(self.cost)
        lay.addWidget(self.energy)
        # A long model name or error must never make the window wider than the screen:
        # the bar takes the width it is given, and long texts are elided (full in tooltip).
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.set_state("idle")
        self.reset()

    @staticmethod
    def _set_elided(label: QLabel, text: str, width: int) -> None:
        shown = label.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, width)
        label.setText(shown)
        tip = str(label.property("baseTip") or "")
        # Tooltips guess rich text: a server's name is escaped inside <qt> so it shows as
        # the characters it is (an <img src=file:...> in it is never loaded).
        full = plain_tooltip(f"{tip}: {text}")
        label.setToolTip(full if shown != text else tip)

    def set_model(self, name: str) -> None:
        self._set_elided(self.model, name or "no model", 220)

    def set_state(self, state: str, detail: str = "", finish_reason: str | None = None) -> None:
        text = state_text(state, detail, finish_reason)
        self._set_elided(self.state, text, 260)
        self.state.setProperty("state", state)

    def set_energy(self, wh: float, price_per_kwh: float | None = None) -> None:
        text = f"{wh:.3f} Wh" if wh < 10 else f"{wh:.1f} Wh"
        cost = pricing.energy_cost(wh, price_per_kwh)
        if cost:
            text += f" ({pricing.format_cost(cost)})"
        self.energy.setText(text)
        self.energy.show()

    def reset(self) -> None:
        self.tokens.setText("– in / – out")
        self.speed.setText("– tok/s")
        self.ttft.setText("TTFT –")
        self.context.setValue(0)
        self.context.setToolTip("Context: unknown")

    def show_stats(
        self,
        stats: StreamStats,
        now: float,
        *,
        context_length: int | None,
        max_tokens: int | None,
        session_cost: float,
        session_estimated: bool = False,
    ) -> None:
        mark = "~" if stats.estimated else ""
        self.tokens.setText(f"{mark}{stats.prompt_tokens:,} in / {mark}{stats.output_tokens:,} out")
        tps = stats.tokens_per_s(now)
        self.speed.setText(f"{tps:,.1f} tok/s" if tps is not None else "– tok/s")
        ttft = stats.ttft_s
        self.ttft.setText(f"TTFT {ttft:.2f} s" if ttft is not None else "TTFT –")
        used = stats.prompt_tokens + (max_tokens or stats.output_tokens)
        if context_length:
            frac = min(1.0, used / context_length)
            self.context.setValue(int(frac * 1000))
            self.context.setToolTip(
                f"Prompt {stats.prompt_tokens:,} + max tokens {max_tokens or 0:,} = {used:,} "
                f"of {context_length:,} tokens ({frac:.0%})"
            )
        else:
            self.context.setValue(0)
            self.context.setToolTip("Context length unknown: the server did not say")
        fmt = pricing.format_cost
        self.cost.setText(
            f"{fmt(stats.cost, stats.estimated)} · session {fmt(session_cost, session_estimated)}"
        )
