"""The fast paths of prepare_figure give what the plain Pillow path gives.

Line art is written as an unfiltered PNG by our own writer, and the line-art test first
tries the top-left colour. Each test compares against Pillow's own result or a full count.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from kanoa_desktop.core.inputs import figures
from kanoa_desktop.core.inputs.figures import CorruptFigureError, prepare_figure


def _plot(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A plot-like image with structure in every row (so every PNG filter gets used)."""
    w, h = size
    rng = np.random.default_rng(3)
    px = np.full((h, w, 3), 255, np.uint8)
    ys = (h / 2 + h / 3 * np.sin(np.arange(w) / 37)).astype(int)
    for dy in range(-2, 3):
        px[np.clip(ys + dy, 0, h - 1), np.arange(w)] = (31, 119, 180)
    px[h // 3 : h // 3 + 40, w // 5 : w // 2] = rng.integers(0, 255, (40, w // 2 - w // 5, 3))
    px[:, w // 7] = (0, 0, 0)
    im = Image.fromarray(px)
    if mode == "RGBA":
        im.putalpha(Image.fromarray(np.where(px[..., 0] > 128, 255, 90).astype(np.uint8)))
    elif mode != "RGB":
        im = im.convert(mode)
    return im


def _png(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **kw)
    return buf.getvalue()


def test_damaged_deflate_data_is_reported_as_damaged():
    # Before, the load that getexif() makes of a PNG ran inside the damaged-EXIF guard:
    # a broken stream became a note and a half-decoded image was sent.
    raw = bytearray(_png(_plot((900, 700)), compress_level=1))
    start = raw.index(b"IDAT") + 4
    raw[start + 2] = 0x07  # the first deflate block: final, of the reserved type 3
    with pytest.raises(CorruptFigureError):
        prepare_figure(bytes(raw), name="damaged.png")


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_plain_png_round_trips_the_pixels(mode):
    im = _plot((333, 211)).convert(mode)
    out = Image.open(io.BytesIO(figures._plain_png(im)))
    assert out.mode == mode
    assert out.tobytes() == im.tobytes()


def test_line_art_is_sent_as_lossless_png_of_the_downscaled_pixels(tmp_path):
    path = tmp_path / "plot.png"
    _plot((2048, 1536)).save(path)
    fig = prepare_figure(path)
    assert fig.mime == "image/png"
    sent = Image.open(io.BytesIO(fig.data))
    expected = Image.open(path).resize((1024, 768), Image.Resampling.LANCZOS, reducing_gap=1.0)
    assert sent.tobytes() == expected.tobytes()


def test_line_art_test_agrees_with_a_full_count():
    # The page colour is not the top-left pixel: the full count still finds it.
    framed = np.full((200, 200, 3), 255, np.uint8)
    framed[:20] = (0, 0, 0)
    assert figures._is_line_art(Image.fromarray(framed))
    # The top-left colour is common but under the share, and no colour reaches it.
    rng = np.random.default_rng(0)
    mixed = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    mixed[:60] = (255, 255, 255)  # 30 % of the rows
    assert not figures._is_line_art(Image.fromarray(mixed))
