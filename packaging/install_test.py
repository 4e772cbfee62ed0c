"""Install the built packages as a user would, use them, remove them (make package-test).

    python packaging/install_test.py [--deb FILE] [--run FILE] [--timeout S] [--mode auto]

The .deb (``dist/kanoa-desktop_<version>_<arch>.deb``):

1. ``lintian``: no error (the overrides it ships say why each one is overridden).
2. Installed into a clean root: as root with apt, ``apt-get install ./….deb`` (what the
   README tells an admin; dpkg's triggers then register the launcher, icons and MIME
   types); otherwise ``dpkg -x`` into a temporary folder (``--mode extract`` forces it).
3. From the installed files only (``cwd=/``, no source tree, no virtualenv on PATH):
   ``kanoa-desktop --version`` says the source's version; ``--self-test`` passes every check
   and streams from the vLLM test server (tests/servers); the installed ``.desktop`` entry
   passes ``desktop-file-validate``, and its ``Exec`` line, with ``%F`` replaced by a
   figure's path as a file manager's "Open With" does, starts the window on a real X
   server (Xvfb, Qt's xcb platform). The figure (magenta and green halves) must appear on
   the screen: the screen's pixels are read from Xvfb's frame buffer, from outside the app.
   A launch without a file (from the menu) must show the window and no magenta: the
   colour comes from the figure, not from the window. Both close on SIGTERM with exit 0.
   Screenshots: build/package-test/*.png.
4. (apt) Open With is registered system-wide (``mimeinfo.cache`` names the launcher for
   PNG and Parquet); then ``apt-get purge`` removes it: no file of the package, launcher,
   icon, metainfo or MIME type is left, the caches no longer name it, and the user's files
   (the history, settings and log the window wrote, and a keyring file) are unchanged.

The .run (``dist/kanoa-desktop-<version>-<arch>.run``), always as a plain user would, in a
throwaway ``HOME``: ``sh ….run`` installs into ``~/.local``; the command, the launcher (with
an absolute ``Exec``), the Open With registration and the Parquet type are there; the
installed app passes ``--self-test``; ``~/.local/lib/kanoa-desktop/uninstall`` then leaves
nothing that names the app, and the user's data as it was.

Exits 0 when every step passed; prints PASS/FAIL per step.
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "packaging"))

from xscreen import XScreen, wait_for  # noqa: E402

from kanoa_desktop import APP_ID, __version__  # noqa: E402

PACKAGE = "kanoa-desktop"
SHOTS = ROOT / "build" / "package-test"
MAGENTA, GREEN = (255, 0, 255), (0, 160, 0)
# Shown figure: its magenta half, downscaled into the preview, is thousands of pixels.
SHOWN_MIN_PIXELS = 2000
ABSENT_MAX_PIXELS = 50

results: list[tuple[str, bool]] = []


def step(name: str, ok: bool, detail: str = "") -> bool:
    results.append((name, ok))
    print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""), flush=True)
    return ok


def run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(cmd, 124, str(exc.stdout or ""), f"timed out after {timeout:g} s")


def clean_env(home: Path, path_dirs: list[Path] = ()) -> dict[str, str]:
    """A user's session: their HOME, a private runtime dir, no display, no dev settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KANOA_", "XDG_", "QT_"))}
    for k in ("DISPLAY", "WAYLAND_DISPLAY", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(k, None)
    runtime = home / ".run"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime))
    system_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env["PATH"] = ":".join([*map(str, path_dirs), system_path])
    return env


def make_figure(path: Path) -> Path:
    from PIL import Image

    im = Image.new("RGB", (1200, 800), (255, 255, 255))
    im.paste(MAGENTA, (0, 0, 600, 800))
    im.paste(GREEN, (600, 0, 1200, 800))
    im.save(path)
    return path


def magenta_pixels(screen: XScreen) -> int:
    px = screen.pixels().astype(int)
    return int(((px[..., 0] > 200) & (px[..., 1] < 60) & (px[..., 2] > 200)).sum())


def window_pixels(screen: XScreen) -> int:
    """Pixels that are not the empty screen's black."""
    return int((screen.pixels().max(axis=2) > 16).sum())


