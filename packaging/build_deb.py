"""Build the Debian package from the finished one-folder bundle (``make deb``).

    python packaging/build_deb.py [--bundle dist/kanoa-desktop] [--out dist]
                                  [--compression xz] [--level 3]

Writes ``dist/kanoa-desktop_<version>_<arch>.deb`` with ``dpkg-deb`` (no debhelper, no
network), laid out as Debian policy wants an application's private files:

- ``/usr/lib/kanoa-desktop/``: the bundle (lintian rejects ``/opt``);
- ``/usr/bin/kanoa-desktop``: a relative symbolic link to the bundle's executable (the
  PyInstaller bootloader finds its ``_internal`` folder through the link);
- ``/usr/share/applications/io.github.kanoa.Desktop.desktop`` (Open With for figures,
  tables, PDF and notebooks), ``/usr/share/icons/hicolor/*/apps/``,
  ``/usr/share/metainfo/`` (AppStream), ``/usr/share/mime/packages/`` (Parquet);
- ``/usr/share/doc/kanoa-desktop/{copyright,changelog.gz}`` (changelog.gz: CHANGELOG.md in
  Debian's changelog format), ``/usr/share/man/man1/kanoa-desktop.1.gz`` and
  ``/usr/share/lintian/overrides/kanoa-desktop`` (each override says why).

No maintainer scripts: the desktop database, icon cache and MIME database are refreshed by
dpkg's triggers of desktop-file-utils, hicolor-icon-theme/gtk-update-icon-cache and
shared-mime-info, on install and on removal, so removal leaves no launcher, icon or MIME
association. Nothing under anyone's home is touched: history, profiles, settings and
keychain entries stay.

``Depends`` is computed from the bundle: every shared library some file of the bundle needs
and the bundle does not carry (glibc with the newest symbol version used, ``libGL``,
``libEGL``, ``libxcb``, Wayland's client libraries), plus the xcb libraries the window
checks for before Qt starts (``kanoa_desktop.ui.app.XCB_APT_PACKAGES``), so a fresh desktop
gets them from apt instead of a message. Optional Qt plugins (the GTK 3 theme, EGLFS for
kiosks) do not count: Qt skips a plugin whose libraries are missing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RES = ROOT / "resources"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "packaging"))

from finish_bundle import read_elf  # noqa: E402

from kanoa_desktop import APP_ID, __version__  # noqa: E402
from kanoa_desktop.ui.app import XCB_APT_PACKAGES, debian_package  # noqa: E402

PACKAGE = "kanoa-desktop"
MAINTAINER = "kanoa desktop developers <kanoa-desktop@users.noreply.github.com>"
HOMEPAGE = "https://pypi.org/project/kanoa/"
LIB_DIR = f"usr/lib/{PACKAGE}"
SUMMARY = "interpret scientific figures and tables with local models"
DESCRIPTION = """\
Drop a figure or load a table, pick a local model server (vLLM, llama.cpp,
Ollama or any OpenAI-compatible server) and read a streamed interpretation of
what it shows, with live tokens per second, time to first token, cost and the
server's GPU metrics.
.
Opens PNG, JPEG, TIFF, WebP and SVG figures, CSV, TSV, Excel and Parquet
tables, PDF pages and Jupyter notebooks' figures; keeps a searchable history
and exports it with reproducibility blocks. The package holds a self-contained
build (Python, Qt and every library the app uses) under /usr/lib/kanoa-desktop."""

# glibc's libraries: one package, libc6, versioned by the newest GLIBC_x.y symbol used.
GLIBC_SONAMES = {
    "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1",
    "libresolv.so.2", "libutil.so.1", "libanl.so.1", "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
}  # fmt: skip
# Plugins Qt loads only when asked for (or skips with a warning when their libraries are
# missing): their libraries are not the package's dependencies.
OPTIONAL_PARTS = (
    "plugins/platformthemes/libqgtk3.so",  # the GTK 3 theme: GNOME has GTK; elsewhere unused
    "plugins/egldeviceintegrations/",  # EGLFS: full-screen kiosks without a window system
    "plugins/platforms/libqeglfs.so",
    "plugins/platforms/libqlinuxfb.so",  # the Linux framebuffer, also for kiosks
    "libQt6EglFsKmsSupport.so",
    "libQt6EglFSDeviceIntegration.so",
)
# util-linux's libblkid and libmount (pulled in with GLib) name sensible-pager in their
# strings; Debian's lintian asks for the package that provides it (always installed).
EXTRA_DEPENDS = ("sensible-utils",)
DT_NEEDED, DT_STRTAB, DT_STRSZ = 1, 5, 10


# -- what the bundle needs from the system ------------------------------------------------


def _dynamic(path: Path) -> tuple[list[str], bytes]:
    """(NEEDED sonames, the dynamic string table) of an ELF file."""
    elf = read_elf(path)
    if elf is None or elf.dynamic is None:
        return [], b""
    data = path.read_bytes()
    off, size = elf.dynamic
    entries = []
    for i in range(size // 16):
        tag, val = struct.unpack_from("<qQ", data, off + 16 * i)
        if tag == 0:
            break
        entries.append((tag, val))
    tags = dict(entries)
    if DT_STRTAB not in tags:
        return [], b""
    base = None
    phoff = struct.unpack_from("<Q", data, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    for i in range(phnum):
        p_type, _f, p_off, p_vaddr, _pa, p_filesz, _m, _al = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize
        )
        if p_type == 1 and p_vaddr <= tags[DT_STRTAB] < p_vaddr + p_filesz:
            base = tags[DT_STRTAB] - p_vaddr + p_off
    if base is None:
        return [], b""
    strtab = data[base : base + tags.get(DT_STRSZ, 0)]
    needed = [strtab[v : strtab.index(b"\0", v)].decode() for t, v in entries if t == DT_NEEDED]
    return needed, strtab


def system_libraries(bundle: Path) -> tuple[dict[str, list[str]], tuple[int, ...] | None]:
    """Sonames some required file of ``bundle`` needs and the bundle lacks (soname -> the
    files needing it), and the newest GLIBC symbol version any file uses."""
    carried = {p.name for p in bundle.rglob("*") if ".so" in p.name}
    needs: dict[str, list[str]] = {}
    glibc: tuple[int, ...] | None = None
    for path in sorted(bundle.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(bundle).as_posix()
        if any(part in rel for part in OPTIONAL_PARTS):
            continue
        needed, strtab = _dynamic(path)
        for soname in needed:
            if soname not in carried:
                needs.setdefault(soname, []).append(rel)
        for m in re.finditer(rb"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?\0", strtab):
            version = tuple(int(x) for x in m.groups() if x is not None)
            glibc = max(glibc or version, version)
    return needs, glibc


def depends(bundle: Path) -> list[str]:
    """The Depends field's entries, sorted, each once."""
    needs, glibc = system_libraries(bundle)
    packages = {debian_package(s) for s in needs if s not in GLIBC_SONAMES}
    packages |= set(XCB_APT_PACKAGES) | set(EXTRA_DEPENDS)
    libc = "libc6" + (f" (>= {'.'.join(map(str, glibc))})" if glibc else "")
    return [libc, *sorted(packages)]


