"""packaging/finish_bundle.py and the .deb's Depends, on shared libraries compiled here
(the C compiler that builds llama-server builds them; no bundle needed)."""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging"))
import build_deb  # noqa: E402
import finish_bundle  # noqa: E402

SOURCE = "int kanoa_answer(void) { return 42; }\n"


def compile_library(out: Path, *link_args: str) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler (Debian: apt-get install gcc)", pytrace=False)
    src = out.with_suffix(".c")
    src.write_text(SOURCE)
    subprocess.run([cc, "-shared", "-fPIC", "-g", "-o", str(out), str(src), *link_args],
                   check=True, capture_output=True)  # fmt: skip
    src.unlink()
    return out


@pytest.fixture
def bundle(tmp_path):
    """A bundle-shaped folder: the two executables, one library with the build machine's
    RUNPATH and debug information, one with a bundle-relative RUNPATH."""
    root = tmp_path / "kanoa-desktop"
    internal = root / "_internal"
    internal.mkdir(parents=True)
    for name in ("kanoa-desktop", "kanoa-desktop-cli"):
        shutil.copyfile(sys.executable, root / name)  # an ELF executable, never touched
        (root / name).chmod(0o755)
    compile_library(internal / "libforeign.so", "-Wl,-rpath,/root/.pyenv/versions/3.11.7/lib",
                    "-Wl,--enable-new-dtags")  # fmt: skip
    compile_library(internal / "libmine.so", "-Wl,-rpath,$ORIGIN/../lib")
    (internal / "libforeign.so").chmod(0o755)
    (internal / "data.txt").write_text("x")
    (internal / "data.txt").chmod(0o755)
    return root


def test_build_machine_runpath_goes_and_bundle_relative_one_stays(bundle):
    foreign, mine = bundle / "_internal/libforeign.so", bundle / "_internal/libmine.so"
    assert finish_bundle.search_paths(foreign) == [
        (finish_bundle.DT_RUNPATH, "/root/.pyenv/versions/3.11.7/lib")
    ]
    finish_bundle.finish(bundle, log=lambda *_: None)
    assert finish_bundle.search_paths(foreign) == []
    assert [v for _t, v in finish_bundle.search_paths(mine)] == ["$ORIGIN/../lib"]
    # The edited, stripped library still loads and works.
    assert ctypes.CDLL(str(foreign)).kanoa_answer() == 42
    assert ctypes.CDLL(str(mine)).kanoa_answer() == 42


def test_libraries_are_stripped_and_get_debians_modes(bundle):
    lib = bundle / "_internal/libforeign.so"
    before = finish_bundle.read_elf(lib)
    assert before.debug_sections and before.has_symtab
    exe_bytes = (bundle / "kanoa-desktop").read_bytes()
    counts = finish_bundle.finish(bundle, log=lambda *_: None)
    after = finish_bundle.read_elf(lib)
    assert not after.debug_sections and not after.has_symtab and after.loads_aligned
    assert counts["stripped"] == 2 and counts["bytes_after"] < counts["bytes_before"]
    # The executables carry PyInstaller's archive after the ELF image: left byte for byte.
    assert (bundle / "kanoa-desktop").read_bytes() == exe_bytes
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in bundle.rglob("*")}
    assert modes["kanoa-desktop"] == modes["kanoa-desktop-cli"] == 0o755
    assert modes["libforeign.so"] == modes["libmine.so"] == modes["data.txt"] == 0o644
    assert modes["_internal"] == 0o755


def test_a_library_whose_stripped_copy_would_be_misaligned_is_kept(bundle, monkeypatch):
    lib = bundle / "_internal/libmine.so"
    original = lib.read_bytes()
    real = finish_bundle.read_elf

    def misaligned(path):  # what `strip` makes of auditwheel's patchelf'd OpenBLAS
        elf = real(path)
        if elf is not None and "kanoa-strip-" in str(path):
            elf.loads = [(0x1000, 0x1800, 0x1000)]
        return elf

    monkeypatch.setattr(finish_bundle, "read_elf", misaligned)
    assert finish_bundle.strip_safely(lib, shutil.which("strip")) is False
    assert lib.read_bytes() == original


def test_depends_names_what_the_bundle_needs_from_the_system(bundle):
    internal = bundle / "_internal"
    compile_library(internal / "libuses_xcb.so", "-Wl,--no-as-needed",
                    "/usr/lib/x86_64-linux-gnu/libxcb.so.1")  # fmt: skip
    theme = internal / "PySide6/Qt/plugins/platformthemes"
    theme.mkdir(parents=True)
    # An optional plugin's own needs are not the package's (Qt skips such a plugin).
    compile_library(theme / "libqgtk3.so", "-Wl,--no-as-needed",
                    "/usr/lib/x86_64-linux-gnu/libxcb-shm.so.0")  # fmt: skip
    needs, glibc = build_deb.system_libraries(bundle)
    assert "libxcb.so.1" in needs and "libxcb-shm.so.0" not in needs
    assert "libforeign.so" not in needs  # carried by the bundle
    deps = build_deb.depends(bundle)
    assert deps[0].startswith("libc6 (>= 2.")
    assert "libxcb1" in deps and "libxcb-shm0" not in deps
    # The libraries the window checks for before Qt starts are always there.
    from kanoa_desktop.ui.app import XCB_APT_PACKAGES

    assert set(XCB_APT_PACKAGES) <= set(deps)
    assert glibc >= (2, 2)


def test_installed_size_counts_kibibytes(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 1025)
    (tmp_path / "d").mkdir()
    assert build_deb.installed_size_kib(tmp_path) == 2 + 1
    os.symlink("a", tmp_path / "link")
    assert build_deb.installed_size_kib(tmp_path) == 4
