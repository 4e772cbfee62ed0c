from __future__ import annotations

from kanoa_desktop.core.kb.chunking import chunk_segment
from kanoa_desktop.core.kb.readers import Segment
from kanoa_desktop.core.tokens import estimate_text_tokens


def _doc() -> str:
    paras = []
    for i in range(30):
        paras.append("\n".join(f"para{i} line{j} " + "word " * (j % 9) for j in range(i % 7 + 1)))
    return "# Title\n\n" + "\n\n".join(paras) + "\n\n## Second heading\nlast words here\n"


def test_chunks_respect_the_token_limit_and_cover_every_line():
    text = _doc()
    chunks = chunk_segment(Segment(text), max_tokens=50, overlap_tokens=10)
    assert all(estimate_text_tokens(c.text) <= 50 for c in chunks)
    lines = text.split("\n")
    for c in chunks:
        # The span is right: the chunk's first and last lines are those lines of the file.
        assert c.text.split("\n")[0] == lines[c.line_start - 1].rstrip()
        assert c.text.split("\n")[-1] == lines[c.line_end - 1].rstrip()
    covered = set()
    for c in chunks:
        covered.update(range(c.line_start, c.line_end + 1))
    assert {i + 1 for i, line in enumerate(lines) if line.strip()} <= covered


def test_a_heading_starts_a_new_chunk():
    chunks = chunk_segment(Segment(_doc()), max_tokens=2000)
    assert chunks[-1].text.startswith("## Second heading")
    assert chunks[0].text.startswith("# Title")


def test_overlap_prefix_repeats_the_end_of_the_previous_chunk():
    text = "\n".join(f"line number {i} of one long paragraph" for i in range(200))
    chunks = chunk_segment(Segment(text), max_tokens=60, overlap_tokens=15)
    with_overlap = [c for c in chunks if c.overlap]
    assert with_overlap, "a long paragraph split across chunks should overlap"
    by_start = {id(c): c for c in chunks}
    for prev, cur in zip(chunks, chunks[1:], strict=False):
        if cur.overlap:
            repeated = cur.text[: cur.overlap].rstrip("\n")
            assert prev.text.endswith(repeated)
    # Rebuilding from the new parts gives back every line exactly once.
    rebuilt = "\n".join(c.text[c.overlap :] for c in by_start.values())
    assert rebuilt.split("\n") == text.split("\n")


def test_page_and_cell_are_carried_and_very_long_lines_are_wrapped():
    chunks = chunk_segment(Segment("x" * 5000, line=3, page=7), max_tokens=100)
    assert len(chunks) > 1 and all(c.page == 7 and c.line_start == 3 for c in chunks)
    assert all(len(c.text) <= 350 for c in chunks)
