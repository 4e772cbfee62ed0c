"""Telling listeners of an event: every core object that reports events does it this way.

A listener that raises is logged and the others are still told: a broken view must never
break the question, comparison, batch, score run or poller that reports to it. The list is
copied first, so a listener may unsubscribe itself while it is told.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")


def tell(listeners: Iterable[Callable[[E], None]], event: E, who: str) -> None:
    """Call each of ``listeners`` with ``event``; ``who`` names the reporter in the log."""
    for listener in list(listeners):
        try:
            listener(event)
        except Exception:  # a broken view must not break what reports to it
            log.exception("%s listener failed on %s", who, type(event).__name__)
