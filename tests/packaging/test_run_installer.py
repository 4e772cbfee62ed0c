"""The one-user .run installer (packaging/build_run.py + run_header.sh), end to end on a
small .deb built here with dpkg-deb: its "bundle" is a shell script that answers
``--version`` and runs the real install_desktop.py for ``--desktop-integration``. The
real 300 MB bundle goes through the same steps in ``make package-test``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kanoa_desktop import APP_ID, __version__
from tests.packaging.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging"))
import build_run  # noqa: E402

FAKE_APP = f"""#!/bin/sh
case "$1" in
    --version) echo "kanoa-desktop {__version__}" ;;
    --desktop-integration)
        if [ "$2" = install ]; then
            exec {sys.executable} {ROOT}/packaging/install_desktop.py --exec "$0"
        else
            exec {sys.executable} {ROOT}/packaging/install_desktop.py --uninstall
        fi ;;
    *) exit 3 ;;
esac
"""


@pytest.fixture
def run_file(tmp_path):
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        pytest.fail("dpkg-deb is missing (Debian's dpkg)", pytrace=False)
    root = tmp_path / "root"
    app = root / "usr/lib/kanoa-desktop/kanoa-desktop"
    app.parent.mkdir(parents=True)
    app.write_text(FAKE_APP)
    app.chmod(0o755)
    (app.parent / "_internal").mkdir()
    (app.parent / "_internal" / "data.txt").write_text("bundle data\n")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(
        f"Package: kanoa-desktop\nVersion: {__version__}\nArchitecture: all\n"
        "Maintainer: t <t@example.org>\nDepends: libc6 (>= 2.36)\nDescription: t\n t\n"
    )
    deb = tmp_path / "test.deb"
    subprocess.run([dpkg_deb, "--root-owner-group", "-Zxz", "-z0", "--build", str(root),
                    str(deb)], check=True, capture_output=True)  # fmt: skip
    return build_run.build(deb, tmp_path / "dist", log=lambda *_: None)


def user_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env["HOME"] = str(home)
    return env


def sh(run_file: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(run_file), *args], env=user_env(home), cwd=home,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_installs_into_local_with_a_launcher_and_uninstalls_leaving_the_users_data(
    run_file, tmp_path
):
    for tool in ("update-desktop-database", "update-mime-database"):
        require_tool(tool)
    home = tmp_path / "home"
    home.mkdir()
    data = home / ".local/share/kanoa-desktop/history.sqlite3"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"SQLite format 3\0")
    proc = sh(run_file, home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lib = home / ".local/lib/kanoa-desktop"
    assert (lib / "_internal/data.txt").read_text() == "bundle data\n"
    assert os.readlink(home / ".local/bin/kanoa-desktop") == str(lib / "kanoa-desktop")
    desktop = home / ".local/share/applications" / f"{APP_ID}.desktop"
    assert f"Exec={lib}/kanoa-desktop %F" in desktop.read_text()
    cache = (home / ".local/share/applications/mimeinfo.cache").read_text()
    assert any(line.startswith("application/vnd.apache.parquet=") for line in cache.splitlines())

    again = sh(run_file, home)  # installing again replaces the installed version
    assert again.returncode == 0 and "Replacing" in again.stdout

    proc = subprocess.run([str(lib / "uninstall")], env=user_env(home), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    left = [p for p in home.rglob("*") if p.is_file()]
    assert data in left and data.read_bytes() == b"SQLite format 3\0"
    assert not lib.exists() and not (home / ".local/bin/kanoa-desktop").is_symlink()
    named = [p for p in left if APP_ID.encode() in p.read_bytes() or APP_ID in p.name]
    assert named == []


def test_a_damaged_download_changes_nothing(run_file, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    damaged = tmp_path / "damaged.run"
    data = bytearray(run_file.read_bytes())
    data[-100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    proc = sh(damaged, home)
    assert proc.returncode == 1
    assert "damaged or incomplete" in proc.stderr
    assert list(home.iterdir()) == []


def test_extract_only_unpacks_the_bundle(run_file, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    proc = sh(run_file, home, "--extract", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out/kanoa-desktop/_internal/data.txt").is_file()
    assert not (home / ".local").exists()


def test_help_and_a_wrong_option(run_file, tmp_path):
    assert "--prefix DIR" in sh(run_file, tmp_path, "--help").stdout
    proc = sh(run_file, tmp_path, "--frobnicate")
    assert proc.returncode == 1 and "unknown option --frobnicate" in proc.stderr
