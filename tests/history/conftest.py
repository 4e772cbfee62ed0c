"""Fixtures for the history tests: a store with a clock the test moves by hand, real
figures made with Pillow, and a helper that records a finished conversation."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from kanoa_desktop.core.endpoint.chat import data_url, user_message
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.inputs.figures import prepare_figure


class FakeClock:
    """Monotonic seconds that advance only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def png_bytes(color: str = "red", size: tuple[int, int] = (64, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def figure(color: str = "red", name: str = "plot.png"):
    return prepare_figure(png_bytes(color, (120, 80)), name=name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock):
    s = HistoryStore(clock=clock)
    yield s
    s.close()


def record(
    store: HistoryStore,
    question: str,
    answer: str,
    *,
    model: str = "qwen2.5-vl-7b",
    figures=(),
    conversation_id: int | None = None,
    state: str = "done",
    **kw,
):
    """Record one finished turn; returns its recorder."""
    msg = user_message(question, [f.data_url() for f in figures])
    rec = store.begin_turn(
        conversation_id, user_message=msg, model=model, figures=figures, question=question, **kw
    )
    rec.append(answer)
    rec.finish(state, "stop" if state == "done" else None)
    return rec


__all__ = ["FakeClock", "data_url", "figure", "png_bytes", "record"]
