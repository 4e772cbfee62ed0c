"""One version number: kanoa_desktop.__version__, which pyproject reads and every face shows
(``--version``, Help > About, the self-test, exported reproducibility blocks, the package
names), and which CHANGELOG.md and the AppStream metainfo start with."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
import types
import xml.etree.ElementTree as ET
from pathlib import Path

from kanoa_desktop import APP_ID, __version__

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging"))
import build_deb  # noqa: E402
import build_run  # noqa: E402


def test_pyproject_takes_the_version_from_the_package_and_writes_no_number():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "kanoa_desktop.__version__"
    }
    # What pip installed from it (this venv's editable install) says the same.
    assert importlib.metadata.version("kanoa-desktop") == __version__


def test_changelog_and_metainfo_start_with_this_version_on_the_same_day():
    sections = build_deb.changelog_sections((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    newest_version, newest_date, _ = sections[0]
    release = ET.parse(ROOT / "resources" / f"{APP_ID}.metainfo.xml").getroot().find(
        "releases/release"
    )
    assert newest_version == __version__
    assert (release.get("version"), release.get("date")) == (__version__, newest_date)


def test_version_flag_prints_the_version(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "kanoa_desktop", "--version"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"kanoa-desktop {__version__}"


def test_self_test_report_and_reproducibility_block_name_the_version():
    from kanoa_desktop.core.history.export import reproducibility
    from kanoa_desktop.selftest import header

    assert f"kanoa desktop {__version__} self-test" in header()
    conv = types.SimpleNamespace(
        params={}, turns=[], model="m", endpoint="", server_kind="", profile_name="",
        figures=[], table_name="", sources=[], created=0.0,
    )  # fmt: skip
    assert dict(reproducibility(conv))["kanoa desktop"] == __version__


def test_package_file_names_carry_the_version():
    assert build_deb.deb_name("amd64") == f"kanoa-desktop_{__version__}_amd64.deb"
    assert build_run.run_name("x86_64") == f"kanoa-desktop-{__version__}-x86_64.run"


def test_debian_changelog_is_made_from_changelog_md_in_debians_format():
    text = build_deb.debian_changelog((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    lines = text.splitlines()
    assert lines[0] == f"kanoa-desktop ({__version__}) unstable; urgency=medium"
    trailer = [ln for ln in lines if ln.startswith(" -- ")]
    assert trailer and re.fullmatch(
        r" -- .+ <[^>]+>  \w{3}, \d{2} \w{3} \d{4} 00:00:00 \+0000", trailer[0]
    )
    body = [ln for ln in lines[1:] if ln and not ln.startswith(" -- ") and " (" not in ln[:20]]
    assert all(ln.startswith("  ") and len(ln) <= 80 for ln in body), body
    assert any("Debian package" in ln for ln in body)
