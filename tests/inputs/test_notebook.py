"""Figures from Jupyter notebooks written as JSON with real PNG, JPEG and SVG outputs."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from kanoa_desktop.core.inputs.figures import FigureError
from kanoa_desktop.core.inputs.notebook import (
    CorruptNotebookError,
    EmptyNotebookError,
    NoNotebookFiguresError,
    NotebookTooLargeError,
    load_notebook,
)


def _png(size, colour) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _jpeg(size) -> str:
    arr = np.random.default_rng(3).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG")
    return base64.b64encode(buf.getvalue()).decode()


SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">'
    '<rect width="100" height="100" fill="#00ff00"/></svg>'
)


def _code(source: str, outputs: list, count: int | None = None) -> dict:
    return {
        "cell_type": "code",
        "execution_count": count,
        "metadata": {},
        "source": source.splitlines(keepends=True),
        "outputs": outputs,
    }


def _display(mime: str, payload) -> dict:
    return {"output_type": "display_data", "data": {mime: payload, "text/plain": ["<Figure>"]}}


def _write(path, cells, **extra):
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"language_info": {"name": "python"}},
        "cells": cells,
        **extra,
    }
    path.write_text(json.dumps(nb))
    return path


def test_image_outputs_become_figures_with_their_cell_source(tmp_path):
    b64 = _png((300, 150), (255, 0, 0))
    # Jupyter splits long base64 strings into lines; both forms must decode.
    split = [b64[i : i + 76] + "\n" for i in range(0, len(b64), 76)]
    path = _write(
        tmp_path / "analysis.ipynb",
        [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Growth"]},
            _code("import numpy as np\nx = 1", [], 1),
            _code(
                "plt.plot(t, od)\nplt.show()",
                [
                    {"output_type": "stream", "name": "stdout", "text": ["hi"]},
                    _display("image/png", split),
                ],
                2,
            ),
            _code("plt.imshow(img)", [_display("image/jpeg", _jpeg((64, 48)))], 3),
            _code("display(SVG(s))", [_display("image/svg+xml", SVG.splitlines(True))], 4),
        ],
    )
    nb = load_notebook(path, long_side=1024)
    assert [f.cell_number for f in nb.figures] == [3, 4, 5]
    assert [f.mime for f in nb.figures] == ["image/png", "image/jpeg", "image/svg+xml"]
    first = nb.figures[0]
    assert first.cell_source == "plt.plot(t, od)\nplt.show()"
    assert first.output_number == 2 and first.execution_count == 2
    assert first.figure.name == "analysis.ipynb, cell 3, output 2"
    assert first.figure.sent_size == (300, 150)
    im = Image.open(io.BytesIO(first.figure.data)).convert("RGB")
    assert im.getpixel((150, 75)) == (255, 0, 0)
    assert nb.figures[1].figure.sent_size == (64, 48)
    svg = Image.open(io.BytesIO(nb.figures[2].figure.data)).convert("RGB")
    assert svg.size[0] == 2 * svg.size[1]
    assert svg.getpixel((svg.size[0] // 4, svg.size[1] // 2)) == (0, 255, 0)
    assert "```python\nplt.plot(t, od)\nplt.show()\n```" in first.context
    assert "cell 3, In [2]" in first.context


def test_figures_are_downscaled_to_the_profile_long_side(tmp_path):
    path = _write(
        tmp_path / "big.ipynb", [_code("f()", [_display("image/png", _png((2000, 500), "blue"))])]
    )
    assert load_notebook(path, long_side=400).figures[0].figure.sent_size == (400, 100)


def test_damaged_outputs_are_skipped_with_a_note(tmp_path):
    good = _png((40, 40), (0, 0, 255))
    truncated = base64.b64encode(base64.b64decode(good)[:30]).decode()
    path = _write(
        tmp_path / "mixed.ipynb",
        [
            _code("a()", [_display("image/png", "@@@ not base64 @@@")]),
            _code("b()", [_display("image/png", truncated)]),
            _code("c()", [_display("image/png", good)]),
        ],
    )
    nb = load_notebook(path)
    assert [f.cell_number for f in nb.figures] == [3]
    assert len(nb.notes) == 2
    assert "cell 1, output 1 is not valid base64" in nb.notes[0]
    assert "cell 2, output 1" in nb.notes[1]


def test_figure_count_is_capped_with_a_note(tmp_path):
    png = _png((40, 40), (0, 0, 0))
    path = _write(
        tmp_path / "many.ipynb", [_code(f"p({i})", [_display("image/png", png)]) for i in range(7)]
    )
    nb = load_notebook(path, max_figures=3)
    assert len(nb.figures) == 3 and "first 3 of 7 figures" in nb.notes[-1]


def test_nbformat3_outputs_are_read(tmp_path):
    nb = {
        "nbformat": 3,
        "worksheets": [
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "input": "plot(x)",
                        "prompt_number": 7,
                        "outputs": [{"output_type": "display_data", "png": _png((20, 40), "red")}],
                    }
                ]
            }
        ],
    }
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(nb))
    fig = load_notebook(path).figures[0]
    assert (fig.cell_source, fig.execution_count, fig.figure.sent_size) == ("plot(x)", 7, (20, 40))


def test_bad_notebooks_get_typed_errors(tmp_path):
    (tmp_path / "empty.ipynb").write_text("  \n")
    with pytest.raises(EmptyNotebookError):
        load_notebook(tmp_path / "empty.ipynb")
    (tmp_path / "cut.ipynb").write_text('{"cells": [{"cell_type": "code", "sou')
    with pytest.raises(CorruptNotebookError) as err:
        load_notebook(tmp_path / "cut.ipynb")
    assert "cut.ipynb is damaged" in err.value.message
    (tmp_path / "list.ipynb").write_text("[1, 2, 3]")
    with pytest.raises(CorruptNotebookError) as err:
        load_notebook(tmp_path / "list.ipynb")
    assert "not a Jupyter notebook" in err.value.message
    (tmp_path / "deep.ipynb").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CorruptNotebookError):
        load_notebook(tmp_path / "deep.ipynb")
    cleared = _write(tmp_path / "cleared.ipynb", [_code("plot()", [])])
    with pytest.raises(NoNotebookFiguresError) as err:
        load_notebook(cleared)
    assert "has no figures" in err.value.message and isinstance(err.value, FigureError)


def test_oversized_notebook_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr("kanoa_desktop.core.inputs.notebook.MAX_NOTEBOOK_BYTES", 100)
    path = _write(
        tmp_path / "big.ipynb", [_code("p()", [_display("image/png", _png((40, 40), "red"))])]
    )
    with pytest.raises(NotebookTooLargeError):
        load_notebook(path)
