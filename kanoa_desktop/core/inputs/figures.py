"""Prepare a figure (raster image or SVG) for sending to a multimodal model.

Everything here is a plain synchronous function: the UI runs it on a thread pool, the CLI
and the benchmarks call it directly. Nothing here imports Qt.

What a caller may rely on from :func:`prepare_figure`:

- EXIF orientation is applied, so the sent image is upright as a photo viewer shows it.
- Transparency is flattened onto white (models see a white page, not black).
- The long side is at most ``long_side`` pixels (LANCZOS); rasters are never upscaled.
  SVG has no native resolution and is rendered with its long side exactly ``long_side``.
- Line art (one colour, the page, covers >= 40 % of the pixels: plots, diagrams) is sent
  as PNG. Anything else is sent as JPEG (quality 90) when that is under 60 % of the PNG's
  size, else as PNG: photos and noisy images go as JPEG.
- Every failure is a :class:`FigureError` subclass with a plain ``message`` naming the file
  and a ``hint`` saying what to do next.

SVG is rasterised with ``resvg-py`` (a self-contained Rust wheel, no system cairo). A caller
may pass its own ``svg_rasterizer`` instead (for example one built on QtSvg).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import queue
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

# numpy and Pillow load on the first figure (on the worker pool), not with the window.
if TYPE_CHECKING:
    from PIL import Image

from kanoa_desktop.core import lazy
from kanoa_desktop.core.endpoint.chat import data_url
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.inputs.chosen import read_chosen

# Above this many pixels an image is refused before it is decoded. 100 MP covers a
# full-frame camera (61 MP) or a large scanned poster; an RGBA buffer of it is 400 MB.
MAX_PIXELS = 100_000_000
# Files larger than this are refused before they are read into memory.
MAX_FILE_BYTES = 256 * 1024 * 1024
# SVG source larger than this (after gunzip for .svgz) is refused: real figures are far smaller.
MAX_SVG_BYTES = 64 * 1024 * 1024
DEFAULT_LONG_SIDE = 1024
JPEG_QUALITY = 90
# JPEG is chosen only when it is clearly smaller; a close call stays lossless PNG.
JPEG_SIZE_RATIO = 0.6
# An image whose most common colour covers this share of pixels is line art and stays PNG.
LINE_ART_SHARE = 0.4

RASTER_FORMATS = {"PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "MPO"}
TABLE_SUFFIXES = {".csv", ".tsv", ".tab", ".txt", ".psv"}
# A file named like an image must hold one: text in a ".png" is "not an image", never a table.
IMAGE_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".jpe", ".gif", ".bmp", ".dib", ".tif", ".tiff", ".webp",
    ".svg", ".svgz",
}  # fmt: skip

SvgRasterizer = Callable[[bytes, int], bytes]
"""``(svg_bytes, long_side) -> PNG bytes`` with the long side of the PNG equal to long_side."""


# --------------------------------------------------------------------------- errors


class FigureError(KanoaError):
    """A figure could not be prepared. ``message`` says what happened, ``hint`` what to do."""

    title = "Cannot use this figure"


class FigureNotFoundError(FigureError):
    """The file does not exist or cannot be read."""


class EmptyFigureError(FigureError):
    """The file has 0 bytes."""


class NotAnImageError(FigureError):
    """The content is not an image at all (text, a PDF, a zip…)."""


class UnsupportedFigureError(FigureError):
    """An image in a format this app does not handle."""


class CorruptFigureError(FigureError):
    """The image is truncated or damaged."""


class DecompressionBombError(FigureError):
    """The image declares more pixels than MAX_PIXELS; it is refused before decoding."""


class FigureTooLargeError(FigureError):
    """The file itself is larger than MAX_FILE_BYTES."""


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class PreparedFigure:
    """A figure ready to send. ``data`` is the encoded image in ``mime``."""

    name: str
    original_size: tuple[int, int]
    sent_size: tuple[int, int]
    mime: str  # "image/png" or "image/jpeg"
    data: bytes = field(repr=False)
    sha256: str  # of the original file's bytes: identical files share it
    source_format: str  # "PNG", "JPEG", "SVG", …
    notes: tuple[str, ...] = ()

    @property
    def format_label(self) -> str:
        """ "PNG" or "JPEG", for captions."""
        return "JPEG" if self.mime == "image/jpeg" else "PNG"

    def data_url(self) -> str:
        """The image as a ``data:`` URL, as OpenAI-compatible ``image_url`` parts take it."""
        return data_url(self.data, self.mime)


# --------------------------------------------------------------------------- sniffing


_SVG_HEAD = re.compile(rb"<svg[\s>]", re.IGNORECASE)


def _looks_like_svg(head: bytes) -> bool:
    if head.startswith(b"\x1f\x8b"):
        return False
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"<") and _SVG_HEAD.search(head) is not None


def _looks_like_text_table(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    lines = [ln for ln in head.splitlines()[:20] if ln.strip()]
    if not lines:
        return False
    for delim in (b",", b";", b"\t", b"|"):
        counts = [ln.count(delim) for ln in lines[:-1] or lines]
        if counts and min(counts) >= 1 and max(counts) == min(counts):
            return True
    return False


def sniff_kind(source: Path | str | bytes) -> str | None:
    """Route a dropped file or pasted bytes: ``"image"``, ``"svg"``, ``"table"`` or None.

    Looks at content first (magic bytes), then at the file name. Reads at most 8 KiB.
    Extension and content must agree: a file named like an image whose content is not an
    image gives None, even when it holds delimited text. Never raises: an unreadable path
    gives None.
    """
    suffix = ""
    if isinstance(source, bytes):
        head = source[:8192]
    else:
        path = Path(source)
        suffix = path.suffix.lower()
        try:
            with path.open("rb") as fh:
                head = fh.read(8192)
        except OSError:
            return None
    if not head:
        return None
    if head.startswith(b"\x1f\x8b"):
        return "svg" if suffix == ".svgz" else None
    if _looks_like_svg(head):
        return "svg"
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # routing only
            Image.open(io.BytesIO(head)).close()
        return "image"
    except Exception:  # noqa: BLE001 - Pillow raises many kinds here; any means "not an image"
        pass
    if head[:8] == b"\x89PNG\r\n\x1a\n" or head[:3] == b"\xff\xd8\xff":
        return "image"  # a truncated header that Pillow could not open from 8 KiB
    if suffix in IMAGE_SUFFIXES:
        return None
    if suffix in TABLE_SUFFIXES or _looks_like_text_table(head):
        return "table" if b"\x00" not in head else None
    return None


# --------------------------------------------------------------------------- SVG


_UNITS = {
    "": 1.0,
    "px": 1.0,
    "pt": 4 / 3,
    "pc": 16.0,
    "mm": 96 / 25.4,
    "cm": 96 / 2.54,
    "in": 96.0,
    "em": 16.0,
    "ex": 8.0,
}
_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z%]*)\s*$")


def _length_px(value: str | None) -> float | None:
    if not value:
        return None
    m = _LENGTH.match(value)
    if not m or m.group(2) not in _UNITS:
        return None  # "100%" and unknown units fall back to the viewBox
    return float(m.group(1)) * _UNITS[m.group(2)]


def svg_intrinsic_size(svg: bytes) -> tuple[float, float]:
    """The SVG's size in CSS pixels from width/height or the viewBox (100×100 if neither).

    Raises NotAnImageError when the root element is not ``<svg>`` or the XML is malformed.
    """
    import xml.etree.ElementTree as ET  # SVG only: not loaded with the window

    try:
        # Only the root start tag is needed; expat limits entity expansion (billion laughs).
        _, root = next(ET.iterparse(io.BytesIO(svg), events=("start",)))
    except (ET.ParseError, StopIteration) as exc:
        raise NotAnImageError("not valid SVG XML", str(exc)) from exc
    if not root.tag.endswith("svg"):
        raise NotAnImageError("the root element is not <svg>", "")
    width = _length_px(root.get("width"))
    height = _length_px(root.get("height"))
    vb = root.get("viewBox")
    vb_w = vb_h = None
    if vb:
        parts = re.split(r"[\s,]+", vb.strip())
        if len(parts) == 4:
            try:
                vb_w, vb_h = abs(float(parts[2])), abs(float(parts[3]))
            except ValueError:
                pass
    if width and height:
        return width, height
    if vb_w and vb_h:
        if width:
            return width, width * vb_h / vb_w
        if height:
            return height * vb_w / vb_h, height
        return vb_w, vb_h
    return width or 100.0, height or 100.0


_XLINK_NS = "http://www.w3.org/1999/xlink"
_SVG_NS = "http://www.w3.org/2000/svg"
_XML_NS = "http://www.w3.org/XML/1998/namespace"


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _internal_ref(value: str) -> bool:
    """A reference that stays inside the file: a fragment, or raster image data."""
    v = value.strip().lower()
    return v.startswith("#") or (v.startswith("data:image/") and not v.startswith("data:image/svg"))


def _strip_css_refs(css: str) -> tuple[str, int]:
    """CSS without external ``url(...)`` targets and ``@import`` rules, and how many were
    removed. Plain ``find`` scans that resume past each hit: linear in the text."""
    removed = 0
    low = css.lower()
    out: list[str] = []
    i = 0
    while True:
        j = low.find("url(", i)
        k = low.find("@import", i)
        if j < 0 and k < 0:
            break
        if k >= 0 and (j < 0 or k < j):
            end = low.find(";", k)
            end = len(css) if end < 0 else end + 1
            out.append(css[i:k])
            removed += 1
            i = end
            continue
        close = css.find(")", j + 4)
        end = len(css) if close < 0 else close + 1
        target = css[j + 4 : end - 1 if close >= 0 else end].strip().strip("'\"").strip()
        if _internal_ref(target):
            out.append(css[i:end])
        else:
            out.append(css[i:j] + "none")
            removed += 1
        i = end
    out.append(css[i:])
    return "".join(out), removed


def sanitize_svg(svg: bytes) -> tuple[bytes, list[str]]:
    """The SVG with every reference outside the file removed, and notes for the user.

    Removed: ``href``/``xlink:href`` that are not ``#fragments`` or raster ``data:``
    images (``<image>``, ``<use>`` of another document, ``<feImage>``, links to files,
    http or relative paths), ``url(...)`` to anything but a fragment and ``@import`` in
    ``<style>``, ``style`` and presentation attributes, and ``xml:base``. An SVG that
    names an external XML entity (or is malformed) is refused with
    :class:`NotAnImageError`; internal entities are expanded (expat limits their growth).
    An SVG with nothing to remove is returned byte for byte."""
    import xml.etree.ElementTree as ET  # SVG only: not loaded with the window

    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        if "undefined entity" in str(exc):
            raise NotAnImageError("it refers to an external XML entity", str(exc)) from exc
        raise CorruptFigureError(f"damaged SVG ({exc})", "Re-export it and try again.") from exc
    removed: dict[str, int] = {}

    def count(kind: str, n: int = 1) -> None:
        removed[kind] = removed.get(kind, 0) + n

    for el in root.iter():
        tag = _local(el.tag) if isinstance(el.tag, str) else ""
        for key in list(el.attrib):
            value = el.attrib[key]
            name = _local(key)
            if name == "href" and not _internal_ref(value):
                del el.attrib[key]
                count(f"<{tag}> link to {value.strip()[:60] or 'nothing'}")
            elif key == f"{{{_XML_NS}}}base":
                del el.attrib[key]
                count("xml:base")
            elif "url(" in value.lower() or "@import" in value.lower():
                cleaned, n = _strip_css_refs(value)
                if n:
                    el.attrib[key] = cleaned
                    count("CSS url() or @import", n)
        if (
            tag == "style"
            and el.text
            and ("url(" in el.text.lower() or "@import" in el.text.lower())
        ):
            cleaned, n = _strip_css_refs(el.text)
            if n:
                el.text = cleaned
                count("CSS url() or @import", n)
    has_entities = b"<!ENTITY" in svg
    if not removed and not has_entities:
        return svg, []
    ET.register_namespace("", _SVG_NS)
    ET.register_namespace("xlink", _XLINK_NS)
    cleaned_svg = ET.tostring(root, encoding="utf-8")
    if not removed:
        return cleaned_svg, []
    total = sum(removed.values())
    shown = "; ".join(sorted(removed)[:5]) + ("; ..." if len(removed) > 5 else "")
    note = (
        f"{total} reference{'s' if total != 1 else ''} to content outside the SVG "
        f"{'were' if total != 1 else 'was'} removed and not read ({shown})."
    )
    from kanoa_desktop.core.safety import escape_control

    return cleaned_svg, [escape_control(note)]


def resvg_rasterizer(svg: bytes, long_side: int) -> bytes:
    """Rasterise SVG to PNG with resvg-py, long side = ``long_side`` pixels."""
    import resvg_py  # imported lazily so that a missing wheel only disables SVG

    w, h = svg_intrinsic_size(svg)
    kwargs = {"width": long_side} if w >= h else {"height": long_side}
    text = svg.decode("utf-8-sig", errors="replace")
    return bytes(resvg_py.svg_to_bytes(svg_string=text, **kwargs))


# --------------------------------------------------------------------------- raster


# EXIF orientation tag 0x0112 -> the transposes that make the image upright (names of
# Image.Transpose members, looked up when Pillow is loaded).
_ORIENTATION_OPS: dict[int, tuple[str, ...]] = {
    2: ("FLIP_LEFT_RIGHT",),
    3: ("ROTATE_180",),
    4: ("FLIP_TOP_BOTTOM",),
    5: ("TRANSPOSE",),
    6: ("ROTATE_270",),
    7: ("TRANSVERSE",),
    8: ("ROTATE_90",),
}


def _to_flat(im: Image.Image) -> Image.Image:
    """Return an "L" or "RGB" image with any transparency composited onto white."""
    import numpy as np
    from PIL import Image

    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit and float greyscale (scientific TIFFs): stretch to 8 bits rather than clip.
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        arr = np.nan_to_num((arr - lo) * scale)
        return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("1", "L"):
        return im.convert("L")
    if im.mode in ("LA", "La", "PA"):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "RGBa"):
        rgba = im.convert("RGBA")
        if rgba.getextrema()[3][0] == 255:  # fully opaque: skip the composite
            return rgba.convert("RGB")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def _is_line_art(im: Image.Image) -> bool:
    """True when one colour (the page) covers at least LINE_ART_SHARE of the image.

    Plots, diagrams and scans of text have a flat background; photographs and micrographs
    almost never repeat one exact colour that often. Every other pixel in each direction is
    enough to tell, at a quarter of the cost. The top-left pixel is tried first (it is the
    page of almost every plot): counting one colour is a tenth of the cost of counting all.
    """
    import numpy as np

    arr = np.asarray(im)[::2, ::2]
    pixels = arr.shape[0] * arr.shape[1]
    if pixels == 0:
        return True
    need = LINE_ART_SHARE * pixels
    if arr.ndim == 3:
        r, g, b = arr[0, 0]
        page = (arr[..., 0] == r) & (arr[..., 1] == g) & (arr[..., 2] == b)
    else:
        page = arr == arr[0, 0]
    if np.count_nonzero(page) >= need:
        return True
    if arr.ndim == 3:  # one number per colour, for counting them all
        arr = arr.astype(np.uint32)
        arr = (arr[..., 0] << 16) | (arr[..., 1] << 8) | arr[..., 2]
    _, counts = np.unique(arr, return_counts=True)
    return counts.max() >= need


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _plain_png(im: Image.Image) -> bytes:
    """An "L" or "RGB" image as PNG with unfiltered rows, deflated at level 1.

    Pillow's encoder tries five filters on every row and keeps the best, which costs more
    than the deflate itself at 1024 px; a plot's flat page deflates as well unfiltered
    (often better). For line art only: a photo compresses far better with filters."""
    import numpy as np

    arr = np.asarray(im)
    h, w = arr.shape[:2]
    rows = np.zeros((h, arr[0].size + 1), np.uint8)  # filter byte 0 ("None") before each row
    rows[:, 1:] = arr.reshape(h, -1)
    colour_type = 2 if im.mode == "RGB" else 0
    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", _deflate(rows)),
            _png_chunk(b"IEND", b""),
        )
    )


def _fast_zlib():
    """ISA-L's zlib-compatible module (the isal dependency: 3-8x zlib's inflate on a plot's
    long runs, deflate in a third of the time), or zlib itself when it is missing."""
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib
    return isal_zlib


def _deflate(data) -> bytes:
    """zlib-format deflate at a fast level."""
    return _fast_zlib().compress(data, 1)


def _encode(im: Image.Image) -> tuple[str, bytes]:
    """PNG for line art; otherwise JPEG when it is under JPEG_SIZE_RATIO of the PNG."""
    if _is_line_art(im):
        # JPEG rings around thin lines and small text, exactly what a model must read.
        return "image/png", _plain_png(im)
    png = io.BytesIO()
    # Level 1: half the time of the default 6 for ~20 % more bytes, on a loopback or LAN.
    im.save(png, "PNG", compress_level=1)
    png_bytes = png.getvalue()
    jpg = io.BytesIO()
    im.save(jpg, "JPEG", quality=JPEG_QUALITY, optimize=True)
    jpg_bytes = jpg.getvalue()
    if len(jpg_bytes) < JPEG_SIZE_RATIO * len(png_bytes):
        return "image/jpeg", jpg_bytes
    return "image/png", png_bytes


# --------------------------------------------------------------------------- large PNG

# Pillow decodes a PNG on one thread: inflate, then unfilter each row, in one C loop. For a
# 12 MP plot that is most of the preparation, and inflating alone is over half of it. Above
# this size the inflate runs on a second thread, ahead of Pillow's unfiltering.
SPLIT_PNG_MIN_PIXELS = 4_000_000
_INFLATE_CHUNK = 256 * 1024  # output per inflate step: stays in cache for the decoder
_STORED_MAX = 0xFFFF  # the longest stored deflate block


def _png_parts(raw: bytes) -> tuple[list[memoryview], bytes | None] | None:
    """The IDAT payloads in order, and the eXIf payload, of a non-interlaced 8-bit PNG.

    None for anything else (16-bit, interlaced, a damaged chunk layout...): Pillow's own
    decoder takes those, and reports damage in its own words."""
    if raw[:8] != b"\x89PNG\r\n\x1a\n" or raw[12:16] != b"IHDR" or len(raw) < 33:
        return None
    bit_depth, _colour, _comp, _filt, interlace = raw[24:29]
    if bit_depth != 8 or interlace != 0:
        return None
    view = memoryview(raw)
    idat: list[memoryview] = []
    exif = None
    prev = b""
    pos = 8
    while pos + 12 <= len(raw):
        (length,) = struct.unpack_from(">I", raw, pos)
        kind = raw[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(raw):
            return None
        if kind == b"IDAT":
            if idat and prev != b"IDAT":
                return None  # IDAT chunks must be consecutive
            idat.append(view[pos + 8 : pos + 8 + length])
        elif kind == b"eXIf":
            exif = bytes(view[pos + 8 : pos + 8 + length])
        elif kind == b"IEND":
            break
        prev = kind
        pos = end
    return (idat, exif) if idat else None


def _inflate_to_stored(
    idat: list[memoryview], total: int, out: queue.Queue, stop: threading.Event
) -> None:
    """Worker thread: inflate the image data (zlib releases the GIL) and re-emit it as a
    zlib stream of stored blocks, which Pillow's decoder copies instead of inflating.

    At most ``total`` bytes (the image's filtered size) are inflated, so a stream that
    inflates to more than the header declares costs no more than an honest one. The
    Adler-32 is not checked, as Pillow does not check it either (it stops at the last row).
    ``None`` ends the stream, whatever happened."""
    try:
        d = _inflater()  # raw deflate: no Adler-32 over 36 MB
        data = b"".join(idat)[2:]  # the zlib header
        out.put(b"\x78\x01")
        done = 0
        while done < total and not stop.is_set():
            chunk = d.decompress(data, min(_INFLATE_CHUNK, total - done))
            data = d.unconsumed_tail
            if not chunk:
                break
            done += len(chunk)
            n = len(chunk)
            framed = bytearray(n + 5 * ((n + _STORED_MAX - 1) // _STORED_MAX))
            src = memoryview(chunk)
            o = 0
            for i in range(0, n, _STORED_MAX):
                m = min(_STORED_MAX, n - i)
                struct.pack_into("<BHH", framed, o, 0, m, m ^ 0xFFFF)
                framed[o + 5 : o + 5 + m] = src[i : i + m]
                o += 5 + m
            out.put(framed)  # Pillow reads any buffer: no copy
    except Exception:  # noqa: BLE001 - zlib.error, isal's IsalError: damaged data
        pass  # the consumer falls back to Pillow, which says what is wrong
    finally:
        out.put(None)


# Modes Image.reduce() takes (not palette or bilevel images: thumbnail() handles those).
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "I", "F"})


def _fit(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """The size thumbnail((long_side, long_side)) gives ``size``: aspect kept, each side
    rounded the way that keeps the aspect closest."""
    w, h = size
    aspect = w / h
    if w >= h:
        x = long_side
        y = min((math.floor(x / aspect), math.ceil(x / aspect)),
                key=lambda n: abs(aspect - x / n) if n else math.inf)  # fmt: skip
        return x, max(y, 1)
    y = long_side
    x = min((math.floor(y * aspect), math.ceil(y * aspect)), key=lambda n: abs(aspect - n / y))
    return max(x, 1), y


def _box_factor(im, fmt: str, long_side: int) -> int:
    """The whole factor a box reduce() can take off before the last resample (the long
    side stays at least ``long_side``), or 1 to leave it all to thumbnail(): for JPEGs,
    whose draft() decodes them at a reduced scale in the first place, for modes reduce()
    does not take, and for images under twice ``long_side``."""
    if fmt == "JPEG" or im.mode not in _REDUCIBLE_MODES:
        return 1
    return max(1, max(im.size) // long_side)


def _inflater():
    """A raw-deflate decompressor (ISA-L's: a 12 MP plot's 34 MB out of 80 KB in 17 ms
    instead of zlib's 143)."""
    return _fast_zlib().decompressobj(wbits=-15)


def _fast_inflate() -> bool:
    return _fast_zlib() is not zlib


def _decode_png_split(im: Image.Image, idat: list[memoryview]) -> bool:
    """Decode the opened, not yet loaded PNG ``im`` with the inflate on a second thread.

    True when ``im`` now holds every row, exactly as ``im.load()`` would have made it;
    False (``im`` untouched for a caller to load as usual) when the file is anything but a
    plain, whole PNG."""
    from PIL import Image

    if len(im.tile) != 1 or im.tile[0][0] != "zip":
        return False
    _name, extents, _offset, args = im.tile[0][:4]
    w, h = im.size
    bands = {"1": 1, "L": 1, "P": 1, "LA": 2, "RGB": 3, "RGBA": 4}.get(im.mode)
    if bands is None:
        return False
    total = (w * bands + 1) * h  # every row: its filter byte and its pixels
    try:
        decoder = Image._getdecoder(im.mode, "zip", args, im.decoderconfig)
    except Exception:  # noqa: BLE001 - an internal Pillow API: any change means "not here"
        return False
    im.load_prepare()
    decoder.setimage(im.im, extents)
    chunks: queue.Queue = queue.Queue(maxsize=8)  # bounds the memory ahead of the decoder
    stop = threading.Event()
    worker = threading.Thread(
        target=_inflate_to_stored,
        args=(idat, total, chunks, stop),
        daemon=True,
        name="png-inflate",
    )
    worker.start()
    complete = False
    pending = b""
    try:
        while (chunk := chunks.get()) is not None:
            pending = pending + chunk if pending else chunk
            consumed, err = decoder.decode(pending)  # Pillow releases the GIL here
            if consumed < 0:
                complete = err >= 0
                break
            pending = pending[consumed:]
    finally:
        stop.set()
        while worker.is_alive() or not chunks.empty():  # unblock a put on a full queue
            try:
                chunks.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()
        decoder.cleanup()
    if complete:
        im.tile = []  # loaded: load() returns at once
    return complete


def _spare_core() -> bool:
    """Whether a second core is likely idle: the split decode saves wall time only then,
    and costs ~15 % more CPU (the re-framing, and two threads sharing the cache)."""
    counter = getattr(os, "process_cpu_count", None) or os.cpu_count  # 3.13+: the affinity
    cpus = counter() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:  # not on this platform (Windows): assume the desktop is mostly idle
        busy = 0.0
    return cpus > 1 and busy <= cpus - 1


def _load_png_split(im: Image.Image, raw: bytes) -> Image.Image:
    """``im`` loaded by :func:`_decode_png_split` when the file allows it, else ``im`` as it
    was (Pillow loads it on first use). An eXIf chunk after the image data is kept, as
    Pillow's own load would have read it."""
    from PIL import Image

    parts = _png_parts(raw)
    if parts is None:
        return im
    idat, exif = parts
    if _decode_png_split(im, idat):
        if exif is not None and "exif" not in im.info:
            im.info["exif"] = b"Exif\x00\x00" + exif
        return im
    return Image.open(io.BytesIO(raw))  # a fresh image for Pillow's own decoder


def _prepare_raster(
    raw: bytes, name: str, long_side: int
) -> tuple[Image.Image, tuple[int, int], str, list[str]]:
    from PIL import Image, UnidentifiedImageError

    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) between MAX_IMAGE_PIXELS and twice that; we refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(raw))
            fmt = (im.format or "").upper()
            if fmt not in RASTER_FORMATS:
                raise UnsupportedFigureError(
                    f"{name} is a {fmt or 'unknown'} image, which kanoa desktop does not read.",
                    "Export it as PNG, JPEG or SVG and try again.",
                )
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise DecompressionBombError(
                    f"{name} declares {w}×{h} pixels ({w * h / 1e6:.0f} MP), more than the "
                    f"{MAX_PIXELS / 1e6:.0f} MP limit; it may be a decompression bomb.",
                    "If it is a genuine image, downscale it in an image editor first.",
                )
            if getattr(im, "n_frames", 1) > 1:
                notes.append(f"{im.n_frames} frames; the first frame was sent.")
                im.seek(0)
            elif fmt == "PNG":
                # With ISA-L's inflate the split decode costs less CPU than Pillow's own
                # (inflate 17 ms instead of 143 on a 12 MP plot), so it pays on a busy
                # machine too; with zlib's only when a second core is free.
                if w * h >= SPLIT_PNG_MIN_PIXELS and (_fast_inflate() or _spare_core()):
                    im = _load_png_split(im, raw)
                # getexif() loads a PNG (an eXIf chunk may follow the pixels): load it here,
                # where a damaged stream is an error, not a "damaged EXIF" note.
                im.load()
            orientation = 1
            try:
                orientation = int(im.getexif().get(0x0112, 1))
            except Exception:  # noqa: BLE001 - damaged EXIF must not block an otherwise fine image
                notes.append("The EXIF data is damaged and was ignored.")
            # thumbnail() draws on JPEG DCT scaling (draft) and a reducing gap: a box reduce()
            # by the largest whole factor, then LANCZOS over the last 1-2x. A gap of 3 left a
            # 12 MP PNG bound for 1024 px to LANCZOS over all 12 MP, costing more than
            # decoding it; a box average before a short LANCZOS looks the same on plots and
            # photos at a fifth of the time.
            # Its box is square, so applying the orientation afterwards changes nothing.
            k = _box_factor(im, fmt, long_side)
            if k > 1:
                # The same box reduce() by the whole factor, then HAMMING over the last
                # 1-2x: after the box average it looks like LANCZOS on plots and photos,
                # at under half its time (12 MP plot: 40 -> 18 ms; issue 18).
                im = im.reduce(k)
                if max(im.size) > long_side:
                    im = im.resize(_fit(im.size, long_side), Image.Resampling.HAMMING)
            else:
                im.thumbnail((long_side, long_side), Image.Resampling.LANCZOS, reducing_gap=1.0)
            im.load()
    except FigureError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecompressionBombError(
            f"{name} is too large to decode safely; it may be a decompression bomb.",
            "If it is a genuine image, downscale it in an image editor first.",
        ) from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError(
            f"{name} is not an image kanoa desktop can read.",
            "Drop a PNG, JPEG, GIF, BMP, TIFF, WebP or SVG file.",
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, ZeroDivisionError) as exc:
        # Pillow reports truncation and bad chunks as OSError/SyntaxError (PNG) and others.
        raise CorruptFigureError(
            f"{name} is damaged or truncated and could not be decoded ({exc}).",
            "Re-export or re-download the image and try again.",
        ) from exc
    for op in _ORIENTATION_OPS.get(orientation, ()):
        im = im.transpose(Image.Transpose[op])
    if orientation in (5, 6, 7, 8):
        w, h = h, w  # report the original size as the user sees it, upright
    return im, (w, h), fmt, notes