# -- the files around the bundle ------------------------------------------------------------


def changelog_sections(text: str) -> list[tuple[str, str, list[str]]]:
    """CHANGELOG.md's ``## [version] - YYYY-MM-DD`` sections: (version, date, lines)."""
    sections: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        m = re.match(r"^## \[([^\]]+)\] - (\d{4}-\d{2}-\d{2})\s*$", line)
        if m:
            sections.append((m.group(1), m.group(2), []))
        elif line.startswith("## "):
            sections.append(("", "", []))  # e.g. "## [Unreleased]": not packaged
        elif sections:
            sections[-1][2].append(line)
    return [s for s in sections if s[0]]


def debian_changelog(markdown: str) -> str:
    """CHANGELOG.md rewritten in Debian's changelog format (lintian parses it)."""
    out = []
    for version, date, lines in changelog_sections(markdown):
        items: list[str] = []
        for line in lines:
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("### "):
                items.append(f"[{stripped[4:].strip()}]")
            elif stripped.startswith(("- ", "* ")):
                items.append("* " + stripped[2:])
            elif items and not items[-1].startswith("["):
                items[-1] += " " + stripped  # a continuation line of a bullet
            else:
                items.append("* " + stripped)
        body = []
        for item in items:
            plain = re.sub(r"`([^`]*)`", r"\1", item).replace("**", "")
            if plain.startswith("["):
                body.append(f"  {plain}")
                continue
            body += textwrap.wrap(plain, 78, initial_indent="  ", subsequent_indent="    ")
        when = dt.datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=dt.UTC)
        stamp = when.strftime("%a, %d %b %Y %H:%M:%S +0000")
        out.append(
            f"{PACKAGE} ({version}) unstable; urgency=medium\n\n"
            + "\n".join(body)
            + f"\n\n -- {MAINTAINER}  {stamp}\n"
        )
    return "\n".join(out)


