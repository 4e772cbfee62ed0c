"""prepare_figure and sniff_kind on real files generated with Pillow."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kanoa_desktop.core.inputs import figures
from kanoa_desktop.core.inputs.figures import (
    CorruptFigureError,
    DecompressionBombError,
    EmptyFigureError,
    FigureError,
    FigureNotFoundError,
    NotAnImageError,
    prepare_figure,
    sniff_kind,
)


def _line_art(size: tuple[int, int] = (800, 600)) -> Image.Image:
    """A plot-like image: white page, a few solid lines and a block."""
    im = Image.new("RGB", size, "white")
    px = np.asarray(im).copy()
    w, h = size
    px[h // 2, :, :] = 0
    px[:, w // 4, :] = (200, 0, 0)
    px[10:40, 10:60] = (0, 0, 255)
    return Image.fromarray(px)


def _noise(size: tuple[int, int], seed: int = 1) -> Image.Image:
    rng = np.random.default_rng(seed)
    # Smooth-ish photographic noise: JPEG compresses it far better than PNG.
    base = rng.integers(0, 256, (size[1] // 8 + 1, size[0] // 8 + 1, 3), dtype=np.uint8)
    im = Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)
    arr = np.asarray(im).astype(np.int16) + rng.integers(-12, 12, (size[1], size[0], 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def _save(im: Image.Image, path: Path, fmt: str, **kw) -> Path:
    im.save(path, fmt, **kw)
    return path


def _decode(fig: figures.PreparedFigure) -> Image.Image:
    im = Image.open(io.BytesIO(fig.data))
    im.load()
    return im


@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [("PNG", ".png"), ("JPEG", ".jpg"), ("GIF", ".gif"), ("BMP", ".bmp"), ("TIFF", ".tif"),
     ("WEBP", ".webp")],
)
def test_every_raster_format_decodes_to_the_same_size(tmp_path, fmt, suffix):
    path = _save(_line_art((640, 480)), tmp_path / f"fig{suffix}", fmt)
    fig = prepare_figure(path)
    assert fig.source_format == fmt
    assert fig.original_size == (640, 480)
    assert fig.sent_size == (640, 480)  # smaller than long_side: never upscaled
    assert _decode(fig).size == (640, 480)
    assert fig.name == f"fig{suffix}"
    assert fig.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_long_side_is_capped_and_aspect_kept(tmp_path):
    path = _save(_line_art((3000, 1500)), tmp_path / "wide.png", "PNG")
    fig = prepare_figure(path, long_side=1024)
    assert fig.original_size == (3000, 1500)
    assert fig.sent_size == (1024, 512)
    tall = prepare_figure(_save(_line_art((500, 2000)), tmp_path / "tall.png", "PNG"),
                          long_side=400)
    assert tall.sent_size == (100, 400)


def test_exif_orientation_is_applied(tmp_path):
    # 200×100 stored, with orientation 6 ("rotate 90° clockwise to view"): upright is 100×200.
    im = Image.new("RGB", (200, 100), "white")
    im.paste((255, 0, 0), (0, 0, 20, 20))  # red mark at stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(im, tmp_path / "rot.jpg", "JPEG", exif=exif.tobytes(), quality=95)
    fig = prepare_figure(path)
    assert fig.original_size == (100, 200)
    out = _decode(fig).convert("RGB")
    assert out.size == (100, 200)
    # Rotating 90° clockwise moves the stored top-left corner to the top-right.
    r, g, b = out.getpixel((95, 5))
    assert r > 200 and g < 60 and b < 60
    assert out.getpixel((5, 5))[1] > 200


def test_transparent_pixels_become_white(tmp_path):
    im = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    im.paste((0, 0, 255, 255), (0, 0, 50, 100))
    fig = prepare_figure(_save(im, tmp_path / "alpha.png", "PNG"))
    out = _decode(fig)
    assert out.mode in ("RGB", "L")
    assert out.convert("RGB").getpixel((90, 50)) == (255, 255, 255)
    assert out.convert("RGB").getpixel((10, 50)) == (0, 0, 255)


def test_animated_gif_sends_first_frame_and_says_so(tmp_path):
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    fig = prepare_figure(path)
    r, g, b = _decode(fig).convert("RGB").getpixel((32, 32))
    assert r > 200 and g < 50 and b < 50
    assert any("3 frames" in n for n in fig.notes)


SVG = b"""<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" width="400" height="200" viewBox="0 0 400 200">
  <rect x="0" y="0" width="200" height="200" fill="#ff0000"/>
