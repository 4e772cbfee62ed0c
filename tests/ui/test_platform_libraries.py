"""The display check names every system library Qt's platform plugin lacks, before Qt loads.

The plugins here are real ELF files built with the C compiler and linked against a library
that is then deleted, so ``ldd`` really reports it "not found".
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kanoa_desktop.ui.app import (
    XCB_APT_PACKAGES,
    apt_install_line,
    debian_package,
    missing_libraries,
    platform_library_problem,
    qt_plugins_dir,
)

ROOT = Path(__file__).resolve().parents[2]
GONE = "libkanoa-test-gone.so.4"


def _cc() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("a C compiler is needed to build test plugins (make test builds llama.cpp)")
    return cc


def _plugin(folder: Path, name: str, *, links_missing: bool) -> Path:
    """A shared library at plugins/platforms/<name>, optionally linked against a library
    that no longer exists."""
    platforms = folder / "plugins" / "platforms"
    platforms.mkdir(parents=True, exist_ok=True)
    src = folder / "x.c"
    src.write_text("int kanoa_x(void) { return 1; }\n")
    args = [_cc(), "-shared", "-fPIC", "-o", str(platforms / name), str(src)]
    if links_missing:
        stub = folder / GONE
        subprocess.run(
            [_cc(), "-shared", "-fPIC", f"-Wl,-soname,{GONE}", "-o", str(stub), str(src)],
            check=True,
        )
        args += ["-Wl,--no-as-needed", str(stub)]
    subprocess.run(args, check=True)
    if links_missing:
        (folder / GONE).unlink()
    return platforms / name


def test_a_library_the_xcb_plugin_cannot_load_is_named_with_one_apt_line(tmp_path):
    plugin = _plugin(tmp_path, "libqxcb.so", links_missing=True)
    assert missing_libraries(plugin) == [GONE]
    problem = platform_library_problem({"DISPLAY": ":0"}, "linux", tmp_path / "plugins")
    assert problem is not None
    assert "X11 (xcb)" in problem and GONE in problem
    assert "sudo apt install libkanoa-test-gone4" in problem
    assert problem.count("apt install") == 1


def test_nothing_is_reported_when_the_plugin_loads(tmp_path):
    _plugin(tmp_path, "libqxcb.so", links_missing=False)
    assert platform_library_problem({"DISPLAY": ":0"}, "linux", tmp_path / "plugins") is None


def test_wayland_session_falls_back_to_xcb_and_names_both_when_neither_loads(tmp_path):
    _plugin(tmp_path, "libqwayland.so", links_missing=True)
    _plugin(tmp_path, "libqxcb.so", links_missing=False)
    both = {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}
    plugins = tmp_path / "plugins"
    assert platform_library_problem(both, "linux", plugins) is None  # XWayland works
    only_wayland = platform_library_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux", plugins)
    assert only_wayland is not None and "Wayland" in only_wayland and GONE in only_wayland


def test_headless_platforms_and_other_systems_are_not_checked(tmp_path):
    _plugin(tmp_path, "libqxcb.so", links_missing=True)
    plugins = tmp_path / "plugins"
    assert platform_library_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux", plugins) is None
    assert platform_library_problem({"DISPLAY": ":0"}, "darwin", plugins) is None


def test_debian_package_names():
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxcb-keysyms.so.1") == "libxcb-keysyms1"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libfoo.so.2") == "libfoo2"
    assert debian_package("libbar2.so.0") == "libbar2-0"


def test_readme_gives_the_install_line_for_the_xcb_plugin():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert apt_install_line(XCB_APT_PACKAGES) in readme


def test_make_test_installed_every_library_the_real_xcb_plugin_links():
    # The Xvfb test needs the real xcb plugin; `make test` installs what it links.
    plugins = qt_plugins_dir()
    assert plugins is not None
    assert missing_libraries(plugins / "platforms" / "libqxcb.so") == []
