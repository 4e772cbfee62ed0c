"""Render the application icon from its SVG into every size the desktops ask for.

Run after editing ``resources/kanoa-desktop.svg``::

    .venv/bin/python packaging/render_icons.py

Writes ``resources/icons/<N>x<N>/io.github.kanoa.Desktop.png`` for the hicolor sizes,
``resources/kanoa-desktop.ico`` (Windows, PyInstaller ``icon=``), ``resources/kanoa-desktop.icns``
(macOS) and copies the SVG to ``kanoa_desktop/resources/`` (package data: the window icon of
a pip-installed app). ``tests/packaging/test_icons.py`` fails when any of them is stale.
Rendering uses resvg (a self-contained wheel), so the output is the same on every machine.
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import resvg_py
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
APP_ID = "io.github.kanoa.Desktop"
SVG = ROOT / "resources" / "kanoa-desktop.svg"
ICON_DIR = ROOT / "resources" / "icons"
PACKAGE_SVG = ROOT / "kanoa_desktop" / "resources" / "kanoa-desktop.svg"
ICO = ROOT / "resources" / "kanoa-desktop.ico"
ICNS = ROOT / "resources" / "kanoa-desktop.icns"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)


def render(size: int, svg: Path = SVG) -> bytes:
    """The icon as PNG bytes, ``size`` × ``size`` pixels."""
    return bytes(resvg_py.svg_to_bytes(svg_path=str(svg), width=size, height=size))


def png_path(size: int) -> Path:
    return ICON_DIR / f"{size}x{size}" / f"{APP_ID}.png"


def main() -> int:
    images: dict[int, Image.Image] = {}
    for size in SIZES:
        data = render(size)
        out = png_path(size)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        images[size] = Image.open(io.BytesIO(data)).convert("RGBA")
        print(f"wrote {out.relative_to(ROOT)}")
    # Each ICO/ICNS size from its own render, not a downscale of the largest: small sizes
    # stay as the hicolor PNGs.
    images[256].save(
        ICO,
        format="ICO",
        sizes=[(s, s) for s in ICO_SIZES],
        append_images=[images[s] for s in ICO_SIZES if s != 256],
    )
    print(f"wrote {ICO.relative_to(ROOT)}")
    images[512].save(ICNS, format="ICNS", append_images=[images[s] for s in (16, 32, 64, 128, 256)])
    print(f"wrote {ICNS.relative_to(ROOT)}")
    PACKAGE_SVG.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SVG, PACKAGE_SVG)
    print(f"wrote {PACKAGE_SVG.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
