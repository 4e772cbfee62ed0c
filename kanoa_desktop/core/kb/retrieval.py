"""From a question to a cited, budget-sized block of knowledge-base passages.

:func:`ground` is the one call the app makes per question. It builds a search query from
the question, the user's context and focus, and what is known of the figure or table (file
name, column names); retrieves chunks by BM25 (optionally fused with vector similarity),
spreading picks across files; packs them into the token budget the caller computed with
:func:`kanoa_desktop.core.kb.budget.token_budget`; and returns a :class:`Grounding`: the
numbered passages, their sources, and the prompt block asking the model to cite ``[n]``.

Only passages that help are sent (:func:`relevant`): a passage must share a word with the
question, focus or context (not only with a file or column name, unless the question is
empty), score at least :data:`BM25_RELATIVE_FLOOR` of the best BM25 score, and, found by
vector similarity alone, be within :data:`VECTOR_MARGIN` of the best similarity and above
:data:`VECTOR_FLOOR`. When none does, nothing is sent and the Sources list says
:data:`NO_RELEVANT_NOTICE`; the prompt then says that no passage was given.

A knowledge base whose whole text fits the budget is sent whole (kanoa's behaviour), one
passage per file, with ``mode == "whole"`` — the files with a relevant passage, whole.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from kanoa_desktop.core.kb.budget import TokenCounter, pack
from kanoa_desktop.core.kb.index import Hit, KnowledgeBase
from kanoa_desktop.core.kb.modes import (
    MODE_NONE,
    MODE_RETRIEVED,
    MODE_WHOLE,
    NO_PASSAGE_NOTICE,
    NO_RELEVANT_NOTICE,
)
from kanoa_desktop.core.tokens import estimate_text_tokens

RRF_K = 60  # the usual reciprocal-rank-fusion constant (Cormack et al., 2009)
MAX_QUERY_TERMS = 40
# Upper bound on chunks BM25 scores per query: keeps a query on a 150,000-chunk index in
# the tens of milliseconds (see prune_common_terms).
MAX_SCORED = 12000

PROMPT_HEADER = (
    "Passages from the user's knowledge base follow, numbered [1], [2], ... "
    "When a statement in your answer relies on a passage, cite it by its number in "
    "square brackets, e.g. [2]. Cite only passages you actually used; if none is "
    "relevant, say so and do not cite any."
)
#: The prompt's line when the knowledge base had nothing for this question: the model is
#: told, so it neither invents sources nor cites numbers of an earlier question's passages.
NO_PASSAGE_PROMPT = (
    "No passage from the user's knowledge base was relevant to this question, so none is "
    "given: answer without citing any."
)

#: A BM25 hit scoring under this share of the best hit's score is left out.
BM25_RELATIVE_FLOOR = 0.3
#: A hit found by vector similarity alone must be within this of the best similarity...
VECTOR_MARGIN = 0.1
#: ...and above this cosine similarity (unrelated texts often reach 0.3-0.4 with common
#: embedding models; related ones 0.6 and more).
VECTOR_FLOOR = 0.5

# Words that carry no topic. Short on purpose: BM25's IDF already discounts common words;
# these are the ones that would otherwise fill the OR query with noise.
STOPWORDS = frozenset(
    """
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each else etc few
for from further had has have having he her here hers him his how i if in into is it its
itself just me more most my no nor not now of off on once only or other our ours out over
own same she should so some such than that the their theirs them then there these they this
those through to too under until up very via was we were what when where which while who
whom why will with would you your yours please explain describe show shows shown tell give
figure fig plot chart graph image table data see look like one two use used using
""".split()
)

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")

EmbedFn = Callable[[list[str]], "Sequence[Sequence[float]] | Awaitable[Sequence[Sequence[float]]]"]


@dataclass(frozen=True)
class Source:
    """Where a passage came from; ``label()`` is what the answer view shows."""

    file: str
    path: Path
    page: int | None = None
    cell: int | None = None
    line_start: int | None = None
    line_end: int | None = None

    def label(self) -> str:
        if self.page is not None:
            return f"{self.file}, p. {self.page}"
        if self.cell is not None:
            return f"{self.file}, cell {self.cell}"
        if self.line_start is None:
            return self.file
        if self.line_start == self.line_end:
            return f"{self.file}, line {self.line_start}"
        return f"{self.file}, lines {self.line_start}\u2013{self.line_end}"


@dataclass(frozen=True)
class Passage:
    """One numbered passage: ``number`` is the n in ``[n]`` the model cites."""

    number: int
    text: str
    source: Source
    score: float | None = None


@dataclass(frozen=True)
class Grounding:
    """What the knowledge base contributes to one question.

    ``prompt_block`` is '' when ``mode == "none"``; otherwise it is to be placed in the
    prompt as is and its estimated tokens (``tokens``) never exceed ``budget``.
    ``notice`` is the sentence for the UI when nothing was used, else None.
    """

    mode: str
    passages: tuple[Passage, ...]
    prompt_block: str
    budget: int
    tokens: int
    query: str = ""
    notice: str | None = None

    @property
    def sources(self) -> list[Source]:
        return [p.source for p in self.passages]

    def cited(self, answer: str) -> list[Passage]:
        """Passages whose ``[n]`` appears in ``answer`` (``[1, 3]`` and ``[1][3]`` count)."""
        used: set[int] = set()
        for group in re.findall(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]", answer):
            used.update(int(n) for n in re.split(r"[,;]", group))
        return [p for p in self.passages if p.number in used]


def _no_grounding(budget: int, query: str = "") -> Grounding:
    return Grounding(MODE_NONE, (), "", budget, 0, query, NO_PASSAGE_NOTICE)


def _nothing_relevant(budget: int, query: str, count: TokenCounter) -> Grounding:
    """Nothing passed the relevance floor: no passage, and the prompt says so (when the
    sentence fits the budget)."""
    tokens = count(NO_PASSAGE_PROMPT)
    block = NO_PASSAGE_PROMPT if tokens <= budget else ""
    return Grounding(
        MODE_NONE, (), block, budget, tokens if block else 0, query, NO_RELEVANT_NOTICE
    )


# --- query ------------------------------------------------------------------------


def query_terms(*texts: str | None, hints: Iterable[str] = ()) -> list[str]:
    """Distinct lowercase content words of the texts, then of the hints, in order.

    Hints (a file name, column names) are split on punctuation, underscores and camelCase:
    ``"seaSurface_temp.csv"`` gives ``sea, surface, temp, csv``.
    """
    seen: dict[str, None] = {}
    sources = list(texts) + [_CAMEL.sub(" ", h) for h in hints]
    for text in sources:
        for word in _WORD.findall(text or ""):
            word = word.lower()
            if len(word) < 2 or word in STOPWORDS or word.isdigit() and len(word) < 3:
                continue
            seen.setdefault(word, None)
    return list(seen)[:MAX_QUERY_TERMS]


def build_match(terms: Sequence[str]) -> str:
    """An FTS5 MATCH expression OR-ing the terms, each quoted so no term is syntax.

    Returns '' when there is nothing to search for.
    """
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


# --- ranking ----------------------------------------------------------------------


def diversify(hits: Sequence[Hit], k: int, per_file: int = 2) -> list[Hit]:
    """The best ``k`` hits, at most ``per_file`` from one file while others remain.

    Keeps rank order; if fewer than ``k`` hits pass the per-file cap, the best of the
    remaining ones fill up. Also drops a chunk that overlaps a higher one's lines.
    """
    picked: list[Hit] = []
    rest: list[Hit] = []
    per: dict[str, int] = {}
    spans: dict[str, list[tuple[int | None, int | None, int, int]]] = {}
    for hit in hits:
        dup = any(
            p == hit.page and c == hit.cell and hit.line_start <= b and a <= hit.line_end
            for p, c, a, b in spans.get(hit.file, [])
        )
        if dup:
            continue
        if per.get(hit.file, 0) < per_file:
            picked.append(hit)
            per[hit.file] = per.get(hit.file, 0) + 1
            spans.setdefault(hit.file, []).append(
                (hit.page, hit.cell, hit.line_start, hit.line_end)
            )
        else:
            rest.append(hit)
    return (picked + rest)[:k] if len(picked) < k else picked[:k]


def rrf(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of id rankings: score(id) = sum 1 / (k + rank), rank from 1."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def vector_similarities(
    kb: KnowledgeBase, model: str, query_vec: Sequence[float], n: int
) -> list[tuple[int, float]]:
    """``(chunk id, cosine similarity)`` of the ``n`` chunks nearest ``query_vec``."""
    import numpy as np

    ids, matrix = kb.vectors(model)
    if not ids:
        return []
    q = np.asarray(query_vec, dtype=np.float32)
    if q.shape[0] != matrix.shape[1]:
        return []  # vectors from another model size: ignore rather than mislead
    norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(q) or 1.0)
    sims = matrix @ q / np.where(norms == 0, 1.0, norms)
    order = np.argsort(-sims)[:n]
    return [(ids[i], float(sims[i])) for i in order]


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def relevant(
    bm25: Sequence[Hit],
    topic_terms: Sequence[str],
    dense: Sequence[tuple[int, float]] = (),
) -> set[int]:
    """The ids of the chunks worth sending (see the module docstring for the floors).

    ``bm25``: keyword hits, best first; ``topic_terms``: the question's, focus's and
    context's own words (empty when the user asked nothing: then any keyword counts);
    ``dense``: ``(id, similarity)`` best first, for hybrid search."""
    keep: set[int] = set()
    topic = set(topic_terms)
    scored = [h for h in bm25 if not topic or topic & _words(h.text)]
    if scored:
        best = max(h.score for h in scored)
        floor = BM25_RELATIVE_FLOOR * best if best > 0 else best
        keep.update(h.chunk_id for h in scored if h.score >= floor)
    if dense:
        best_sim = dense[0][1]
        floor_sim = max(VECTOR_FLOOR, best_sim - VECTOR_MARGIN)
        keep.update(cid for cid, sim in dense if sim >= floor_sim)
    return keep


def _resolve(value):
    """Run an embedding result that may be awaitable (only when no loop runs here)."""
    if inspect.isawaitable(value):
        return asyncio.run(_await(value))
    return value


async def _await(value):
    return await value


def embed_pending(
    kb: KnowledgeBase,
    embed: EmbedFn,
    model: str,
    batch: int = 64,
    cancel: object = None,
) -> int:
    """Compute and store vectors for chunks that lack one; returns how many were stored.

    Synchronous (for a worker thread); an async ``embed`` is run with ``asyncio.run``.
    """
    from kanoa_desktop.core.kb.index import _is_set

    stored = 0
    while not _is_set(cancel):
        todo = kb.chunks_without_vectors(model, batch)
        if not todo:
            break
        vectors = _resolve(embed([text for _, text in todo]))
        kb.store_vectors(model, [(cid, v) for (cid, _), v in zip(todo, vectors, strict=True)])
        stored += len(todo)
    return stored


def prune_common_terms(kb: KnowledgeBase, terms: Sequence[str]) -> tuple[list[str], bool]:
    """Keep the rarest terms whose chunks together number at most :data:`MAX_SCORED`.

    FTS5 computes BM25 for every chunk an OR query matches (about 1.5 us each, 200 ms for
    130,000 chunks), while a term found in much of the index adds almost nothing to the
    ranking (low IDF). So terms are taken rarest first while the sum of their document
    frequencies stays within the bound; absent terms are dropped. When even the rarest
    term alone exceeds it, that term is kept and the bool is True: the caller ranks a
    bounded sample (``search_fts(max_ranked=...)``). An index with fewer chunks than the
    bound is fast whatever the query and is not pruned.
    """
    if not terms or kb.chunk_count() <= MAX_SCORED:
        return list(terms), False
    dfs = kb.doc_frequencies(terms)
    kept: list[str] = []
    scored = 0
    for term in sorted((t for t in terms if dfs[t] > 0), key=lambda t: dfs[t]):
        if kept and scored + dfs[term] > MAX_SCORED:
            break
        kept.append(term)
        scored += dfs[term]
    return kept, scored > MAX_SCORED


def search(
    kb: KnowledgeBase,
    terms: Sequence[str],
    k: int = 8,
    per_file: int = 2,
    *,
    query_vector: Sequence[float] | None = None,
    embed_model: str = "",
    candidates: int = 60,
    topic_terms: Sequence[str] | None = None,
) -> list[Hit]:
    """Ranked, diversified hits for the terms (BM25, fused with vectors when given).

    Very common terms are pruned first (:func:`prune_common_terms`). With
    ``topic_terms`` (the words of the question, focus and context), only hits that pass
    :func:`relevant` are returned.
    """
    kept, only_common = prune_common_terms(kb, terms)
    match = build_match(kept)
    max_ranked = MAX_SCORED if only_common else None
    bm25 = kb.search_fts(match, candidates, max_ranked=max_ranked) if match else []
    similar = (
        vector_similarities(kb, embed_model, query_vector, candidates)
        if query_vector is not None
        else []
    )
    if topic_terms is not None:
        keep = relevant(bm25, topic_terms, similar)
        bm25 = [h for h in bm25 if h.chunk_id in keep]
        similar = [(cid, s) for cid, s in similar if cid in keep]
    if query_vector is None:
        return diversify(bm25, k, per_file)
    dense = [cid for cid, _ in similar]
    fused = rrf([[h.chunk_id for h in bm25], dense])[:candidates]
    by_id = {h.chunk_id: h for h in bm25}
    missing = [cid for cid, _ in fused if cid not in by_id]
    by_id.update({h.chunk_id: h for h in kb.chunks_by_id(missing)})
    hits = [replace(by_id[cid], score=score) for cid, score in fused if cid in by_id]
    return diversify(hits, k, per_file)


# --- prompt -----------------------------------------------------------------------


def render_block(passages: Sequence[Passage]) -> str:
    """The prompt text for these passages: the header, which passages are given for this
    question, then ``[n] (source)`` and text."""
    if not passages:
        return ""
    numbers = [p.number for p in passages]
    given = (
        f"Given for this question: passage [{numbers[0]}]."
        if len(numbers) == 1
        else f"Given for this question: passages [{numbers[0]}] to [{numbers[-1]}] "
        f"({len(numbers)} passages); numbers from earlier questions do not apply."
    )
    parts = [PROMPT_HEADER + " " + given]
    for p in passages:
        parts.append(f"[{p.number}] ({p.source.label()})\n{p.text.strip()}")
    return "\n\n".join(parts)


def _numbered(passages: Sequence[Passage]) -> list[Passage]:
    return [Passage(i, p.text, p.source, p.score) for i, p in enumerate(passages, start=1)]


def _hit_passage(hit: Hit) -> Passage:
    source = Source(hit.file, hit.path, hit.page, hit.cell, hit.line_start, hit.line_end)
    return Passage(0, hit.text, source, hit.score)


def _finish(
    mode: str, chosen: list[Passage], budget: int, count: TokenCounter, query: str
) -> Grounding:
    if not chosen:
        return _no_grounding(budget, query)
    numbered = _numbered(chosen)
    block = render_block(numbered)
    return Grounding(mode, tuple(numbered), block, budget, count(block), query, None)


def ground(
    kb: KnowledgeBase | None,
    question: str,
    budget: int,
    *,
    context: str | None = None,
    focus: str | None = None,
    hints: Iterable[str] = (),
    k: int = 8,
    per_file: int = 2,
    allow_whole: bool = True,
    count: TokenCounter = estimate_text_tokens,
    query_vector: Sequence[float] | None = None,
    embed_model: str = "",
) -> Grounding:
    """Passages for one question, packed into ``budget`` tokens; never raises for no hits.

    ``budget`` comes from ``budget.token_budget(...)``. ``hints``: figure or table file
    name, column names. With ``allow_whole`` a knowledge base whose full text fits is
    sent whole. ``query_vector`` (with ``embed_model``) turns on hybrid BM25 + vector
    ranking; compute it with the same embedding model as :func:`embed_pending`.
    Renumbering after packing guarantees the labels are 1..n in prompt order.
    """
    hints = list(hints)
    terms = query_terms(question, focus, context, hints=hints)
    topic = query_terms(question, focus, context)
    query = build_match(terms)
    if kb is None or budget <= 0:
        return _no_grounding(max(budget, 0), query)
    hits = search(
        kb, terms, k=k * 3, per_file=per_file, query_vector=query_vector,
        embed_model=embed_model, topic_terms=topic,
    )  # fmt: skip
    if not hits:
        return _nothing_relevant(budget, query, count)
    if allow_whole:
        whole = _whole(kb, budget, count, files={h.file for h in hits})
        if whole is not None:
            return whole
    passages = [_hit_passage(h) for h in hits]
    chosen = pack(passages, budget, lambda ps: render_block(_numbered(ps)), count, limit=k)
    if not chosen:
        return _no_grounding(budget, query)  # relevant passages, but no room for one
    return _finish(MODE_RETRIEVED, chosen, budget, count, query)


async def aground(
    kb: KnowledgeBase | None,
    question: str,
    budget: int,
    *,
    embed: EmbedFn | None = None,
    embed_model: str = "",
    **kwargs,
) -> Grounding:
    """:func:`ground` for async callers: the query embedding (if ``embed``) is awaited,
    the database work runs in a thread so the event loop stays responsive."""
    vector = None
    if embed is not None and kb is not None:
        text = " ".join(s for s in (question, kwargs.get("focus"), kwargs.get("context")) if s)
        result = embed([text])
        vectors = await result if inspect.isawaitable(result) else result
        vector = list(vectors[0])
    return await asyncio.to_thread(
        ground, kb, question, budget, query_vector=vector, embed_model=embed_model, **kwargs
    )


def _whole(
    kb: KnowledgeBase, budget: int, count: TokenCounter, files: set[str] | None = None
) -> Grounding | None:
    """The knowledge base whole when it fits; with ``files``, only those files (the ones
    with a relevant passage)."""
    stats = kb.stats()
    if stats["chunks"] == 0:
        return None
    # Cheap pre-check on the stored estimates before rebuilding any text: overlap makes
    # the chunk sum an over-estimate, and a caller's exact tokenizer may count fewer
    # tokens than our estimate, so this only rules out knowledge bases far too large.
    if stats["tokens"] > budget * 1.5 + 200:
        return None
    passages = [
        Passage(0, text, Source(display, path))
        for display, path, text, _lines in kb.whole_files()
        if files is None or display in files
    ]
    if not passages:
        return None
    block = render_block(_numbered(passages))
    if count(block) > budget:
        return None
    return _finish(MODE_WHOLE, passages, budget, count, "")
