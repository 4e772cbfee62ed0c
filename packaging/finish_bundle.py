"""Finish PyInstaller's one-folder build on Linux, in place: what a distribution would do.

    python packaging/finish_bundle.py dist/kanoa-desktop        (make package runs it)

PyInstaller copies libraries as it finds them. Three things are left for a package:

1. **The build machine's library paths.** The build's Python (pyenv, a source build) links
   its extension modules and ``libpython`` with ``RUNPATH=/root/.pyenv/.../lib``: on a
   user's machine the loader would look there first. Such absolute entries are removed
   from the dynamic section (``$ORIGIN``-relative ones, which point inside the bundle,
   stay).
2. **Symbols and debug information** (``libpython`` alone carries ~18 MB): each library is
   stripped (``strip --strip-unneeded``) into a copy, and the copy is kept only if its
   loadable segments still obey the loader's rule (file offset and address congruent
   modulo the alignment). Libraries rewritten by auditwheel's patchelf (numpy's OpenBLAS)
   fail that rule once stripped ("ELF load command address/offset not page-aligned") and
   are kept as they were. The two executables carry PyInstaller's archive after the ELF
   image and are never stripped.
3. **Modes**: libraries and data 0644, executables 0755 (Debian policy 10.9: a shared
   library is not executable).

Standard library and binutils' ``strip`` only. Prints one summary line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_STRTAB, DT_RPATH, DT_RUNPATH = 0, 5, 15, 29
ET_EXEC, ET_DYN = 2, 3
SHT_SYMTAB = 2


@dataclass
class Elf:
    """What this script needs of a little-endian ELF64 file."""

    path: Path
    e_type: int
    loads: list[tuple[int, int, int]]  # (p_offset, p_vaddr, p_align) of each PT_LOAD
    dynamic: tuple[int, int] | None  # (file offset, size) of the dynamic section
    interp: bool
    has_symtab: bool
    debug_sections: bool

    @property
    def loads_aligned(self) -> bool:
        return all(align <= 1 or (off - vaddr) % align == 0 for off, vaddr, align in self.loads)


def read_elf(path: Path) -> Elf | None:
    """The file's ELF facts, or None when it is not a little-endian ELF64 file."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return None
            e_type = struct.unpack_from("<H", head, 16)[0]
            phoff, shoff = struct.unpack_from("<QQ", head, 32)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", head, 54)
            f.seek(phoff)
            phdrs = f.read(phentsize * phnum)
            f.seek(shoff)
            shdrs = f.read(shentsize * shnum)
            names = b""
            if shnum and shstrndx < shnum:
                off, size = struct.unpack_from("<QQ", shdrs, shstrndx * shentsize + 24)
                f.seek(off)
                names = f.read(size)
    except OSError:
        return None
    loads, dynamic, interp = [], None, False
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, _memsz, p_align = struct.unpack_from(
            "<IIQQQQQQ", phdrs, i * phentsize
        )
        if p_type == PT_LOAD:
            loads.append((p_offset, p_vaddr, p_align))
        elif p_type == PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
        elif p_type == PT_INTERP:
            interp = True
    has_symtab = debug = False
    for i in range(shnum):
        sh_name, sh_type = struct.unpack_from("<II", shdrs, i * shentsize)
        name = names[sh_name : names.find(b"\0", sh_name)] if names else b""
        has_symtab |= sh_type == SHT_SYMTAB
        debug |= name.startswith(b".debug_")
    return Elf(path, e_type, loads, dynamic, interp, has_symtab, debug)


def _vaddr_to_offset(elf: Elf, vaddr: int, data: bytes) -> int | None:
    # Segments map file ranges to addresses; find the one holding vaddr.
    head = data[:64]
    phoff = struct.unpack_from("<Q", head, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", head, 54)
    for i in range(phnum):
        p_type, _f, p_offset, p_vaddr, _pa, p_filesz, _m, _al = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize
        )
        if p_type == PT_LOAD and p_vaddr <= vaddr < p_vaddr + p_filesz:
            return vaddr - p_vaddr + p_offset
    return None


def search_paths(path: Path) -> list[tuple[int, str]]:
    """The (tag, value) of each DT_RPATH / DT_RUNPATH entry of an ELF file."""
    elf = read_elf(path)
    if elf is None or elf.dynamic is None:
        return []
    data = path.read_bytes()
    entries = _dynamic_entries(data, elf)
    strtab = next((val for tag, val in entries if tag == DT_STRTAB), None)
    base = _vaddr_to_offset(elf, strtab, data) if strtab is not None else None
    if base is None:
        return []
    out = []
    for tag, val in entries:
        if tag in (DT_RPATH, DT_RUNPATH):
            end = data.index(b"\0", base + val)
            out.append((tag, data[base + val : end].decode("utf-8", "replace")))
    return out