# --------------------------------------------------------------------------- entry point


def _read_source(source: Path | str | bytes, name: str | None) -> tuple[bytes, str, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), name or "The pasted image", ""
    path = Path(source)
    raw = read_chosen(
        path,
        "an image",
        FigureNotFoundError,
        limit=MAX_FILE_BYTES,
        too_large=FigureTooLargeError,
        what="figures",
        hint="Export the figure at a smaller size and try again.",
    )
    return raw, name or path.name, path.suffix.lower()


def prepare_figure(
    source: Path | str | bytes,
    *,
    long_side: int = DEFAULT_LONG_SIDE,
    name: str | None = None,
    svg_rasterizer: SvgRasterizer | None = None,
) -> PreparedFigure:
    """Decode, orient, flatten, downscale and encode one figure.

    ``source`` is a path or the file's bytes (a paste or a browser drag). ``name`` is how
    messages and captions refer to it (default: the file name). Raises a FigureError
    subclass on any bad input; never returns a partial result.
    """
    if long_side < 16:
        raise ValueError("long_side must be at least 16 pixels")
    lazy.load("PIL.Image")  # first figure: no full collection mid-import (core/lazy.py)
    raw, label, suffix = _read_source(source, name)
    if not raw:
        raise EmptyFigureError(
            f"{label} is empty (0 bytes).", "The file may still be downloading; try again."
        )
    digest = hashlib.sha256(raw).hexdigest()
    kind = sniff_kind(raw) or ("svg" if suffix in (".svg", ".svgz") else None)
    if raw.startswith(b"\x1f\x8b") and suffix == ".svgz":
        kind = "svg"
    if kind == "svg":
        im, original, fmt, notes = _prepare_svg(raw, label, long_side, svg_rasterizer)
    elif kind == "table" and suffix in IMAGE_SUFFIXES:
        raise NotAnImageError(
            f"{label} is not an image: it is named {suffix} but holds text.",
            "Check the file, or rename it to what it holds.",
        )
    elif kind == "table":
        raise NotAnImageError(
            f"{label} looks like a table (CSV/TSV), not an image.",
            "Load it as a table instead.",
        )
    else:
        im, original, fmt, notes = _prepare_raster(raw, label, long_side)
    flat = _to_flat(im)
    mime, data = _encode(flat)
    return PreparedFigure(
        name=label,
        original_size=original,
        sent_size=flat.size,
        mime=mime,
        data=data,
        sha256=digest,
        source_format=fmt,
        notes=tuple(notes),
    )


