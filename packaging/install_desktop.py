"""Install (or remove) kanoa desktop's launcher, icons and AppStream metadata for one user.

Standard library only, so a system ``python3`` can run it for a frozen build too::

    python3 packaging/install_desktop.py --exec "$PWD/.venv/bin/kanoa-desktop"   # make install-desktop
    python3 packaging/install_desktop.py --exec /opt/kanoa-desktop/kanoa-desktop  # a bundle
    python3 packaging/install_desktop.py --uninstall

Files go under ``$XDG_DATA_HOME`` (default ``~/.local/share``), as the XDG specs say:

- ``applications/io.github.kanoa.Desktop.desktop`` with ``Exec``/``TryExec`` pointing at
  the given executable (an absolute path: a launcher has no virtualenv on its PATH);
- ``icons/hicolor/<N>x<N>/apps/io.github.kanoa.Desktop.png`` and
  ``icons/hicolor/scalable/apps/io.github.kanoa.Desktop.svg``;
- ``metainfo/io.github.kanoa.Desktop.metainfo.xml``;
- ``mime/packages/io.github.kanoa.Desktop.xml``: the Parquet type, which older
  shared-mime-info databases lack.

Then ``update-desktop-database`` (the "Open with" MIME cache), ``update-mime-database`` and
``gtk-update-icon-cache`` run when they are installed; their absence is reported, not an
error. ``--uninstall`` removes the files and runs them again, so no launcher, icon or file
type is left behind; the user's history, profiles and keychain entries are not touched.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

APP_ID = "io.github.kanoa.Desktop"
ROOT = Path(__file__).resolve().parent.parent
RESOURCES = ROOT / "resources"


def data_home(env: dict[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME`` if set to an absolute path (the spec ignores relative ones)."""
    env = dict(os.environ) if env is None else env
    value = env.get("XDG_DATA_HOME", "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / ".local" / "share"


def quote_exec(path: str) -> str:
    """``path`` as one argument of a desktop entry ``Exec`` key.

    The Desktop Entry spec: an argument with reserved characters is double-quoted, and
    inside quotes ``"``, `````, ``$`` and ``\\`` are backslash-escaped; then the string
    escape rule doubles every backslash (a literal ``$`` is written ``\\\\$``). ``%`` is
    doubled.
    """
    path = path.replace("%", "%%")
    if re.search(r"[\s\"'\\><~|&;$*?#()`]", path):
        quoted = re.sub(r'(["`$\\])', r"\\\1", path)
        return '"' + quoted.replace("\\", "\\\\") + '"'
    return path


def desktop_entry(template: str, executable: str) -> str:
    """The packaged ``.desktop`` text with ``Exec`` and ``TryExec`` on ``executable``."""
    out = []
    for line in template.splitlines():
        if line.startswith("Exec="):
            args = line[len("Exec=") :].split(None, 1)[1:]  # keep the field codes (%F)
            line = "Exec=" + " ".join([quote_exec(executable), *args])
        elif line.startswith("TryExec="):
            # TryExec is a plain path (no quoting); the launcher hides if it is gone.
            line = "TryExec=" + executable.replace("\\", "\\\\")
        out.append(line)
    return "\n".join(out) + "\n"


def planned_files(home: Path, resources: Path = RESOURCES) -> dict[Path, Path]:
    """Every file the install writes (destination -> source), the .desktop file first."""
    files = {
        home / "applications" / f"{APP_ID}.desktop": resources / f"{APP_ID}.desktop",
        home / "metainfo" / f"{APP_ID}.metainfo.xml": resources / f"{APP_ID}.metainfo.xml",
        home / "mime" / "packages" / f"{APP_ID}.xml": resources / f"{APP_ID}.mime.xml",
        home / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg": (
            resources / "kanoa-desktop.svg"
        ),
    }
    for png in sorted((resources / "icons").glob(f"*x*/{APP_ID}.png")):
        size = png.parent.name
        files[home / "icons" / "hicolor" / size / "apps" / f"{APP_ID}.png"] = png
    return files


def _refresh_caches(home: Path, log) -> None:
    tools = [
        ("update-desktop-database", ["-q", str(home / "applications")]),
        ("update-mime-database", [str(home / "mime")]),
        # -t: a user's hicolor folder has no index.theme; -f: rebuild even if it looks fresh
        ("gtk-update-icon-cache", ["-q", "-t", "-f", str(home / "icons" / "hicolor")]),
    ]
    for tool, args in tools:
        if tool == "update-mime-database" and not (home / "mime" / "packages").is_dir():
            continue  # nothing to build a database from (and nothing to create)
        exe = shutil.which(tool)
        if exe is None:
            log(f"{tool} not found; skipped (the desktop picks up the files on next login)")
            continue
        proc = subprocess.run([exe, *args], capture_output=True, text=True)
        if proc.returncode:
            log(f"{tool} failed ({proc.returncode}): {proc.stderr.strip()}")
        else:
            log(f"ran {tool}")


def install(executable: str, home: Path | None = None, *, log=print) -> list[Path]:
    """Install for ``executable`` (made absolute) under ``home``; returns the files written."""
    home = data_home() if home is None else home
    executable = str(Path(executable).expanduser().absolute())
    if not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
        log(
            f"warning: {executable} is not an executable file (yet); the launcher stays "
            "hidden until it is (TryExec)"
        )
    written = []
    for dest, src in planned_files(home).items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.suffix == ".desktop":
            dest.write_text(
                desktop_entry(src.read_text(encoding="utf-8"), executable), encoding="utf-8"
            )
        else:
            shutil.copyfile(src, dest)
        written.append(dest)
        log(f"installed {dest}")
    _refresh_caches(home, log)
    return written


def uninstall(home: Path | None = None, *, log=print) -> list[Path]:
    """Remove what :func:`install` wrote; returns the files removed."""
    home = data_home() if home is None else home
    removed = []
    for dest in planned_files(home):
        if dest.exists():
            dest.unlink()
            removed.append(dest)
            log(f"removed {dest}")
    _refresh_caches(home, log)
    _drop_empty_mime_database(home / "mime", log)
    _drop_empty_folders(home, planned_files(home), log)
    return removed


def _drop_empty_folders(home: Path, files, log) -> None:
    """The folders the install made for its files (``icons/hicolor/48x48/apps``...), when
    nothing else is in them now; never ``home`` itself or a folder that holds anything."""
    folders = {p for f in files for p in f.parents if p != home and p.is_relative_to(home)}
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _drop_empty_mime_database(mime: Path, log) -> None:
    """A user's ``mime`` folder is a database generated from ``mime/packages``: once that
    holds no package (ours was the only one), the generated files describe nothing and go."""
    packages = mime / "packages"
    if packages.is_dir() and not any(packages.iterdir()):
        shutil.rmtree(mime)
        log(f"removed {mime} (no MIME package left in it)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--exec", dest="executable", help="the kanoa-desktop executable to launch")
    group.add_argument("--uninstall", action="store_true", help="remove the installed files")
    args = parser.parse_args(argv)
    if args.uninstall:
        uninstall()
    else:
        install(args.executable)
    return 0


if __name__ == "__main__":
    sys.exit(main())
