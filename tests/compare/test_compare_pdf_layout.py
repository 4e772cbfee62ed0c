"""The comparison's PDF reads top-down: the title, then the figure; and the Model column
is wide enough for "label (model)" to wrap between words, never inside one."""

from __future__ import annotations

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from kanoa_desktop.core.ask.compare import Comparison, profiles_for_models
from kanoa_desktop.core.ask.compare_report import comparison_markdown, export_comparison
from kanoa_desktop.core.ask.outbox import Outbox
from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.inputs.figures import prepare_figure
from tests.batch.conftest import png_bytes
from tests.servers.vllm_server import VLLMTestServer


@pytest.fixture
async def pool():
    p = ClientPool()
    yield p
    await p.aclose()


async def test_the_pdf_has_the_title_above_the_figure_and_whole_model_names(tmp_path, pool):
    history = HistoryStore(tmp_path / "h.sqlite3")
    model = "Qwen2.5-VL-7B-Instruct-AWQ"
    with VLLMTestServer(tokens_per_second=400, answer_tokens=6, model=model,
                        extra_models=("InternVL3-8B-hf",)) as s:  # fmt: skip
        base = Profile(name="Lab GPU", api_base=s.api_base, max_tokens=16, temperature=0.0)
        fig = prepare_figure(png_bytes(size=(600, 300)), name="growth.png")
        cmp = Comparison(profiles_for_models(base, [model, "InternVL3-8B-hf"]),
                         Services(pool, history=history), outbox=Outbox([fig]))  # fmt: skip
        ended = await cmp.ask("What is plotted?")
    assert [e.state for e in ended] == ["done", "done"]
    stored = history.load_comparison(cmp.comparison_id)
    path = export_comparison(stored, tmp_path / "cmp.pdf")
    history.close()

    doc = pdfium.PdfDocument(str(path))
    try:
        page = doc[0]
        text = page.get_textpage()
        title_words = stored.title.split()[:2]
        found = text.search(" ".join(title_words)).get_next()
        assert found is not None, "the title is on the first page"
        title_box = text.get_charbox(found[0])  # (left, bottom, right, top), y up
        images = list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]))
        assert images, "the figure is drawn"
        image_top = images[0].get_bounds()[3]  # (left, bottom, right, top)
        assert image_top < title_box[1], "the figure comes under the title"
        whole = "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    finally:
        doc.close()
    # Every model name reads whole, in the table too: a break inside one splits its text.
    markdown = comparison_markdown(stored)  # the same document, as Markdown
    for name in (model, "InternVL3-8B-hf"):
        expected = markdown.count(name)
        assert whole.count(name) == expected, f"{name} broken: {whole[:900]!r}"