def _prepare_svg(
    raw: bytes, label: str, long_side: int, rasterizer: SvgRasterizer | None
) -> tuple[Image.Image, tuple[int, int], str, list[str]]:
    if raw.startswith(b"\x1f\x8b"):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
                raw = gz.read(MAX_SVG_BYTES + 1)
        except (OSError, EOFError) as exc:
            raise CorruptFigureError(
                f"{label} is a damaged compressed SVG ({exc}).", "Re-export it and try again."
            ) from exc
    if len(raw) > MAX_SVG_BYTES:
        raise FigureTooLargeError(
            f"{label} is an SVG over {MAX_SVG_BYTES // 2**20} MB.",
            "Simplify it or export it as PNG.",
        )
    try:
        w, h = svg_intrinsic_size(raw)
        # Nothing outside the file may be read into the figure sent to the server.
        raw, svg_notes = sanitize_svg(raw)
    except CorruptFigureError as exc:
        raise CorruptFigureError(
            f"{label} is a {exc.message}.", "Re-export it and try again."
        ) from exc
    except NotAnImageError as exc:
        raise NotAnImageError(
            f"{label} is not a readable SVG ({exc.message}).", "Re-export it and try again."
        ) from exc
    if rasterizer is None:
        try:
            import resvg_py  # noqa: F401
        except ImportError as exc:
            raise UnsupportedFigureError(
                f"{label} is an SVG, and no SVG renderer is installed.",
                "Install the resvg-py package, or export the figure as PNG.",
            ) from exc
        rasterizer = resvg_rasterizer
    from PIL import Image

    try:
        png = rasterizer(raw, long_side)
        im = Image.open(io.BytesIO(png))
        im.load()
    except FigureError:
        raise
    except Exception as exc:  # noqa: BLE001 - renderer errors are opaque; report them plainly
        raise CorruptFigureError(
            f"{label} could not be rendered as SVG ({exc}).", "Re-export it and try again."
        ) from exc
    return im, (max(1, round(w)), max(1, round(h))), "SVG", svg_notes


def thumbnail_png(data: bytes, side: int) -> bytes:
    """A small PNG (long side ``side``) of an encoded figure, for pickers and reports."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.thumbnail((side, side))
        out = io.BytesIO()
        im.convert("RGB").save(out, "PNG", optimize=True)
    return out.getvalue()