def _dynamic_entries(data: bytes, elf: Elf) -> list[tuple[int, int]]:
    off, size = elf.dynamic or (0, 0)
    entries = []
    for i in range(size // 16):
        tag, val = struct.unpack_from("<qQ", data, off + 16 * i)
        entries.append((tag, val))
        if tag == DT_NULL:
            break
    return entries


def drop_foreign_search_paths(path: Path) -> list[str]:
    """Remove DT_RPATH/DT_RUNPATH entries that name no folder inside the bundle (absolute
    paths of the build machine); returns the values removed. ``$ORIGIN`` entries stay.

    The entries after a removed one move up and the array keeps its length, ending in
    DT_NULL (what ``chrpath -d`` does): no address changes, nothing else moves."""
    found = search_paths(path)
    foreign = [v for _t, v in found if not all(p.startswith("$ORIGIN") for p in v.split(":") if p)]
    if not foreign:
        return []
    elf = read_elf(path)
    assert elf is not None and elf.dynamic is not None
    data = bytearray(path.read_bytes())
    entries = _dynamic_entries(bytes(data), elf)
    strtab = next(val for tag, val in entries if tag == DT_STRTAB)
    base = _vaddr_to_offset(elf, strtab, bytes(data))
    assert base is not None
    kept = []
    for tag, val in entries:
        if tag in (DT_RPATH, DT_RUNPATH):
            end = data.index(b"\0", base + val)
            value = data[base + val : end].decode("utf-8", "replace")
            if value in foreign:
                continue
        kept.append((tag, val))
    off, size = elf.dynamic
    count = size // 16
    kept += [(DT_NULL, 0)] * (count - len(kept))
    for i, (tag, val) in enumerate(kept[:count]):
        struct.pack_into("<qQ", data, off + 16 * i, tag, val)
    path.write_bytes(bytes(data))
    return foreign


def strip_safely(path: Path, strip: str) -> bool:
    """Strip ``path`` if the result still loads (segments aligned); True if it was stripped."""
    elf = read_elf(path)
    if elf is None or not (elf.has_symtab or elf.debug_sections):
        return False
    with tempfile.TemporaryDirectory(prefix="kanoa-strip-") as tmp:
        out = Path(tmp) / path.name
        proc = subprocess.run(
            [strip, "--strip-unneeded", "-o", str(out), str(path)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            return False
        stripped = read_elf(out)
        if stripped is None or not stripped.loads_aligned:
            return False
        shutil.copyfile(out, path)
    return True


def _size(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def finish(bundle: Path, *, strip: str | None = None, log=print) -> dict[str, int]:
    """Apply the three steps to every file under ``bundle``; returns counts (and sizes)."""
    strip = strip or shutil.which("strip")
    executables = {bundle / "kanoa-desktop", bundle / "kanoa-desktop-cli"}
    counts = {"files": 0, "rpaths_removed": 0, "stripped": 0, "kept_unstripped": 0}
    counts["bytes_before"] = _size(bundle)
    for path in sorted(p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()):
        counts["files"] += 1
        elf = read_elf(path)
        if elf is not None and path not in executables and elf.e_type in (ET_DYN, ET_EXEC):
            if drop_foreign_search_paths(path):
                counts["rpaths_removed"] += 1
            if strip is not None:
                if strip_safely(path, strip):
                    counts["stripped"] += 1
                else:
                    elf = read_elf(path)
                    if elf is not None and (elf.has_symtab or elf.debug_sections):
                        counts["kept_unstripped"] += 1
        program = path in executables or (
            elf is not None and elf.e_type == ET_EXEC and elf.interp
        )
        os.chmod(path, 0o755 if program else 0o644)
    for d in [bundle, *(p for p in bundle.rglob("*") if p.is_dir() and not p.is_symlink())]:
        os.chmod(d, 0o755)
    counts["bytes_after"] = _size(bundle)
    if strip is None:
        log("finish_bundle: binutils' strip not found: libraries left unstripped")
    log(
        f"finish_bundle: {counts['files']} files; build-machine library paths removed from "
        f"{counts['rpaths_removed']}; {counts['stripped']} libraries stripped, "
        f"{counts['kept_unstripped']} kept as they were (stripping would misalign them); "
        f"{counts['bytes_before'] / 1e6:.0f} MB -> {counts['bytes_after'] / 1e6:.0f} MB"
    )
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="the one-folder build (dist/kanoa-desktop)")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("finish_bundle: Linux only; nothing to do here")
        return 0
    if not (args.bundle / "kanoa-desktop").is_file():
        print(f"finish_bundle: {args.bundle}/kanoa-desktop is missing; run `make package`")
        return 1
    finish(args.bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
