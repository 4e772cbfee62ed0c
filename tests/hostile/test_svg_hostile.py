"""An SVG figure never pulls other files, URLs or entities into what is sent."""

from __future__ import annotations

import time

import pytest
from PIL import Image

from kanoa_desktop.core.inputs.figures import (
    FigureError,
    prepare_figure,
    sanitize_svg,
)
from tests.hostile.server import HostileServer

SVG_HEAD = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'width="100" height="100" viewBox="0 0 100 100">'
    '<rect width="100" height="100" fill="white"/>'
)


@pytest.fixture
def blue_png(tmp_path):
    path = tmp_path / "elsewhere" / "secret.png"
    path.parent.mkdir()
    Image.new("RGB", (100, 100), (0, 0, 255)).save(path)
    return path


def _blue_pixels(fig) -> int:
    import io

    with Image.open(io.BytesIO(fig.data)) as im:
        rgb = im.convert("RGB")
        return sum(1 for r, g, b in rgb.get_flattened_data() if b > 150 and r < 100 and g < 100)


def _svg(body: str) -> bytes:
    return (SVG_HEAD + body + "</svg>").encode()


@pytest.mark.parametrize(
    "body",
    [
        '<image href="{path}" width="100" height="100"/>',
        '<image xlink:href="{path}" width="100" height="100"/>',
        '<image href="{uri}" width="100" height="100"/>',
        '<filter id="f"><feImage href="{uri}"/></filter><rect width="100" height="100" filter="url(#f)"/>',
    ],
    ids=["image-abs", "xlink", "file-uri", "feimage"],
)
def test_an_svg_image_of_a_local_file_is_blanked_with_a_note(tmp_path, blue_png, body):
    svg = _svg(body.format(path=blue_png, uri=blue_png.as_uri()))
    src = tmp_path / "figure.svg"
    src.write_bytes(svg)
    fig = prepare_figure(src, long_side=100)
    assert _blue_pixels(fig) == 0  # the local PNG was not read into the figure
    assert any("removed and not read" in n for n in fig.notes), fig.notes


def test_a_relative_reference_beside_the_svg_is_not_read(tmp_path):
    Image.new("RGB", (100, 100), (0, 0, 255)).save(tmp_path / "beside.png")
    src = tmp_path / "figure.svg"
    src.write_bytes(_svg('<image href="beside.png" width="100" height="100"/>'))
    fig = prepare_figure(src, long_side=100)
    assert _blue_pixels(fig) == 0 and fig.notes


def test_http_references_are_never_fetched():
    with HostileServer() as server:
        url = server.url("svg-probe", "/x.png")
        svg = _svg(
            f'<image href="{url}" width="10" height="10"/>'
            f'<use href="{server.url("svg-probe", "/other.svg")}#a"/>'
            f"<style>@import url({server.url('svg-probe', '/a.css')}); "
            f"rect {{ fill: url({server.url('svg-probe', '/p.svg')}#g) }}</style>"
            f'<rect width="5" height="5" style="fill:url(\'{url}\')"/>'
        )
        fig = prepare_figure(svg, name="remote.svg", long_side=64)
        time.sleep(0.3)
        assert not any(r.scenario == "svg-probe" for r in server.seen.requests)
    assert fig.notes and "removed" in fig.notes[0]


def test_an_external_entity_is_refused_with_a_clear_message(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    svg = (
        f'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'
        + SVG_HEAD
        + "<text y='50'>&x;</text></svg>"
    ).encode()
    with pytest.raises(FigureError) as info:
        prepare_figure(svg, name="entity.svg")
    assert "external XML entity" in info.value.message


def test_internal_references_are_kept_byte_for_byte():
    svg = _svg(
        '<defs><linearGradient id="g"><stop offset="0" stop-color="blue"/></linearGradient>'
        '<rect id="r" width="50" height="50"/></defs>'
        '<use href="#r" fill="url(#g)"/><rect width="10" height="10" style="fill:url(#g)"/>'
    )
    out, notes = sanitize_svg(svg)
    assert out == svg and notes == []
    fig = prepare_figure(svg, name="ok.svg", long_side=100)
    assert _blue_pixels(fig) > 0 and fig.notes == ()


@pytest.mark.timeout(60)  # a hang guard (pytest-timeout), not a timing
def test_css_reference_stripping_is_linear_on_adversarial_styles():
    nasty = "url(" * 50_000 + "@import " * 20_000
    svg = _svg(f'<rect width="1" height="1" style="{nasty}"/><style>{nasty}</style>')
    out, notes = sanitize_svg(svg)
    assert b"@import" not in out and notes


def test_the_figure_card_shows_that_references_were_removed(qtbot, blue_png):
    from kanoa_desktop.ui.figure_preview import FigurePreview

    fig = prepare_figure(_svg(f'<image href="{blue_png}" width="9" height="9"/>'), name="x.svg")
    preview = FigurePreview()
    qtbot.addWidget(preview)
    preview.set_figures([fig])
    from PySide6.QtWidgets import QLabel

    label = preview.findChildren(QLabel, "figureCaption")[0]
    assert "1 note" in label.text() and "removed and not read" in label.toolTip()
