"""Exports never embed or point a viewer at what an answer names, never carry a key, and
stay fast on adversarial answers."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from PIL import Image

from kanoa_desktop.core.endpoint.chat import user_message
from kanoa_desktop.core.history.export import export
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.inputs.figures import prepare_figure
from tests.history.conftest import png_bytes

KEY = "sk-hostile-export-key-5566778899"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.img_srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("img", "image", "svg", "iframe", "object", "embed"):
            self.img_srcs.append(dict(attrs).get("src", tag))


def _answer(local_png) -> str:
    url = local_png.as_uri()
    return (
        "The figure shows growth.\n\n"
        f"Inline ![inline]({url}) and path ![p]({local_png}).\n\n"
        "Reference ![r][pic], collapsed ![pic][] and shortcut ![pic].\n\n"
        f"[pic]: {url}\n\n"
        "Data ![d](data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC)\n\n"
        f'Raw <img src="{url}"> and <IMG SRC={local_png}>.\n'
    )


def _conversation(tmp_path, answer: str, *, error: str | None = None):
    store = HistoryStore()
    fig = prepare_figure(png_bytes("red", (40, 30)), name="plot.png")
    msg = user_message("What is it?", [fig.data_url()])
    rec = store.begin_turn(None, user_message=msg, model="m", figures=[fig], question="What?")
    rec.append(answer)
    if error:
        rec.finish("error", None, error_title="Server error", error_message=error)
    else:
        rec.finish("done", "stop")
    conv = store.load_conversation(rec.conversation_id)
    store.close()
    return conv


@pytest.fixture
def local_png(tmp_path):
    path = tmp_path / "private" / "lab notebook.png"
    path.parent.mkdir()
    Image.new("RGB", (9, 9), (1, 2, 3)).save(path)
    return path


def test_markdown_export_keeps_only_the_users_figures_as_images(tmp_path, local_png):
    conv = _conversation(tmp_path, _answer(local_png))
    text = export(conv, tmp_path / "out.md").read_text(encoding="utf-8")
    # The figure the user sent is the only image; every image in the answer is a link.
    assert text.count("![") == 1 and "_figures/" in text.split("![", 1)[1].split(")", 1)[0]
    assert "<img" not in text.lower() and "&lt;img" in text.lower()
    assert "[image: r][pic]" in text and "[image: pic]" in text


def test_html_export_has_no_image_but_the_figures(tmp_path, local_png):
    conv = _conversation(tmp_path, _answer(local_png))
    page = export(conv, tmp_path / "out.html").read_text(encoding="utf-8")
    tags = _Tags()
    tags.feed(page)
    assert len(tags.img_srcs) == 1 and tags.img_srcs[0].startswith("data:image/png;base64,")
    assert str(local_png) not in "".join(tags.img_srcs)


def test_pdf_export_draws_only_the_figures(tmp_path, local_png):
    import pypdfium2

    conv = _conversation(tmp_path, _answer(local_png))
    path = export(conv, tmp_path / "out.pdf")
    pdf = pypdfium2.PdfDocument(str(path))
    images = [
        obj
        for page in pdf
        for obj in page.get_objects()
        if obj.type == pypdfium2.raw.FPDF_PAGEOBJ_IMAGE
    ]
    # One figure; the 9x9 file and the 1x1 data: image named by the answer are not drawn.
    assert len(images) == 1
    assert "The figure shows growth" in "".join(p.get_textpage().get_text_range() for p in pdf)


@pytest.mark.parametrize("fmt", ["md", "html", "pdf"])
def test_an_echoed_key_never_reaches_an_export(tmp_path, fmt):
    from kanoa_desktop.core.safety import remember_secret

    remember_secret(KEY)
    conv = _conversation(
        tmp_path,
        "Partial answer.",
        error=f"The server said: bad header Authorization: Bearer {KEY} (key {KEY})",
    )
    path = export(conv, tmp_path / f"out.{fmt}")
    if fmt == "pdf":
        import pypdfium2

        text = "".join(p.get_textpage().get_text_range() for p in pypdfium2.PdfDocument(str(path)))
    else:
        text = path.read_text(encoding="utf-8")
    assert "Partial answer" in text
    assert KEY not in text and "Bearer sk-" not in text


def test_a_bearer_token_is_scrubbed_even_when_the_key_was_never_seen(tmp_path):
    conv = _conversation(tmp_path, "x", error="echo: Authorization: Bearer abc.def-123456789")
    text = export(conv, tmp_path / "out.md").read_text(encoding="utf-8")
    assert "abc.def-123456789" not in text


ADVERSARIAL_ANSWERS = {
    "cut-data": "![plot](data:" + "A" * 100_000,
    "img-open": "![](" * 25_000,
    "li-p": "<li><p>" * 20_000,
    "link-open": "[a](" * 25_000,
}
# PDF for the two that reach its own code paths (fpdf2 lays out 450,000 characters of
# links slowly, which says nothing about our patterns).
EXPORT_CASES = [(a, f) for a in ADVERSARIAL_ANSWERS for f in ("md", "html")] + [
    ("cut-data", "pdf"),
    ("li-p", "pdf"),
]


@pytest.mark.timeout(120)  # a hang guard (pytest-timeout), not a timing
@pytest.mark.parametrize("case, fmt", EXPORT_CASES)
def test_adversarial_answers_export_in_bounded_time(tmp_path, case, fmt):
    conv = _conversation(tmp_path, ADVERSARIAL_ANSWERS[case])
    path = export(conv, tmp_path / f"out.{fmt}")
    assert path.stat().st_size > 0