def desktop_exec(desktop: Path, files: list[str]) -> list[str]:
    """The entry's ``Exec`` as argv, with its field codes expanded as a file manager does
    (Desktop Entry spec: ``%F``/``%U`` the files, ``%f``/``%u`` the first, others dropped)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(desktop, encoding="utf-8")
    argv: list[str] = []
    for arg in shlex.split(parser["Desktop Entry"]["Exec"]):
        if arg in ("%F", "%U"):
            argv += files
        elif arg in ("%f", "%u"):
            argv += files[:1]
        elif arg in ("%i", "%c", "%k"):
            continue
        else:
            argv.append(arg.replace("%%", "%"))
    return argv


def open_with(desktop: Path, files: list[str], env: dict, timeout: float, shot: str) -> bool:
    """Start the entry's Exec under Xvfb; True when the window appeared and, with a figure,
    showed it (without one: showed no magenta). Closes it with SIGTERM (exit 0 wanted)."""
    argv = desktop_exec(desktop, files)
    label = "with a figure" if files else "without a file"
    with XScreen(1280, 800) as screen:
        xenv = dict(env, DISPLAY=screen.display)
        print(f"$ DISPLAY={screen.display} {' '.join(shlex.quote(a) for a in argv)}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, env=xenv, cwd="/", stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        if files:
            ok = wait_for(lambda: magenta_pixels(screen) >= SHOWN_MIN_PIXELS or proc.poll() is not None, timeout, 0.1)
            ok = ok and proc.poll() is None and magenta_pixels(screen) >= SHOWN_MIN_PIXELS
            detail = f"{magenta_pixels(screen)} magenta pixels on screen after {time.monotonic() - t0:.1f} s"
        else:
            ok = wait_for(lambda: window_pixels(screen) > 500_000 or proc.poll() is not None, timeout, 0.1)
            time.sleep(2.0)  # the deferred parts of the window are built by now
            ok = ok and proc.poll() is None and magenta_pixels(screen) <= ABSENT_MAX_PIXELS
            detail = (f"window drawn after {time.monotonic() - t0:.1f} s, "
                      f"{magenta_pixels(screen)} magenta pixels")  # fmt: skip
        png = screen.save_png(SHOTS / shot)
        code = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        else:
            code = proc.returncode
        out = proc.stdout.read() if proc.stdout else ""
        if not ok or code != 0:
            print(out[-3000:])
    step(f"Open With {label} ({desktop.name} Exec)", ok, f"{detail}; screenshot {png}")
    return step(f"window {label} closes on SIGTERM", code == 0, f"exit {code}") and ok


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its SHA-256 (the user's data, to compare later)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def plant_user_data(home: Path) -> None:
    """What a user has besides what the window wrote: profiles and a keyring file."""
    (home / ".config/kanoa-desktop").mkdir(parents=True, exist_ok=True)
    profiles = home / ".config/kanoa-desktop/profiles.json"
    if not profiles.exists():
        profiles.write_text('{"schema_version": 3, "profiles": []}\n')
    keyrings = home / ".local/share/keyrings"
    keyrings.mkdir(parents=True, exist_ok=True)
    (keyrings / "login.keyring").write_bytes(b"GnomeKeyring\n\r\0\n kanoa-desktop api key")


def mentions_app(paths: list[Path]) -> list[str]:
    """Files among ``paths`` whose name or content names the app id."""
    hits = []
    for p in paths:
        if APP_ID in p.name:
            hits.append(str(p))
        elif p.is_file() and not p.is_symlink():
            try:
                if APP_ID.encode() in p.read_bytes():
                    hits.append(str(p))
            except OSError:
                pass
    return hits


# -- the .deb ------------------------------------------------------------------------------


def lintian(deb: Path, timeout: float) -> bool:
    tool = shutil.which("lintian")
    if tool is None:
        return step("lintian", False, "lintian is not installed (Debian: apt-get install lintian)")
    t0 = time.monotonic()
    # --fail-on none: with --show-overrides lintian counts overridden tags towards its exit
    # status, so the verdict is read from the output: an "E:" line is an error, "O:" one
    # that the package's overrides explain.
    proc = run([tool, "--fail-on", "none", "--tag-display-limit", "0", "--show-overrides",
                "-I", str(deb)], timeout)  # fmt: skip
    lines = proc.stdout.splitlines()
    counts: dict[str, int] = {}
    for line in lines:
        kind = line.split(":", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    errors = [ln for ln in lines if ln.startswith("E:")]
    for line in errors[:40] + [ln for ln in lines if ln.startswith("O:")]:
        print(line)
    if proc.returncode:
        print(proc.stderr[-3000:])
    names = {"E": "errors", "W": "warnings", "I": "info", "O": "overridden", "N": "notes"}
    summary = ", ".join(f"{counts[k]} {names.get(k, k)}" for k in sorted(counts)) or "nothing"
    return step("lintian", proc.returncode == 0 and not errors,
                f"{summary} in {time.monotonic() - t0:.0f} s (exit {proc.returncode})")  # fmt: skip


def installed_files(deb: Path) -> list[str]:
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True)
    names = []
    for line in out.stdout.splitlines():
        name = line.split(None, 5)[5].split(" -> ")[0]
        names.append("/" + name.lstrip("./"))
    return [n for n in names if n != "/"]


def test_deb(deb: Path, mode: str, timeout: float, work: Path) -> None:
    lintian(deb, max(timeout, 900))
    use_apt = mode == "apt" or (mode == "auto" and os.geteuid() == 0 and shutil.which("apt-get"))
    if use_apt:
        root = Path("/")
        env_apt = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        proc = run(["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300",
                    str(deb.resolve())], 900, env=env_apt)  # fmt: skip
        status = run(["dpkg-query", "-W", "-f", "${Status} ${Version}", PACKAGE], 60)
        ok = proc.returncode == 0 and status.stdout == f"install ok installed {__version__}"
        if not ok:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
        if not step("apt-get install ./" + deb.name, ok, status.stdout):
            return
    else:
        root = work / "root"
        proc = run(["dpkg", "-x", str(deb), str(root)], 600)
        if not step(f"dpkg -x {deb.name} (not root: a clean folder)", proc.returncode == 0, proc.stderr):
            return
    bin_dir = root / "usr/bin"
    home = work / "deb-home"
    home.mkdir()
    env = clean_env(home, [] if use_apt else [bin_dir])
    exe = bin_dir / PACKAGE

    proc = run([str(exe), "--version"], timeout, env=env, cwd="/")
    step("kanoa-desktop --version", proc.stdout.strip() == f"kanoa-desktop {__version__}", proc.stdout.strip())

    from tests.servers.vllm_server import VLLMTestServer

    with VLLMTestServer() as server:
        proc = run([str(exe), "--self-test", "--server", server.api_base, "--timeout", "30"],
                   timeout, env=env, cwd="/")  # fmt: skip
    print(proc.stdout.rstrip())
    frozen = "frozen bundle" in proc.stdout and str(root / "usr/lib" / PACKAGE) in proc.stdout
    step("installed --self-test with the vLLM test server", proc.returncode == 0 and frozen,
         f"exit {proc.returncode}" + ("" if frozen else "; not the installed bundle"))  # fmt: skip

    desktop = root / "usr/share/applications" / f"{APP_ID}.desktop"
    validate = shutil.which("desktop-file-validate")
    if validate:
        proc = run([validate, str(desktop)], 60)
        step("installed .desktop entry is valid", proc.returncode == 0, proc.stdout.strip())
    else:
        step("installed .desktop entry is valid", False, "desktop-file-validate is missing")
    figure = make_figure(work / "figure.png")
    open_with(desktop, [], env, timeout, "deb-open-without-file.png")
    open_with(desktop, [str(figure)], env, timeout, "deb-open-with-figure.png")

    if not use_apt:
        print("(removal is tested where apt installed the package: run as root)")
        return
    cache = Path("/usr/share/applications/mimeinfo.cache")
    text = cache.read_text(encoding="utf-8") if cache.exists() else ""
    registered = all(
        any(line.startswith(f"{mime}=") and f"{APP_ID}.desktop" in line for line in text.splitlines())
        for mime in ("image/png", "application/vnd.apache.parquet", "application/pdf")
    )
    step("Open With registered system-wide (mimeinfo.cache)", registered, str(cache))
    mime_db = Path("/usr/share/mime/application/vnd.apache.parquet.xml")
    if shutil.which("update-mime-database"):
        step("Parquet MIME type registered (shared-mime-info trigger)", mime_db.exists(), str(mime_db))

    files = installed_files(deb)
    plant_user_data(home)
    before = snapshot(home)
    env_apt = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = run(["apt-get", "purge", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", PACKAGE], 900, env=env_apt)
    status = run(["dpkg-query", "-W", "-f", "${Status}", PACKAGE], 60)
    step("apt-get purge kanoa-desktop", proc.returncode == 0 and "installed" not in status.stdout.split(),
         status.stdout or "not known to dpkg")  # fmt: skip
    left = [f for f in files if os.path.lexists(f) and not os.path.isdir(f)]
    left += [f for f in files if os.path.isdir(f) and f.startswith(f"/usr/lib/{PACKAGE}")]
    step("no file of the package is left", not left, ", ".join(left[:10]))
    caches = [cache, Path("/usr/share/icons/hicolor/icon-theme.cache"), *Path("/usr/share/mime").glob("*")]
    named = mentions_app([p for p in caches if p.exists()])
    step("no launcher, icon or MIME cache names the app", not named and not mime_db.exists(),
         ", ".join(named))  # fmt: skip
    after = snapshot(home)
    step("the user's files are unchanged (history, settings, log, keyring)", before == after and
         any("kanoa-desktop" in k for k in before), f"{len(before)} files")  # fmt: skip


# -- the .run ------------------------------------------------------------------------------


def test_run(run_file: Path, timeout: float, work: Path) -> None:
    home = work / "run-home"
    home.mkdir()
    env = clean_env(home)
    proc = run(["sh", str(run_file)], 600, env=env, cwd=str(home))
    print(proc.stdout.rstrip(), proc.stderr.rstrip())
    if not step(f"sh {run_file.name}", proc.returncode == 0, f"exit {proc.returncode}"):
        return
    lib = home / ".local/lib" / PACKAGE
    command = home / ".local/bin" / PACKAGE
    share = home / ".local/share"
    desktop = share / "applications" / f"{APP_ID}.desktop"
    exec_line = desktop_exec(desktop, ["FILE"]) if desktop.exists() else []
    step("command, bundle and launcher installed", command.is_symlink() and lib.is_dir()
         and exec_line == [str(lib / PACKAGE), "FILE"], " ".join(exec_line))  # fmt: skip
    cache = share / "applications" / "mimeinfo.cache"
    text = cache.read_text(encoding="utf-8") if cache.exists() else ""
    registered = all(
        any(line.startswith(f"{mime}=") and f"{APP_ID}.desktop" in line for line in text.splitlines())
        for mime in ("image/png", "text/csv", "application/vnd.apache.parquet", "application/x-ipynb+json")
    )
    step("Open With registered for the user", registered, str(cache))
    parquet = share / "mime/application/vnd.apache.parquet.xml"
    if shutil.which("update-mime-database"):
        step("Parquet MIME type registered for the user", parquet.exists(), str(parquet))
    proc = run([str(command), "--self-test"], timeout, env=dict(env, QT_QPA_PLATFORM="offscreen"), cwd="/")
    print(proc.stdout.rstrip())
    step("installed --self-test", proc.returncode == 0 and str(lib) in proc.stdout, f"exit {proc.returncode}")

    plant_user_data(home)
    (home / ".local/share/kanoa-desktop").mkdir(parents=True, exist_ok=True)
    (home / ".local/share/kanoa-desktop/history.sqlite3").write_bytes(b"SQLite format 3\0")
    before = snapshot(home)
    proc = run([str(lib / "uninstall")], 300, env=env, cwd="/")
    print(proc.stdout.rstrip(), proc.stderr.rstrip())
    step("~/.local/lib/kanoa-desktop/uninstall", proc.returncode == 0, f"exit {proc.returncode}")
    everything = [p for p in home.rglob("*")]
    leftovers = [str(p) for p in everything if p == lib or p == command or p.is_relative_to(lib)]
    leftovers += mentions_app([p for p in everything if not p.is_relative_to(home / ".local/state")
                               and not p.is_relative_to(home / ".config/kanoa-desktop")
                               and not p.is_relative_to(home / ".local/share/kanoa-desktop")])  # fmt: skip
    step("nothing of the app is left (launcher, icons, MIME types, command)", not leftovers,
         ", ".join(leftovers[:10]))  # fmt: skip
    kept = snapshot(home)
    step("the user's files are unchanged", all(kept.get(k) == v for k, v in before.items()
         if not k.startswith((".local/lib/", ".local/share/applications", ".local/share/icons",
                              ".local/share/mime", ".local/share/metainfo")))
         and ".local/share/kanoa-desktop/history.sqlite3" in kept, f"{len(kept)} files")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    arch_deb = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deb", type=Path, default=ROOT / "dist" / f"{PACKAGE}_{__version__}_{arch_deb}.deb")
    parser.add_argument("--run", type=Path,
                        default=ROOT / "dist" / f"{PACKAGE}-{__version__}-{platform.machine()}.run")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds each start of the app may take")
    parser.add_argument("--mode", choices=["auto", "apt", "extract"], default="auto",
                        help="auto: apt when root, else dpkg -x")
    args = parser.parse_args(argv)
    for f in (args.deb, args.run):
        if not f.is_file():
            print(f"FAIL: {f} is missing: run `make deb installer` first")
            return 1
    shutil.rmtree(SHOTS, ignore_errors=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kanoa-install-test-") as tmp:
        work = Path(tmp)
        test_deb(args.deb.resolve(), args.mode, args.timeout, work)
        test_run(args.run.resolve(), args.timeout, work)
    passed = sum(ok for _n, ok in results)
    print(f"install-test: {passed} of {len(results)} steps passed in {time.monotonic() - t0:.0f} s")
    return 0 if results and passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
