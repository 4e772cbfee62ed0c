"""Knowledge base: index folders of documents and ground answers in cited passages.

Plain Python (no Qt). Start with :class:`KnowledgeBase` (``index.py``) to build or update
an index, :func:`ground` (``retrieval.py``) per question, and
:func:`token_budget` (``budget.py``) to size what the knowledge base may add to a prompt.
"""

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
from kanoa_desktop.core.kb.retrieval import (
    NO_PASSAGE_NOTICE,
    Grounding,
    Passage,
    Source,
    aground,
    embed_pending,
    ground,
)

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
