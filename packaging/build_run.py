"""Build the one-user, single-file installer (``make installer``) from the .deb.

    python packaging/build_run.py [--deb dist/kanoa-desktop_<version>_<arch>.deb] [--out dist]

Writes ``dist/kanoa-desktop-<version>-<arch>.run``: ``packaging/run_header.sh`` (a POSIX
shell script, with ``packaging/run_uninstall.sh`` inside it) followed by the .deb's own data
archive (``data.tar.xz``, byte for byte). So the .run holds exactly the files the .deb
installs, and CI compresses the 300 MB bundle once, not twice (xz at the .deb's level takes
a minute or more of both cores). Run with ``sh``, it installs the bundle into ``~/.local``
without root; see the header for what it does.

Why not an AppImage: an AppImage is an ELF runtime (the part that mounts the image) with a
squashfs image appended, and neither the runtime nor ``appimagetool`` can be had from the
package registries this project builds from. Every AppImage builder on PyPI and npm
(python-appimage, pyproject-appimage, appimage, @reforged/maker-appimage, electron-builder's
app-builder) downloads both from GitHub releases at build time, and Debian 12 packages
neither (only ``libappimage``, a library that reads AppImages). packaging/README.md says
more.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "packaging"))

from kanoa_desktop import __version__  # noqa: E402

PACKAGE = "kanoa-desktop"
HEADER = ROOT / "packaging" / "run_header.sh"
UNINSTALL = ROOT / "packaging" / "run_uninstall.sh"
# data.tar's compressor -> (the command that decompresses, its Debian package)
DECOMPRESSORS = {".xz": ("xz", "xz-utils"), ".gz": ("gzip", "gzip")}


def run_name(arch: str | None = None) -> str:
    return f"{PACKAGE}-{__version__}-{arch or platform.machine()}.run"


def ar_members(deb: Path) -> dict[str, tuple[int, int]]:
    """The members of a .deb (an ``ar`` archive): name -> (offset, size)."""
    members = {}
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise SystemExit(f"{deb} is not a Debian package (no ar header)")
        while header := f.read(60):
            if len(header) < 60 or header[58:60] != b"`\n":
                raise SystemExit(f"{deb}: damaged ar member header")
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            members[name] = (f.tell(), size)
            f.seek(size + (size % 2), os.SEEK_CUR)
    return members


def newest_glibc(deb: Path) -> str:
    """The libc6 version the .deb depends on (the bundle's newest GLIBC symbol)."""
    proc = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    for dep in proc.stdout.split(","):
        name, _, version = dep.strip().partition(" ")
        if name == "libc6" and version.startswith("(>="):
            return version.strip("()>= ")
    return "2.17"


def build(deb: Path, out: Path, *, log=print) -> Path:
    if not deb.is_file():
        raise SystemExit(f"{deb} is missing: run `make deb` first")
    members = ar_members(deb)
    data = next((m for m in members if m.startswith("data.tar")), None)
    suffix = Path(data).suffix if data else ""
    if suffix not in DECOMPRESSORS:
        raise SystemExit(f"{deb}: data archive {data!r} is not xz or gzip")
    compressor, compressor_package = DECOMPRESSORS[suffix]
    arch = platform.machine()
    out.mkdir(parents=True, exist_ok=True)
    target = out / run_name(arch)
    t0 = time.perf_counter()
    offset, size = members[data]
    digest = hashlib.sha256()
    with open(deb, "rb") as f:
        f.seek(offset)
        left = size
        while left:
            block = f.read(min(left, 1 << 20))
            digest.update(block)
            left -= len(block)
    uninstall = UNINSTALL.read_text(encoding="utf-8")
    header = (
        HEADER.read_text(encoding="utf-8")
        .replace("@VERSION@", __version__)
        .replace("@ARCH@", arch)
        .replace("@GLIBC@", newest_glibc(deb))
        .replace("@COMPRESSOR_PACKAGE@", compressor_package)
        .replace("@COMPRESSOR@", compressor)
        .replace("@PAYLOAD_SHA256@", digest.hexdigest())
        .replace("@UNINSTALL@", uninstall if uninstall.endswith("\n") else uninstall + "\n")
    )
    header = header.replace("@PAYLOAD_LINE@", str(header.count("\n") + 1))
    assert header.endswith("\n") and not re.search(r"@[A-Z_]+@", header), "a placeholder is left"
    with tempfile.TemporaryDirectory(prefix="kanoa-run-", dir=out) as tmp:
        partial = Path(tmp) / target.name
        with open(partial, "wb") as dst, open(deb, "rb") as src:
            dst.write(header.encode())
            src.seek(offset)
            left = size
            while left:
                block = src.read(min(left, 1 << 20))
                dst.write(block)
                left -= len(block)
        os.chmod(partial, 0o755)
        os.replace(partial, target)
    log(
        f"Built {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: "
        f"{target.stat().st_size / 1e6:.1f} MB (the .deb's {data}) in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return target


def default_deb() -> Path:
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    return ROOT / "dist" / f"{PACKAGE}_{__version__}_{arch}.deb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deb", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    if shutil.which("dpkg-deb") is None:
        raise SystemExit("dpkg-deb is missing (Debian's dpkg package)")
    build((args.deb or default_deb()).resolve(), args.out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
