"""Query building, diverse BM25 retrieval, budget packing, whole mode and hybrid fusion."""

from __future__ import annotations

import hashlib
import math
import random

import pytest

from kanoa_desktop.core.kb.budget import pack, token_budget
from kanoa_desktop.core.kb.retrieval import (
    MODE_NONE,
    MODE_RETRIEVED,
    MODE_WHOLE,
    NO_PASSAGE_NOTICE,
    aground,
    build_match,
    diversify,
    embed_pending,
    ground,
    query_terms,
    rrf,
    search,
)
from kanoa_desktop.core.tokens import estimate_text_tokens
from tests.kb.corpus import write_every_kind

TOPICS = ["glacier", "plankton", "salinity", "monsoon", "aerosol", "permafrost"]


@pytest.fixture
def corpus_kb(tmp_path, make_kb):
    root = tmp_path / "kb"
    root.mkdir()
    rng = random.Random(7)
    for topic in TOPICS:
        for f in range(4):
            paras = []
            for p in range(12):
                words = [
                    rng.choice(["the", "flux", "model", "sample", "rate", "trend"])
                    for _ in range(60)
                ]
                words[rng.randrange(60)] = topic
                paras.append(f"Paragraph {p} of {topic} file {f}: " + " ".join(words))
            (root / f"{topic}_{f}.md").write_text("\n\n".join(paras) + "\n")
    kb = make_kb(root)
    kb.index()
    return kb


def test_query_terms_drop_stopwords_and_split_hints():
    terms = query_terms(
        "What does the figure show about sea-ice?", hints=["seaSurface_temp.csv", "Depth (m)"]
    )
    assert terms == ["sea", "ice", "surface", "temp", "csv", "depth"]


@pytest.mark.parametrize("text", ['a "quoted" NEAR(x y) AND b*', "col:umn ^start (x OR", "'; DROP"])
def test_fts_syntax_in_user_text_never_breaks_the_query(corpus_kb, text):
    match = build_match(query_terms(text + " glacier"))
    hits = corpus_kb.search_fts(match)
    assert hits and all("glacier" in h.file for h in hits[:3])


def test_retrieval_spreads_across_files_before_taking_more_from_one(corpus_kb):
    hits = search(corpus_kb, query_terms("plankton"), k=4, per_file=1)
    assert len({h.file for h in hits}) == 4
    assert all(h.file.startswith("plankton_") for h in hits)


def test_diversify_fills_up_from_one_file_when_nothing_else_matches(corpus_kb):
    hits = corpus_kb.search_fts(build_match(["plankton"]), 50)
    one_file = [h for h in hits if h.file == hits[0].file]
    assert len(diversify(one_file, k=3, per_file=1)) == min(3, len(one_file))


def test_grounding_labels_passages_and_asks_for_citations(corpus_kb):
    g = ground(corpus_kb, "How does salinity change?", budget=1500, allow_whole=False)
    assert g.mode == MODE_RETRIEVED and g.notice is None
    assert [p.number for p in g.passages] == list(range(1, len(g.passages) + 1))
    for p in g.passages:
        assert f"[{p.number}] ({p.source.label()})" in g.prompt_block
        assert p.source.label().startswith("salinity_") and ", lines " in p.source.label()
    assert "cite it by its number" in g.prompt_block
    cited = g.cited("Salinity rose [1], then fell [2, 3].")
    assert [p.number for p in cited] == [1, 2, 3][: len(g.passages)]


def test_nothing_relevant_gives_no_passage_and_the_notice(corpus_kb):
    g = ground(corpus_kb, "zzyzx qwertyuiop", budget=4000, allow_whole=False)
    assert g.mode == MODE_NONE and g.passages == () and g.prompt_block == ""
    assert g.notice == NO_PASSAGE_NOTICE


def test_packing_never_exceeds_the_budget_over_many_budgets(corpus_kb):
    rng = random.Random(3)
    questions = [
        "glacier flux trend",
        "monsoon aerosol model",
        "permafrost sample rate",
        "the",
        "plankton salinity glacier monsoon aerosol permafrost",
    ]
    for budget in [
        0,
        1,
        10,
        50,
        80,
        120,
        200,
        333,
        500,
        777,
        1024,
        2048,
        4096,
        9000,
        *[rng.randrange(1, 20000) for _ in range(60)],
    ]:
        for q in questions:
            g = ground(corpus_kb, q, budget=budget, k=12)
            assert g.tokens <= budget and estimate_text_tokens(g.prompt_block) <= budget
            assert g.tokens == estimate_text_tokens(g.prompt_block)
            if g.mode == MODE_NONE:
                assert g.notice == NO_PASSAGE_NOTICE


def test_packing_respects_a_callers_own_token_counter(corpus_kb):
    def by_words(text: str) -> int:  # a different, non-additive counter
        return len(text.split()) * 2 + (10 if text else 0)

    for budget in range(0, 3000, 97):
        g = ground(corpus_kb, "aerosol trend", budget=budget, count=by_words, allow_whole=False)
        assert by_words(g.prompt_block) <= budget


def test_pack_skips_an_item_too_big_and_keeps_a_later_small_one():
    chosen = pack(["x" * 1000, "y" * 10, "z" * 10], budget=10, render="".join)
    assert chosen == ["y" * 10, "z" * 10]