def copyright_text() -> str:
    return f"""\
kanoa desktop {__version__}

Copyright (C) 2026 kanoa desktop developers
License: MIT

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of
the Software, and to permit persons to whom the Software is furnished to do so,
subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS
FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.

Bundled components

/{LIB_DIR} is a PyInstaller build: it holds CPython 3.11 (PSF License), Qt 6
and PySide6 (LGPL-3), matplotlib, numpy, pandas, Pillow, pypdfium2 (PDFium:
BSD-3-Clause and Apache-2.0), httpx, keyring and the other Python packages kanoa
desktop depends on, each under its own license; each package's license text is
in its *.dist-info folder under /{LIB_DIR}/_internal. The LGPL's text is in
/usr/share/common-licenses/LGPL-3.
"""


def man_page() -> str:
    date = changelog_sections((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))[0][1]
    return f"""\
.TH KANOA-DESKTOP 1 "{date}" "kanoa desktop {__version__}" "User Commands"
.SH NAME
kanoa-desktop \\- interpret scientific figures and tables with local models
.SH SYNOPSIS
.B kanoa-desktop
.RI [ FILE ...]
.br
.B kanoa-desktop
.I COMMAND
.RI [ OPTIONS ]
.br
.B kanoa-desktop \\-\\-self\\-test
.RB [ \\-\\-server
.IR URL ]
.SH DESCRIPTION
Without a command, opens the window with the figures, tables, PDF files or
notebooks given; a second launch hands its files to the running window.
The commands (interpret, history, metrics, kb, bench\\-endpoint, batch) run the
same pipeline on the command line; see
.B kanoa-desktop \\-\\-help
and
.BR "kanoa-desktop " COMMAND " \\-\\-help" .
.SH OPTIONS
.TP
.B \\-\\-version
Print the version and exit.
.TP
.B \\-\\-self\\-test
Check the window, images, PDF, plots, keychain and certificates (and stream
from the server given with \\-\\-server), print one line per check and exit 0
when all pass.
.TP
.BI \\-\\-profile " NAME"
Start the window with this endpoint profile.
.TP
.B \\-\\-new\\-instance
Open another window even if one is running.
.SH FILES
.TP
.I ~/.config/kanoa\\-desktop/
Profiles and settings.
.TP
.I ~/.local/share/kanoa\\-desktop/
History and knowledge-base indexes. Removing the package leaves both alone.
.SH ENVIRONMENT
.TP
.B KANOA_DESKTOP_HOME
Keep configuration, data and cache under this one folder instead.
"""


def lintian_overrides() -> str:
    return (RES.parent / "packaging" / "lintian-overrides").read_text(encoding="utf-8")


