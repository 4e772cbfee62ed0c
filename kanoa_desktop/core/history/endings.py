"""How an answer ended, in one vocabulary: the live view, the comparison table, the history
list and ``history show``, a reopened conversation and every export say it with these words.

A turn is recorded with a ``state`` (done, stopped, error, interrupted; streaming while it
runs) and the server's ``finish_reason`` ("stop", "length", ...). :func:`ending` maps the
pair to one of five endings; :func:`label` names it, :func:`note` is the line under an answer.
"""

from __future__ import annotations

FINISHED, STOPPED, MAX_TOKENS, ERROR, INTERRUPTED = (
    "finished", "stopped", "max_tokens", "error", "interrupted")  # fmt: skip
LABELS = {FINISHED: "Finished", STOPPED: "Stopped by you", MAX_TOKENS: "Cut at max tokens",
          ERROR: "Error", INTERRUPTED: "Interrupted"}  # fmt: skip
# What a note adds when the caller says nothing more.
DETAILS = {MAX_TOKENS: "raise Max tokens in Settings > Generation",
           INTERRUPTED: "the app stopped while it streamed"}  # fmt: skip


def ending(state: str, finish_reason: str | None = None) -> str | None:
    """The ending of a turn in ``state``; None while it has not ended (streaming)."""
    if state == "done":
        return MAX_TOKENS if finish_reason == "length" else FINISHED
    return state if state in LABELS else None


def label(state: str, finish_reason: str | None = None, error: str = "") -> str:
    """"Finished", "Stopped by you", "Cut at max tokens", "Error: <title>", "Interrupted";
    a state that has not ended is returned as it is."""
    end = ending(state, finish_reason)
    if end is None:
        return state
    return f"{LABELS[end]}: {error}" if end == ERROR and error else LABELS[end]


def note(state: str, finish_reason: str | None = None, error: str = "", detail: str = "") -> str:
    """The line shown under an answer that did not simply finish ("" when it did):
    the label, then ``detail`` (why, or what to do)."""
    end = ending(state, finish_reason)
    if end in (None, FINISHED) and not detail:
        return ""
    detail = (detail or DETAILS.get(end, "")).rstrip(".")
    if end == FINISHED:
        return f"{detail}."  # a finished answer's remark (it only reasoned, say)
    text = label(state, finish_reason, error)
    return f"{text} ({detail})." if detail else f"{text}."


__all__ = ["LABELS", "ending", "label", "note"]
