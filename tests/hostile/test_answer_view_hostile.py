"""The answer view never loads what model text names, and hostile text cannot freeze it."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtCore import QUrl
from PySide6.QtGui import QImage, QTextDocument

from kanoa_desktop.ui.answer_view import AnswerView

# Generous bounds: they catch a hang (the old cubic pattern took minutes), not slowness.
BOUND_S = 120  # per test: a hang guard (pytest-timeout)


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "secret plot.png"
    Image.new("RGB", (7, 5), "red").save(path)
    return path


@pytest.fixture
def view(qtbot):
    v = AnswerView()
    qtbot.addWidget(v)
    v.resize(700, 500)
    v.show()
    return v


def _image_names(doc: QTextDocument) -> list[str]:
    names = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fmt = it.fragment().charFormat()
            if fmt.isImageFormat():
                names.append(fmt.toImageFormat().name())
            it += 1
        block = block.next()
    return names


def _forms(png) -> dict[str, str]:
    url = QUrl.fromLocalFile(str(png)).toString()
    return {
        "inline": f"![plot]({url})",
        "inline-path": f"![plot]({png})",
        "reference": f"See ![r][pic] here.\n\n[pic]: {url}",
        "collapsed": f"See ![pic][] here.\n\n[pic]: {url}",
        "shortcut": f"See ![pic] here.\n\n[pic]: {url}",
        "html": f'<img src="{url}">',
        "data": "![x](data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC)",
        "remote": "![x](http://127.0.0.1:9/x.png)",
    }


@pytest.mark.parametrize("form", list(_forms("/tmp/x.png")))
def test_no_image_form_becomes_an_image_in_a_full_render(view, png, form):
    md = _forms(png)[form]
    view.set_conversation_markdown(md)
    assert _image_names(view.document()) == []


@pytest.mark.parametrize("form", list(_forms("/tmp/x.png")))
def test_no_image_form_becomes_an_image_while_streaming(view, png, form):
    md = _forms(png)[form]
    view.begin_answer("**Q**\n\n")
    for i in range(0, len(md), 7):
        view.append(md[i : i + 7])
        view.flush()
    view.append("\n\n")
    view.flush()
    assert _image_names(view.document()) == []
    view.end_answer()
    assert _image_names(view.document()) == []
    assert "image" in view.toPlainText()


def test_a_resource_request_never_reads_the_file_or_decodes_a_data_url(view, png):
    # Returning nothing from loadResource lets QTextDocument read local files and data:
    # URLs by itself; the view answers with a blank 1x1 image instead.
    doc = view.document()
    for url in (
        QUrl.fromLocalFile(str(png)),
        QUrl(_forms(png)["data"][5:-1]),
        QUrl(png.name),  # relative
    ):
        image = doc.resource(QTextDocument.ResourceType.ImageResource, url)
        assert isinstance(image, QImage) and (image.width(), image.height()) == (1, 1), url


@pytest.mark.parametrize(
    "text",
    [
        "![plot](data:" + "A" * 100_000,  # an image cut by max tokens
        "![](" * 25_000,
        "![" * 50_000,
        "[a](" * 25_000,
        "<img " * 20_000,
        "x" * 100_000,  # one unbreakable word
        "`" * 100_000,
        "*a" * 50_000,
        "[" * 50_000 + "]" * 50_000,
    ],
    ids=["cut-data", "img-open", "bang", "link-open", "html", "word", "ticks", "stars", "nest"],
)
@pytest.mark.timeout(BOUND_S)  # a hang guard (pytest-timeout), not a timing
def test_adversarial_answers_render_in_bounded_time(view, qapp, text):
    view.set_conversation_markdown(text)
    view.document().size()  # force the layout
    qapp.processEvents()
    view.begin_answer("q\n\n")
    for i in range(0, len(text), 2000):
        view.append(text[i : i + 2000])
        view.flush()
    view.end_answer()
    view.document().size()
    qapp.processEvents()
    assert view.markdown.endswith(text + "\n\n---\n\n")  # the text itself is kept whole


def test_reasoning_is_folded_under_the_answer_and_unfolds_on_click(view):
    view.begin_answer("**Q**\n\n")
    view.end_answer("The model only reasoned.", reasoning="First, the axes. Then the trend.")
    shown = view.toPlainText()
    assert "Show the model's reasoning (6 words)" in shown
    assert "the axes" not in shown
    view._on_anchor(QUrl("kanoa-reasoning:0"))
    assert "First, the axes. Then the trend." in view.toPlainText()
    assert view.is_reasoning_unfolded(0)
    view._on_anchor(QUrl("kanoa-reasoning:0"))
    assert "the axes" not in view.toPlainText()
    # Copying the conversation keeps the reasoning as a quotation.
    assert "> First, the axes. Then the trend." in view.markdown
    assert "\x00" not in view.markdown


def test_show_reasoning_after_end_answer_folds_it_under_that_answer(view):
    view.begin_answer("**Q1**\n\n")
    view.end_answer("The model only reasoned.")
    view.show_reasoning("Step one. Step two.")
    view.begin_answer("**Q2**\n\n")
    view.append("Second answer.")
    view.end_answer()
    md = view.markdown
    assert md.index("Step one") < md.index("**Q2**")  # under the first answer, not the last
    shown = view.toPlainText()
    assert "Show the model's reasoning (4 words)" in shown and "Step one" not in shown
