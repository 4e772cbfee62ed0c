"""The .desktop file, AppStream metainfo and icons: valid, consistent with each other and
with what the app tells Qt, and the PNGs are the current rendering of the SVG."""

from __future__ import annotations

import configparser
import io
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageChops

from kanoa_desktop import APP_ID
from tests.packaging.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
RES = ROOT / "resources"
DESKTOP = RES / f"{APP_ID}.desktop"
METAINFO = RES / f"{APP_ID}.metainfo.xml"
SVG = RES / "kanoa-desktop.svg"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
REQUIRED_MIME = {
    "image/png",
    "image/jpeg",
    "image/tiff",
    "image/webp",
    "image/svg+xml",
    "text/csv",
    "text/tab-separated-values",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",  # .xlsx
    "application/vnd.apache.parquet",  # resources/io.github.kanoa.Desktop.mime.xml
    "application/pdf",
    "application/x-ipynb+json",
}

sys.path.insert(0, str(ROOT / "packaging"))
import render_icons  # noqa: E402


def desktop_entry(path: Path = DESKTOP) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive in desktop entries
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_desktop_file_passes_desktop_file_validate():
    tool = require_tool("desktop-file-validate")
    proc = subprocess.run([tool, str(DESKTOP)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "error:" not in proc.stdout


def test_desktop_file_launches_the_gui_with_files_and_names_the_icon():
    entry = desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Exec"] == "kanoa-desktop %F"
    assert entry["Terminal"] == "false"
    assert entry["Icon"] == APP_ID
    categories = entry["Categories"].rstrip(";").split(";")
    assert {"Science", "Education"} <= set(categories)


def test_desktop_file_opens_figures_and_tables():
    mime = set(desktop_entry()["MimeType"].rstrip(";").split(";"))
    assert REQUIRED_MIME <= mime


def test_desktop_file_name_and_wm_class_match_what_the_app_tells_qt(qapp):
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QGuiApplication

    from kanoa_desktop.ui.app import create_application

    app = create_application([])
    # Wayland matches the window to DESKTOP by desktopFileName; X11 by WM_CLASS, whose
    # class part Qt's xcb plugin takes from applicationName.
    assert QGuiApplication.desktopFileName() + ".desktop" == DESKTOP.name
    assert desktop_entry()["StartupWMClass"] == QCoreApplication.applicationName()
    assert not app.windowIcon().isNull()


def test_metainfo_passes_appstreamcli_validate():
    tool = require_tool("appstreamcli")
    proc = subprocess.run(
        [tool, "validate", "--no-net", str(METAINFO)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_metainfo_agrees_with_the_desktop_file():
    root = ET.parse(METAINFO).getroot()
    assert root.get("type") == "desktop-application"
    assert root.findtext("id") == APP_ID
    assert root.findtext("launchable") == DESKTOP.name
    assert root.findtext("name") == desktop_entry()["Name"]
    provided = {m.text for m in root.iterfind("provides/mediatype")}
    assert provided == set(desktop_entry()["MimeType"].rstrip(";").split(";"))
    from kanoa_desktop import __version__

    assert root.find("releases/release").get("version") == __version__


@pytest.mark.parametrize("size", SIZES)
def test_png_icon_is_the_current_rendering_of_the_svg(size):
    png = render_icons.png_path(size)
    with Image.open(png) as im:
        assert im.size == (size, size)
        fresh = Image.open(io.BytesIO(render_icons.render(size))).convert("RGBA")
        diff = ImageChops.difference(im.convert("RGBA"), fresh).getbbox()
    assert diff is None, f"{png} is stale: run `make icons` (packaging/render_icons.py)"


def test_icon_reads_at_16_px():
    # The motif must survive the smallest size: the plot's amber wave and white axes are
    # both still there, on the blue tile.
    with Image.open(render_icons.png_path(16)) as im:
        pixels = np.asarray(im.convert("RGBA")).reshape(-1, 4)
    colors = {tuple(int(v) for v in px[:3]) for px in pixels if px[3] == 255}
    amber = [c for c in colors if c[0] > 200 and 150 < c[1] < 230 and c[2] < 120]
    white = [c for c in colors if min(c) > 230]
    blue = [c for c in colors if c[2] > 120 and c[0] < 80]
    assert amber and white and blue


def test_package_copy_of_the_icon_is_the_same_svg():
    assert (ROOT / "kanoa_desktop" / "resources" / "kanoa-desktop.svg").read_bytes() == (
        SVG.read_bytes()
    )


def test_windows_and_macos_icons_hold_every_size():
    with Image.open(render_icons.ICO) as ico:
        assert {(s, s) for s in render_icons.ICO_SIZES} <= set(ico.info["sizes"])
    with Image.open(render_icons.ICNS) as icns:
        assert (512, 512) in {size[:2] for size in icns.info["sizes"]}
