"""Build the one-user, single-file installer (``make installer``).

    python packaging/build_run.py [--bundle dist/kanoa-desktop] [--out dist] [--level 3]

Writes ``dist/kanoa-desktop-<version>-<arch>.run``: ``packaging/run_header.sh`` (a POSIX
shell script) followed by the bundle as an xz-compressed tar archive, with
``packaging/run_uninstall.sh`` added as ``kanoa-desktop/uninstall``. Run with ``sh``, it
installs into ``~/.local`` without root (see the header for what it does).

Why not an AppImage: an AppImage is an ELF runtime (the part that mounts the image) with a
squashfs image appended, and neither the runtime nor ``appimagetool`` can be had from the
package registries this project builds from. Every AppImage builder on PyPI and npm
(python-appimage, pyproject-appimage, appimage, @reforged/maker-appimage, electron-builder's
app-builder) downloads both from GitHub releases at build time, and Debian 12 packages
neither (only ``libappimage``, a library that reads AppImages). packaging/README.md says
more.

The archive is written by Python's tarfile (owner root, files sorted, modes as the bundle
has them) and compressed by ``xz -T0`` (all cores); Python's single-threaded ``lzma``
module is the fallback.
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import os
import platform
import shutil
import subprocess
import sys
import tarfile
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


def run_name(arch: str | None = None) -> str:
    return f"{PACKAGE}-{__version__}-{arch or platform.machine()}.run"


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def write_tar(bundle: Path, out) -> None:
    """The bundle as ``kanoa-desktop/...`` plus ``kanoa-desktop/uninstall``, streamed."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        paths = [bundle, *sorted(bundle.rglob("*"))]
        for path in paths:
            arcname = (Path(PACKAGE) / path.relative_to(bundle)).as_posix()
            tar.add(path, arcname=arcname, recursive=False, filter=_reset)
        info = _reset(tar.gettarinfo(str(UNINSTALL), arcname=f"{PACKAGE}/uninstall"))
        info.mode = 0o755
        with open(UNINSTALL, "rb") as f:
            tar.addfile(info, f)


def compress(bundle: Path, dest: Path, level: int) -> None:
    """Write the compressed payload to ``dest``."""
    xz = shutil.which("xz")
    with open(dest, "wb") as sink:
        if xz is None:
            with lzma.open(sink, "wb", preset=level) as f:
                write_tar(bundle, f)
            return
        proc = subprocess.Popen([xz, "-T0", f"-{level}", "-c"], stdin=subprocess.PIPE, stdout=sink)
        assert proc.stdin is not None
        try:
            write_tar(bundle, proc.stdin)
        finally:
            proc.stdin.close()
        if proc.wait() != 0:
            raise SystemExit(f"xz failed ({proc.returncode})")


def newest_glibc(bundle: Path) -> str:
    from build_deb import system_libraries

    _needs, glibc = system_libraries(bundle)
    return ".".join(map(str, glibc)) if glibc else "2.17"


def build(bundle: Path, out: Path, level: int, *, log=print) -> Path:
    if not (bundle / PACKAGE).is_file():
        raise SystemExit(f"{bundle / PACKAGE} is missing: run `make package` first")
    from build_deb import bundle_version

    found = bundle_version(bundle)
    if found != __version__:
        raise SystemExit(f"{bundle} is version {found!r}, the source is {__version__}: run `make package`")
    arch = platform.machine()
    out.mkdir(parents=True, exist_ok=True)
    target = out / run_name(arch)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kanoa-run-", dir=out) as tmp:
        payload = Path(tmp) / "payload.tar.xz"
        compress(bundle, payload, level)
        digest = hashlib.sha256()
        with open(payload, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        header = HEADER.read_text(encoding="utf-8")
        lines = header.count("\n")
        header = (
            header.replace("@VERSION@", __version__)
            .replace("@ARCH@", arch)
            .replace("@GLIBC@", newest_glibc(bundle))
            .replace("@PAYLOAD_LINE@", str(lines + 1))
            .replace("@PAYLOAD_SHA256@", digest.hexdigest())
        )
        assert header.count("\n") == lines and header.endswith("\n")
        partial = Path(tmp) / target.name
        with open(partial, "wb") as f:
            f.write(header.encode())
            with open(payload, "rb") as p:
                shutil.copyfileobj(p, f, 1 << 20)
        os.chmod(partial, 0o755)
        os.replace(partial, target)
    log(
        f"Built {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: "
        f"{target.stat().st_size / 1e6:.1f} MB (xz -{level}) in {time.perf_counter() - t0:.1f} s"
    )
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / PACKAGE)
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--level", type=int, default=3, help="xz preset (0-9)")
    args = parser.parse_args(argv)
    build(args.bundle.resolve(), args.out.resolve(), args.level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