def test_token_budget_subtracts_prompt_images_answer_and_margin():
    assert token_budget(8192, 1000, 600, 1024, safety_margin=100) == 8192 - 2724
    assert token_budget(4096, 1000, 0, 512) == 4096 - 1512 - 204
    assert token_budget(2048, 3000) == 0


def test_estimate_is_conservative_for_non_ascii():
    assert estimate_text_tokens("abcdefg") == 2
    assert estimate_text_tokens("温度") == 2 and estimate_text_tokens("") == 0


def test_small_knowledge_base_is_sent_whole_and_marked(tmp_path, make_kb):
    write_every_kind(tmp_path / "kb")
    kb = make_kb(tmp_path / "kb")
    kb.index()
    g = ground(kb, "anything at all", budget=30000)
    assert g.mode == MODE_WHOLE and g.tokens <= 30000
    assert {p.source.file for p in g.passages} >= {"notes.md", "report.pdf", "analysis.ipynb"}
    assert "kelpforest" in g.prompt_block and "zephyrite" in g.prompt_block
    small = ground(kb, "kelpforest survey", budget=300)
    assert small.mode == MODE_RETRIEVED and small.sources[0].file == "report.pdf"
    assert small.sources[0].label() == "report.pdf, p. 1"


def test_no_knowledge_base_or_no_room_gives_none():
    assert ground(None, "q", budget=5000).mode == MODE_NONE


# --- hybrid -----------------------------------------------------------------------

SYNONYMS = {"ocean": "sea", "warming": "heat", "heating": "heat"}


def fake_embed(texts: list[str]) -> list[list[float]]:
    """Deterministic stand-in for /v1/embeddings: hashed bag of words with synonyms."""
    out = []
    for text in texts:
        vec = [0.0] * 64
        for word in query_terms(text):
            word = SYNONYMS.get(word, word)
            vec[int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        out.append([v / norm for v in vec])
    return out


@pytest.fixture
def hybrid_kb(tmp_path, make_kb):
    root = tmp_path / "kb"
    root.mkdir()
    (root / "a.md").write_text("Ocean warming accelerated in the last decade.\n")
    (root / "b.md").write_text("Sea heat content is measured by floats.\n")
    (root / "c.md").write_text("Unrelated notes on bird migration.\n")
    kb = make_kb(root)
    kb.index()
    return kb


def test_hybrid_fusion_finds_a_passage_bm25_alone_misses(hybrid_kb):
    assert embed_pending(hybrid_kb, fake_embed, model="fake") == 3
    assert embed_pending(hybrid_kb, fake_embed, model="fake") == 0  # stored, not redone
    terms = query_terms("ocean warming")
    bm25_files = {h.file for h in search(hybrid_kb, terms, k=3)}
    assert bm25_files == {"a.md"}
    qvec = fake_embed(["ocean warming"])[0]
    fused = search(hybrid_kb, terms, k=3, query_vector=qvec, embed_model="fake")
    assert [h.file for h in fused][:2] == ["a.md", "b.md"]


async def test_async_grounding_awaits_an_async_embedding_function(hybrid_kb):
    embed_pending(hybrid_kb, fake_embed, model="fake")

    async def async_embed(texts):
        return fake_embed(texts)

    g = await aground(
        hybrid_kb, "ocean warming", 2000, embed=async_embed, embed_model="fake", allow_whole=False
    )
    assert [p.source.file for p in g.passages][:2] == ["a.md", "b.md"]


def test_embed_pending_accepts_an_async_function_from_a_worker_thread(hybrid_kb):
    async def async_embed(texts):
        return fake_embed(texts)

    assert embed_pending(hybrid_kb, async_embed, model="fake-async") == 3


def test_rrf_rewards_agreement_between_rankings():
    fused = dict(rrf([[1, 2, 3], [3, 2, 9]]))
    assert fused[2] > fused[1] and fused[3] > fused[9]


def test_document_frequencies_follow_the_index_stemming(corpus_kb):
    dfs = corpus_kb.doc_frequencies(["glacier", "glaciers", "zzzabsent"])
    assert dfs["glacier"] == dfs["glaciers"] > 0 and dfs["zzzabsent"] == 0
    match_count = len(corpus_kb.search_fts(build_match(["glacier"]), limit=10_000))
    assert dfs["glacier"] == match_count


def test_very_common_terms_are_pruned_on_a_large_index(corpus_kb, monkeypatch):
    from kanoa_desktop.core.kb import retrieval

    dfs = corpus_kb.doc_frequencies(["flux", "glacier"])
    assert dfs["flux"] > dfs["glacier"]
    # Pretend the index is large: the scoring bound sits just above the rare term's count.
    monkeypatch.setattr(retrieval, "MAX_SCORED", dfs["glacier"] + 1)
    assert retrieval.prune_common_terms(corpus_kb, ["flux", "glacier", "zzzabsent"]) == (
        ["glacier"],
        False,
    )
    kept, bounded = retrieval.prune_common_terms(corpus_kb, ["flux"])
    assert kept == ["flux"] and bounded  # nothing rarer: keep it, rank a bounded sample
    assert len(search(corpus_kb, ["flux"], k=5)) == 5
    hits = search(corpus_kb, query_terms("flux of the glacier"), k=4, per_file=1)
    assert all(h.file.startswith("glacier_") for h in hits)