def _gzip_n(data: bytes) -> bytes:
    """gzip -9n: no name, no time stamp (reproducible; lintian checks both)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, filename="", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def _write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)


def stage(bundle: Path, root: Path) -> None:
    """Lay out every file of the package under ``root`` (emptied first)."""
    if root.exists():
        shutil.rmtree(root)
    lib = root / LIB_DIR
    shutil.copytree(bundle, lib, symlinks=True)
    (root / "usr/bin").mkdir(parents=True)
    os.symlink(f"../lib/{PACKAGE}/{PACKAGE}", root / "usr/bin" / PACKAGE)
    share = root / "usr/share"
    _write(share / "applications" / f"{APP_ID}.desktop", (RES / f"{APP_ID}.desktop").read_bytes())
    _write(share / "metainfo" / f"{APP_ID}.metainfo.xml", (RES / f"{APP_ID}.metainfo.xml").read_bytes())
    _write(share / "mime/packages" / f"{APP_ID}.xml", (RES / f"{APP_ID}.mime.xml").read_bytes())
    _write(share / "icons/hicolor/scalable/apps" / f"{APP_ID}.svg", (RES / "kanoa-desktop.svg").read_bytes())
    for png in sorted((RES / "icons").glob(f"*x*/{APP_ID}.png")):
        _write(share / "icons/hicolor" / png.parent.name / "apps" / png.name, png.read_bytes())
    doc = share / "doc" / PACKAGE
    _write(doc / "copyright", copyright_text())
    changelog = debian_changelog((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    _write(doc / "changelog.gz", _gzip_n(changelog.encode()))
    _write(share / "man/man1" / f"{PACKAGE}.1.gz", _gzip_n(man_page().encode()))
    _write(share / "lintian/overrides" / PACKAGE, lintian_overrides())
    for d in [root, *(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())]:
        os.chmod(d, 0o755)


def installed_size_kib(root: Path) -> int:
    """What dpkg-gencontrol puts in Installed-Size: KiB, each file rounded up, plus dirs."""
    total = 0
    for p in root.rglob("*"):
        st = p.lstat()
        total += (st.st_size + 1023) // 1024 if p.is_file() or p.is_symlink() else 1
    return total


def control(root: Path, bundle: Path, arch: str) -> str:
    deps = ", ".join(depends(bundle))
    description = "\n".join(" " + (line if line != "." else ".") for line in DESCRIPTION.splitlines())
    return (
        f"Package: {PACKAGE}\n"
        f"Version: {__version__}\n"
        f"Architecture: {arch}\n"
        f"Maintainer: {MAINTAINER}\n"
        f"Installed-Size: {installed_size_kib(root)}\n"
        f"Depends: {deps}\n"
        f"Section: science\n"
        f"Priority: optional\n"
        f"Homepage: {HOMEPAGE}\n"
        f"Description: {SUMMARY}\n"
        f"{description}\n"
    )


def md5sums(root: Path) -> str:
    lines = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and "DEBIAN" not in p.relative_to(root).parts:
            digest = hashlib.md5(p.read_bytes()).hexdigest()  # dpkg's format: md5
            lines.append(f"{digest}  {p.relative_to(root).as_posix()}")
    return "\n".join(lines) + "\n"


def deb_name(arch: str) -> str:
    return f"{PACKAGE}_{__version__}_{arch}.deb"


def bundle_version(bundle: Path) -> str:
    """What the bundle's own ``--version`` says (a stale build is caught here)."""
    proc = subprocess.run(
        [str(bundle / PACKAGE), "--version"], capture_output=True, text=True, timeout=120
    )
    return proc.stdout.strip().rpartition(" ")[2]


def build(bundle: Path, out: Path, compression: str, level: int, *, log=print) -> Path:
    if not (bundle / PACKAGE).is_file():
        raise SystemExit(f"{bundle / PACKAGE} is missing: run `make package` first")
    found = bundle_version(bundle)
    if found != __version__:
        raise SystemExit(
            f"{bundle} is version {found!r}, the source is {__version__}: run `make package`"
        )
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        raise SystemExit("dpkg-deb is missing (Debian's dpkg package)")
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    root = ROOT / "build" / "deb" / f"{PACKAGE}_{__version__}_{arch}"
    t0 = time.perf_counter()
    stage(bundle, root)
    (root / "DEBIAN").mkdir()
    _write(root / "DEBIAN" / "md5sums", md5sums(root))
    _write(root / "DEBIAN" / "control", control(root, bundle, arch))
    out.mkdir(parents=True, exist_ok=True)
    deb = out / deb_name(arch)
    t1 = time.perf_counter()
    subprocess.run(
        [dpkg_deb, "--root-owner-group", f"-Z{compression}", f"-z{level}", "--build",
         str(root), str(deb)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    t2 = time.perf_counter()
    log((root / "DEBIAN" / "control").read_text(encoding="utf-8").rstrip())
    log(
        f"Built {deb.relative_to(ROOT) if deb.is_relative_to(ROOT) else deb}: "
        f"{deb.stat().st_size / 1e6:.1f} MB ({compression} -{level}), "
        f"{installed_size_kib(root) / 1024:.0f} MiB installed; staged in {t1 - t0:.1f} s, "
        f"compressed in {t2 - t1:.1f} s"
    )
    return deb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / PACKAGE)
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--compression", default="xz", choices=["xz", "gzip"],
                        help="data.tar's compressor (lintian rejects zstd)")  # fmt: skip
    parser.add_argument("--level", type=int, default=3)
    args = parser.parse_args(argv)
    build(args.bundle.resolve(), args.out.resolve(), args.compression, args.level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
