"""`make install-desktop` puts a working launcher, icons and metainfo into XDG_DATA_HOME."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kanoa_desktop import APP_ID
from tests.packaging.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging"))
import install_desktop  # noqa: E402

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def make(target: str, data_home: Path) -> subprocess.CompletedProcess:
    venv_bin = Path(sys.executable).parent
    env = dict(os.environ, XDG_DATA_HOME=str(data_home))
    return subprocess.run(
        ["make", "--no-print-directory", "-f", "packaging/Makefile.inc", target, f"BIN={venv_bin}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def installed(tmp_path):
    for tool in ("update-desktop-database", "gtk-update-icon-cache", "update-mime-database"):
        require_tool(tool)
    home = tmp_path / "share"
    proc = make("install-desktop", home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return home


def test_launcher_runs_the_venvs_kanoa_desktop(installed):
    desktop = installed / "applications" / f"{APP_ID}.desktop"
    exe = str(Path(sys.executable).parent.absolute() / "kanoa-desktop")
    assert entry(desktop)["Exec"] == f"{exe} %F"
    assert entry(desktop)["TryExec"] == exe


def test_installed_launcher_is_valid(installed):
    tool = require_tool("desktop-file-validate")
    desktop = installed / "applications" / f"{APP_ID}.desktop"
    proc = subprocess.run([tool, str(desktop)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_icons_and_metainfo_land_in_the_hicolor_theme_and_metainfo_dirs(installed):
    hicolor = installed / "icons" / "hicolor"
    for size in SIZES:
        assert (hicolor / f"{size}x{size}" / "apps" / f"{APP_ID}.png").is_file()
    assert (hicolor / "scalable" / "apps" / f"{APP_ID}.svg").is_file()
    assert (installed / "metainfo" / f"{APP_ID}.metainfo.xml").is_file()
    assert (hicolor / "icon-theme.cache").is_file()  # gtk-update-icon-cache ran


def test_open_with_is_registered_for_figures_and_tables(installed):
    # update-desktop-database wrote the MIME cache file managers read for "Open with".
    cache = (installed / "applications" / "mimeinfo.cache").read_text()
    for mime in ("image/png", "image/svg+xml", "text/csv", "text/tab-separated-values",
                 "application/pdf", "application/vnd.apache.parquet", "application/x-ipynb+json"):  # fmt: skip
        line = next(x for x in cache.splitlines() if x.startswith(mime + "="))
        assert f"{APP_ID}.desktop" in line


def test_parquet_files_get_their_mime_type(installed):
    # Debian 12's shared-mime-info has no Parquet type: ours is in the user's database, with
    # the glob and the PAR1 magic a file manager matches a .parquet file by.
    mime = installed / "mime"
    assert (mime / "application" / "vnd.apache.parquet.xml").is_file()
    assert "application/vnd.apache.parquet:*.parquet" in (mime / "globs2").read_text()
    assert "application/vnd.apache.parquet" in (mime / "magic").read_bytes().decode("latin-1")


def test_uninstall_removes_every_installed_file(installed):
    planned = install_desktop.planned_files(installed)
    assert all(p.exists() for p in planned)
    proc = make("uninstall-desktop", installed)
    assert proc.returncode == 0, proc.stderr
    assert not any(p.exists() for p in planned)
    # No cache left names the app: no launcher, icon or file type is offered any more.
    left = [p for p in installed.rglob("*") if p.is_file() and APP_ID.encode() in p.read_bytes()]
    assert left == []
    assert not (installed / "mime").exists()  # the database held only our type
    assert not (installed / "icons" / "hicolor" / "48x48").exists()  # no empty folders left


def test_uninstall_keeps_a_mime_database_that_holds_other_types(installed):
    other = installed / "mime" / "packages" / "org.example.Other.xml"
    other.write_text(
        '<?xml version="1.0"?><mime-info xmlns="http://www.freedesktop.org/standards/'
        'shared-mime-info"><mime-type type="application/x-example"><glob pattern="*.exa"/>'
        "</mime-type></mime-info>"
    )
    assert make("uninstall-desktop", installed).returncode == 0
    assert other.is_file()
    assert "application/x-example" in (installed / "mime" / "globs2").read_text()
    assert "vnd.apache.parquet" not in (installed / "mime" / "globs2").read_text()


def test_an_executable_path_with_spaces_is_quoted_and_still_valid(tmp_path):
    tool = require_tool("desktop-file-validate")
    exe = tmp_path / "My Apps" / "kanoa $desktop" / "kanoa-desktop"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    home = tmp_path / "share"
    install_desktop.install(str(exe), home, log=lambda *_: None)
    desktop = home / "applications" / f"{APP_ID}.desktop"
    assert entry(desktop)["Exec"] == f'"{exe.parent.parent}/kanoa \\\\$desktop/kanoa-desktop" %F'
    proc = subprocess.run([tool, str(desktop)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_relative_xdg_data_home_is_ignored_as_the_spec_says(tmp_path):
    assert install_desktop.data_home({"XDG_DATA_HOME": "rel/share"}) == (
        Path.home() / ".local" / "share"
    )
    assert install_desktop.data_home({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path