</svg>"""


def test_svg_is_rasterised_at_long_side_on_white(tmp_path):
    path = tmp_path / "plot.svg"
    path.write_bytes(SVG)
    fig = prepare_figure(path, long_side=800)
    assert fig.source_format == "SVG"
    assert fig.original_size == (400, 200)
    assert fig.sent_size == (800, 400)
    out = _decode(fig).convert("RGB")
    assert out.getpixel((100, 200)) == (255, 0, 0)
    assert out.getpixel((700, 200)) == (255, 255, 255)  # transparent canvas flattened


def test_svg_rasterizer_hook_is_used(tmp_path):
    calls = []

    def fake(svg: bytes, long_side: int) -> bytes:
        calls.append(long_side)
        buf = io.BytesIO()
        Image.new("RGB", (long_side, long_side // 2), (0, 255, 0)).save(buf, "PNG")
        return buf.getvalue()

    fig = prepare_figure(SVG, name="pasted.svg", long_side=300, svg_rasterizer=fake)
    assert calls == [300]
    assert fig.sent_size == (300, 150)


def test_unclosed_svg_is_corrupt(tmp_path):
    path = tmp_path / "bad.svg"
    path.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'><rect")
    with pytest.raises(CorruptFigureError) as err:
        prepare_figure(path)
    assert "bad.svg" in err.value.message


def test_svg_named_file_that_is_html_is_not_an_image(tmp_path):
    path = tmp_path / "page.svg"
    path.write_bytes(b"<html><body>hello</body></html>")
    with pytest.raises(NotAnImageError) as err:
        prepare_figure(path)
    assert "page.svg" in err.value.message


def test_line_art_stays_png_and_noisy_photo_becomes_jpeg(tmp_path):
    line = prepare_figure(_save(_line_art((1200, 900)), tmp_path / "line.png", "PNG"))
    assert line.mime == "image/png"
    photo = prepare_figure(_save(_noise((1200, 900)), tmp_path / "photo.png", "PNG"))
    assert photo.mime == "image/jpeg"
    assert photo.format_label == "JPEG"


def test_data_url_round_trips(tmp_path):
    fig = prepare_figure(_save(_line_art((50, 40)), tmp_path / "s.png", "PNG"))
    head, b64 = fig.data_url().split(",", 1)
    assert head == f"data:{fig.mime};base64"
    assert base64.b64decode(b64) == fig.data


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    # A 1-bit 12000×12000 PNG is ~18 MB in memory and a few KB on disk: 144 MP > MAX_PIXELS.
    path = _save(Image.new("1", (12000, 12000)), tmp_path / "bomb.png", "PNG")
    assert path.stat().st_size < 1_000_000
    with pytest.raises(DecompressionBombError) as err:
        prepare_figure(path)
    assert "bomb.png" in err.value.message and err.value.hint


def test_pillow_bomb_warning_is_an_error(tmp_path, monkeypatch):
    # Pillow's own guard (warning above MAX_IMAGE_PIXELS) must also end as a typed error.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = _save(_line_art((100, 50)), tmp_path / "warn.png", "PNG")
    with pytest.raises(DecompressionBombError):
        prepare_figure(path)


def test_truncated_png_is_corrupt(tmp_path):
    full = tmp_path / "full.png"
    _save(_noise((400, 300)), full, "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CorruptFigureError) as err:
        prepare_figure(cut)
    assert "cut.png" in err.value.message


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(EmptyFigureError) as err:
        prepare_figure(path)
    assert "empty.png" in err.value.message and "0 bytes" in err.value.message


def test_text_named_png_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("These are my notes, not a picture.\n")
    with pytest.raises(NotAnImageError) as err:
        prepare_figure(path)
    assert "notes.png" in err.value.message
    assert isinstance(err.value, FigureError)


def test_missing_file(tmp_path):
    with pytest.raises(FigureNotFoundError) as err:
        prepare_figure(tmp_path / "gone.png")
    assert "gone.png" in err.value.message


def test_bytes_source_uses_given_name(tmp_path):
    buf = io.BytesIO()
    _line_art((30, 20)).save(buf, "PNG")
    fig = prepare_figure(buf.getvalue(), name="clipboard")
    assert fig.name == "clipboard" and fig.original_size == (30, 20)


def test_sniff_kind_routes_by_content(tmp_path):
    png = _save(_line_art((20, 20)), tmp_path / "a.dat", "PNG")
    svg = tmp_path / "b.xml"
    svg.write_bytes(SVG)
    csv = tmp_path / "c.txt"
    csv.write_text("a;b;c\n1;2;3\n4;5;6\n")
    other = tmp_path / "d.bin"
    other.write_bytes(b"\x00\x01\x02binary")
    assert sniff_kind(png) == "image"
    assert sniff_kind(svg) == "svg"
    assert sniff_kind(csv) == "table"
    assert sniff_kind(other) is None
    assert sniff_kind(tmp_path / "missing.png") is None
    assert sniff_kind(png.read_bytes()) == "image"


def test_matplotlib_scatter_stays_png_although_jpeg_would_be_much_smaller(monkeypatch):
    # 20,000 semi-transparent dots become many colours after LANCZOS; the white page is
    # what marks it as line art, so it must not be sent as ringing JPEG.
    import pandas as pd

    from kanoa_desktop.core.inputs.tables import quick_plot

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=20000), "y": rng.normal(size=20000)})
    png = quick_plot(frame, "x", "y", "scatter", width_px=3000, height_px=2000, dpi=200)
    fig = prepare_figure(png, name="plot.png")
    assert fig.sent_size == (1024, 683)
    assert fig.mime == "image/png"
    # With the line-art rule switched off, the size rule alone picks JPEG for this image.
    monkeypatch.setattr(figures, "LINE_ART_SHARE", 2.0)
    assert prepare_figure(png, name="plot.png").mime == "image/jpeg"
