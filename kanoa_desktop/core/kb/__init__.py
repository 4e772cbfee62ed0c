"""Knowledge base: index folders of documents and ground answers in cited passages.

Plain Python (no Qt). Start with :class:`KnowledgeBase` (``index.py``) to build or update
an index, :func:`ground` (``retrieval.py``) per question, and
:func:`token_budget` (``budget.py``) to size what the knowledge base may add to a prompt.

The names below load on first use (:func:`kanoa_desktop.core.lazy.attach`), so importing a
light submodule such as ``modes`` does not load the index and its readers (issue 18: the
window's start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kanoa_desktop.core.lazy import attach

_WHERE = {
    "token_budget": "budget",
    **dict.fromkeys(
        (
            "FileReport",
            "FolderWatcher",
            "Hit",
            "IndexReport",
            "KnowledgeBase",
            "Progress",
            "kb_path_for",
        ),
        "index",
    ),  # fmt: skip
    **dict.fromkeys(
        ("Grounding", "Passage", "Source", "aground", "embed_pending", "ground"), "retrieval"
    ),  # fmt: skip
    "NO_PASSAGE_NOTICE": "modes",
}

if TYPE_CHECKING:
    from kanoa_desktop.core.kb.budget import token_budget
    from kanoa_desktop.core.kb.index import (
        FileReport,
        FolderWatcher,
        Hit,
        IndexReport,
        KnowledgeBase,
        Progress,
        kb_path_for,
    )
    from kanoa_desktop.core.kb.modes import NO_PASSAGE_NOTICE
    from kanoa_desktop.core.kb.retrieval import (
        Grounding,
        Passage,
        Source,
        aground,
        embed_pending,
        ground,
    )


__getattr__, __dir__ = attach(__name__, _WHERE)


__all__ = [
    "NO_PASSAGE_NOTICE",
    "FileReport",
    "FolderWatcher",
    "Grounding",
    "Hit",
    "IndexReport",
    "KnowledgeBase",
    "Passage",
    "Progress",
    "Source",
    "aground",
    "embed_pending",
    "ground",
    "kb_path_for",
    "token_budget",
]
