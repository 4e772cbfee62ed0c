"""The knowledge base's grounding modes and the notice shown when no passage was used.

A module of its own, importing nothing, so the window's sources list can show before the
index and retrieval code load (issue 18). :mod:`.retrieval` re-exports these names.
"""

NO_PASSAGE_NOTICE = "No passage from the knowledge base was used."
NO_RELEVANT_NOTICE = "No passage of the knowledge base was relevant to this question."
LEFT_OUT_NOTICE = "The knowledge base was left out of this question."
MODE_RETRIEVED = "retrieved"
MODE_WHOLE = "whole"
MODE_NONE = "none"

__all__ = [
    "LEFT_OUT_NOTICE",
    "MODE_NONE",
    "MODE_RETRIEVED",
    "MODE_WHOLE",
    "NO_PASSAGE_NOTICE",
    "NO_RELEVANT_NOTICE",
]
