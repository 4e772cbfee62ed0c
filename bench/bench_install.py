"""The installed app beside the source install: size on disk and time to a drawn window.

Run: ``python -m bench.bench_install [--quick] [--repeat N] [--deb FILE]``.

- **Installed**: the Debian package (``make deb``: ``dist/kanoa-desktop_<version>_<arch>.deb``)
  unpacked with ``dpkg -x`` into a temporary root, started as ``usr/bin/kanoa-desktop``
  (the frozen PyInstaller bundle under ``usr/lib/kanoa-desktop``).
- **Source install**: this virtualenv's ``kanoa-desktop`` (``pip install -e .`` / ``make
  run``), on the Python it was made with.

Size: the bundle's files against the files pip installed for kanoa-desktop and everything
it requires (each distribution's RECORD; the Python interpreter a source install runs on is
not counted, the bundle carries its own). The .deb and .run download sizes beside them.

Start: process start to the main window drawn on a real X server (Xvfb with Qt's xcb
platform, as on a desktop), seen from outside the app: the screen's pixels are read from
Xvfb's frame buffer every 20 ms until the window covers most of a 1280x720 window's area.
Each start is a fresh process with its own empty ``KANOA_DESKTOP_HOME``, after one warm-up
start of each (bytecode and the page cache warm, as for a user's second start); the two
are interleaved so a burst of load on the machine hits both alike; medians.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, machine_line, print_table, ratio

sys.path.insert(0, str(ROOT / "packaging"))

from xscreen import XScreen  # noqa: E402

from kanoa_desktop import __version__  # noqa: E402

WINDOW_PIXELS = 1280 * 720 * 0.8  # the main window (1280x720) is drawn


def default_deb() -> Path:
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
    return ROOT / "dist" / f"kanoa-desktop_{__version__}_{arch.stdout.strip()}.deb"


def folder_size(folder: Path) -> tuple[int, int]:
    """(bytes, files) of the regular files under ``folder``."""
    total = count = 0
    for p in folder.rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
            count += 1
    return total, count


def source_install_size(name: str = "kanoa-desktop") -> tuple[int, int, int]:
    """(bytes, files, distributions) pip installed for ``name`` and its requirements."""
    seen: set[str] = set()
    todo = [name]
    total = files = 0
    while todo:
        dist_name = re.split(r"[\s<>=!~;\[(]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if dist_name in seen:
            continue
        seen.add(dist_name)
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            path = Path(dist.locate_file(f))
            if path.is_file():
                total += path.stat().st_size
                files += 1
        for req in dist.requires or []:
            if "extra ==" not in req and _marker_holds(req):
                todo.append(req)
    return total, files, len(seen)


def _marker_holds(req: str) -> bool:
    if ";" not in req:
        return True
    try:
        from packaging.requirements import Requirement

        return Requirement(req).marker.evaluate()  # type: ignore[union-attr]
    except Exception:  # no 'packaging' module: count the requirement
        return True


def time_to_window(argv: list[str], timeout: float = 120.0) -> float:
    """Seconds from process start to the main window drawn on a fresh Xvfb screen."""
    with XScreen(1280, 800) as screen, tempfile.TemporaryDirectory() as home:
        runtime = Path(home) / "run"
        runtime.mkdir(mode=0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "KANOA_"))}
        env.pop("WAYLAND_DISPLAY", None)
        env.update(DISPLAY=screen.display, KANOA_DESKTOP_HOME=home, XDG_RUNTIME_DIR=str(runtime))
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd="/", stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            while time.perf_counter() - t0 < timeout:
                if (screen.pixels().max(axis=2) > 16).sum() >= WINDOW_PIXELS:
                    return time.perf_counter() - t0
                if proc.poll() is not None:
                    raise RuntimeError(f"{argv[0]} exited with {proc.returncode} before its window")
                time.sleep(0.02)
            raise RuntimeError(f"{argv[0]}: no window within {timeout:g} s")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 starts each instead of 7")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--deb", type=Path, default=None)
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 7)
    deb = args.deb or default_deb()
    print(machine_line())
    if not deb.is_file():
        print(f"\n{deb} is not built: run `make deb` (make bench builds it) to compare the "
              "installed app with the source install.")  # fmt: skip
        return 0
    run_file = ROOT / "dist" / f"kanoa-desktop-{__version__}-{platform.machine()}.run"
    source_exe = Path(sys.executable).parent / "kanoa-desktop"
    with tempfile.TemporaryDirectory(prefix="kanoa-bench-install-") as tmp:
        root = Path(tmp) / "root"
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        installed_exe = root / "usr/bin/kanoa-desktop"
        b_bytes, b_files = folder_size(root / "usr/lib/kanoa-desktop")
        s_bytes, s_files, s_dists = source_install_size()
        runs: dict[str, list[float]] = {"installed": [], "source": []}
        time_to_window([str(installed_exe)]), time_to_window([str(source_exe)])  # warm-up
        for _ in range(repeat):
            runs["installed"].append(time_to_window([str(installed_exe)]))
            runs["source"].append(time_to_window([str(source_exe)]))
    med = {k: statistics.median(v) for k, v in runs.items()}
    mb = 1e6
    print_table(
        f"Installed app (.deb, frozen bundle) beside the source install: kanoa desktop {__version__}",
        ["install", "on disk MB", "files", "download MB", "start -> window drawn s", "ratio"],
        [
            ("installed .deb (/usr/lib/kanoa-desktop)", b_bytes / mb, b_files,
             deb.stat().st_size / mb, med["installed"], ratio(med["installed"], med["source"])),
            (f"source install (venv: kanoa-desktop + {s_dists - 1} requirements)", s_bytes / mb,
             s_files, None, med["source"], "1.00x"),
            ("  one-user installer (.run)", None, None,
             run_file.stat().st_size / mb if run_file.is_file() else None, None, ""),
        ],
        [f"median of {repeat} starts each (interleaved, after a warm-up start of each), on "
         "Xvfb with Qt's xcb platform, each with an empty KANOA_DESKTOP_HOME: process start "
         "until the window's pixels are on the screen (read from Xvfb's frame buffer every "
         "20 ms). Source install size: the RECORD files of kanoa-desktop and its "
         "requirements in this venv, without the Python interpreter it runs on; the bundle "
         "carries its own. Starts: installed "
         + ", ".join(f"{x:.2f}" for x in runs["installed"]) + " s; source "
         + ", ".join(f"{x:.2f}" for x in runs["source"]) + " s."],
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
