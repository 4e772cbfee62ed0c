"""Run a built bundle's ``--self-test`` the way a user's machine would, and judge it.

    python packaging/package_test.py [--timeout S] dist/kanoa-desktop   (make package-test)

1. ``kanoa-desktop --self-test`` with no display (offscreen), from ``/`` so nothing of the
   source tree can be imported by accident: window, image, SVG, PDF, plot, keyring, certs.
2. The same with ``--server`` pointing at the vLLM test server (tests/servers), so the
   frozen httpx/SSE stack streams a real answer.
3. ``kanoa-desktop-cli --help``: the command line starts.
4. The bundle's own ``_internal/resources/install_desktop.py`` installs a launcher for it
   into a throwaway ``XDG_DATA_HOME`` (Linux only).

Each run is killed after ``--timeout`` seconds (a hung bundle fails, it does not hang CI).
Exits 0 when all passed. Prints each report and the wall time of each step.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_step(name: str, cmd: list[str], timeout: float, env: dict[str, str]) -> bool:
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd="/", env=env, timeout=timeout, capture_output=True, text=True
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        print(out)
        print(f"FAIL {name}: still running after {timeout:g} s, killed", flush=True)
        return False
    print(proc.stdout.rstrip())
    if proc.returncode:
        print(proc.stderr.rstrip()[-4000:])
    ok = proc.returncode == 0
    print(
        f"{'PASS' if ok else 'FAIL'} {name}: exit {proc.returncode} in "
        f"{time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    return ok


def install_step(bundle: Path, gui: Path, home: str, timeout: float, env: dict) -> bool:
    data = Path(home) / "xdg-data"
    script = bundle / "_internal" / "resources" / "install_desktop.py"
    ok = run_step(
        "install desktop files",
        [sys.executable, str(script), "--exec", str(gui)],
        timeout,
        dict(env, XDG_DATA_HOME=str(data)),
    )
    desktop = data / "applications" / "io.github.kanoa.Desktop.desktop"
    if ok and f"Exec={gui} %F" not in desktop.read_text(encoding="utf-8"):
        print(f"FAIL install desktop files: {desktop} does not launch {gui}")
        ok = False
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="the one-folder build (dist/kanoa-desktop)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    exe_name = "kanoa-desktop.exe" if sys.platform == "win32" else "kanoa-desktop"
    gui = args.bundle.resolve() / exe_name
    cli = args.bundle.resolve() / exe_name.replace("kanoa-desktop", "kanoa-desktop-cli")
    for exe in (gui, cli):
        if not exe.is_file():
            print(f"FAIL: {exe} is missing; run `make package` first")
            return 1
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.pop("PYTHONPATH", None)  # the bundle must stand on its own
    sys.path.insert(0, str(ROOT))
    from tests.servers.vllm_server import VLLMTestServer

    results = []
    with tempfile.TemporaryDirectory(prefix="kanoa-package-test-") as home:
        env["KANOA_DESKTOP_HOME"] = home
        results.append(run_step("self-test", [str(gui), "--self-test"], args.timeout, env))
        with VLLMTestServer() as server:
            results.append(
                run_step(
                    "self-test with server",
                    [str(gui), "--self-test", "--server", server.api_base, "--timeout", "30"],
                    args.timeout,
                    env,
                )
            )
        results.append(run_step("cli --help", [str(cli), "--help"], args.timeout, env))
        if sys.platform.startswith("linux"):
            results.append(install_step(args.bundle.resolve(), gui, home, args.timeout, env))
    passed = sum(results)
    print(f"package-test: {passed} of {len(results)} steps passed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
