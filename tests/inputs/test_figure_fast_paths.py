"""The fast paths of prepare_figure give what the plain Pillow path gives.

Line art is written as an unfiltered PNG by our own writer, the line-art test first tries
the top-left colour, and a large PNG is decoded with its inflate on a second thread. Each
test compares against Pillow's own result or checks that a damaged or unusual file still
takes Pillow's path and its errors.
"""

from __future__ import annotations

import io
import struct
import zlib

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


def _split_png(raw: bytes, pieces: int) -> bytes:
    """The same PNG with its image data cut into ``pieces`` IDAT chunks."""
    parts = figures._png_parts(raw)
    assert parts is not None
    data = b"".join(parts[0])
    size = -(-len(data) // pieces)
    head = raw[: raw.index(b"IDAT") - 4]
    chunks = [figures._png_chunk(b"IDAT", data[i : i + size]) for i in range(0, len(data), size)]
    return head + b"".join(chunks) + figures._png_chunk(b"IEND", b"")


@pytest.fixture
def always_split(monkeypatch):
    """Take the two-thread path for every PNG, however small, on any machine."""
    monkeypatch.setattr(figures, "SPLIT_PNG_MIN_PIXELS", 0)
    monkeypatch.setattr(figures, "_spare_core", lambda: True)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P"])
def test_split_decode_gives_pillows_pixels(mode):
    im = _plot((900, 700), mode)
    raw = _png(im, compress_level=6)
    expected = Image.open(io.BytesIO(raw))
    expected.load()
    got = figures._load_png_split(Image.open(io.BytesIO(raw)), raw)
    assert got.tile == []  # loaded by the split decoder, not left for Pillow
    assert got.mode == expected.mode
    assert got.tobytes() == expected.tobytes()


def test_split_decode_reads_image_data_cut_into_many_chunks():
    im = _plot((640, 480))
    raw = _split_png(_png(im), pieces=37)
    got = figures._load_png_split(Image.open(io.BytesIO(raw)), raw)
    assert got.tile == []
    assert got.tobytes() == im.tobytes()


def test_split_decode_refuses_interlaced_and_16_bit_pngs_to_pillow():
    deep = Image.fromarray((np.arange(300 * 200).reshape(200, 300) * 7).astype(np.uint16))
    raw = _png(deep)
    assert figures._png_parts(raw) is None
    ihdr = bytearray(_png(_plot((300, 200))))
    ihdr[28] = 1  # the interlace byte of IHDR (Pillow cannot write an interlaced PNG)
    assert figures._png_parts(bytes(ihdr)) is None


def test_prepared_large_png_is_the_same_split_or_not(monkeypatch, tmp_path):
    path = tmp_path / "plot.png"
    _plot((2400, 1800)).save(path)
    monkeypatch.setattr(figures, "SPLIT_PNG_MIN_PIXELS", 10**12)
    plain = prepare_figure(path)
    monkeypatch.setattr(figures, "SPLIT_PNG_MIN_PIXELS", 0)
    monkeypatch.setattr(figures, "_spare_core", lambda: True)
    split = prepare_figure(path)
    assert split.data == plain.data and split.sent_size == plain.sent_size == (1024, 768)


def test_exif_orientation_after_the_image_data_is_applied(always_split, tmp_path):
    im = _plot((400, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to show upright
    raw = _png(im)
    end = raw.rindex(b"IEND") - 4
    # An eXIf chunk after IDAT: legal, and Pillow's own load reads it there too.
    raw = raw[:end] + figures._png_chunk(b"eXIf", exif.tobytes()[6:]) + raw[end:]
    fig = prepare_figure(raw, name="rotated.png")
    assert fig.original_size == (200, 400)
    assert fig.sent_size == (200, 400)


def test_truncated_large_png_is_still_reported_as_damaged(always_split, tmp_path):
    raw = _png(_plot((900, 700)), compress_level=1)
    parts = figures._png_parts(raw)
    assert parts is not None
    data = b"".join(parts[0])
    cut = raw[: raw.index(b"IDAT") - 4] + figures._png_chunk(b"IDAT", data[: len(data) // 2])
    with pytest.raises(CorruptFigureError):
        prepare_figure(cut + figures._png_chunk(b"IEND", b""), name="cut.png")


@pytest.mark.parametrize("split_from", [0, 10**12])
def test_damaged_deflate_data_is_reported_as_damaged(monkeypatch, split_from):
    # Before, the load that getexif() makes of a PNG ran inside the damaged-EXIF guard:
    # a broken stream became a note and a half-decoded image was sent.
    monkeypatch.setattr(figures, "SPLIT_PNG_MIN_PIXELS", split_from)
    monkeypatch.setattr(figures, "_spare_core", lambda: True)
    raw = bytearray(_png(_plot((900, 700)), compress_level=1))
    start = raw.index(b"IDAT") + 4
    raw[start + 2] = 0x07  # the first deflate block: final, of the reserved type 3
    with pytest.raises(CorruptFigureError):
        prepare_figure(bytes(raw), name="damaged.png")


def test_image_data_longer_than_the_header_says_is_not_inflated_past_it(always_split):
    # A small declared size with a huge stream behind it: the inflate stops at the size.
    w, h = 64, 64
    rows = b"".join(b"\x00" + b"\x80" * (w * 3) for _ in range(h)) + b"\x00" * 50_000_000
    raw = b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            figures._png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)),
            figures._png_chunk(b"IDAT", zlib.compress(rows, 9)),
            figures._png_chunk(b"IEND", b""),
        )
    )
    got = figures._load_png_split(Image.open(io.BytesIO(raw)), raw)
    assert got.size == (64, 64)
    assert got.getpixel((10, 10)) == (128, 128, 128)


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


def _zlib_inflater():
    return zlib.decompressobj(wbits=-15)


@pytest.mark.parametrize("inflater", ["isal", "zlib"])
def test_either_inflater_gives_pillows_pixels_and_reports_damage(monkeypatch, inflater):
    """ISA-L (the optional `fast` extra) inflates when installed; zlib is the fallback."""
    if inflater == "zlib":
        monkeypatch.setattr(figures, "_inflater", _zlib_inflater)
    else:
        import isal  # noqa: F401 - the `fast` extra, which make test installs: never skipped
        assert type(figures._inflater()).__module__.startswith(("isal", "igzip"))
    monkeypatch.setattr(figures, "SPLIT_PNG_MIN_PIXELS", 0)
    monkeypatch.setattr(figures, "_spare_core", lambda: True)
    raw = _png(_plot((900, 700)))
    split = prepare_figure(raw, name="p.png")
    monkeypatch.setattr(figures, "SPLIT_PNG_MIN_PIXELS", 10**12)
    plain = prepare_figure(raw, name="p.png")
    assert split.data == plain.data
    monkeypatch.setattr(figures, "SPLIT_PNG_MIN_PIXELS", 0)
    damaged = bytearray(raw)
    damaged[damaged.index(b"IDAT") + 6] = 0x07  # first deflate block of the reserved type
    with pytest.raises(CorruptFigureError):
        prepare_figure(bytes(damaged), name="damaged.png")


def test_a_whole_factor_box_then_hamming_keeps_the_exact_size_and_the_page(tmp_path):
    """A 4000 x 3000 plot: reduce(3) then HAMMING to exactly 1024 x 768 (the long side the
    profile asks for, not the 1000 a reduce(4) alone would give)."""
    im = Image.new("RGB", (4000, 3000), "white")
    im.paste((0, 0, 0), (0, 1480, 4000, 1520))  # a 40 px black band across the middle
    fig = prepare_figure(_png(im), name="wide.png")
    assert fig.sent_size == (1024, 768)
    out = np.asarray(Image.open(io.BytesIO(fig.data)).convert("RGB"))
    assert (out[:300] == 255).all() and (out[-300:] == 255).all()  # the page stays white
    assert out[384].max() < 40  # the band is still black in the middle
