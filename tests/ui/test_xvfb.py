"""The real window on a real X server: Xvfb at 1,280 × 720, Qt's xcb platform (not offscreen).

A driver script (xvfb_driver.py) runs the window in a subprocess against the real
llama.cpp server; this test starts Xvfb on a free display, runs it, and checks what it
measured: the window fits the screen after loading a CSV and a figure with every dock open,
Ctrl+Enter from the question field asks, the newest answer is in view at the end, and the
X screen's pixels differ between light and dark as they should. ``make test`` installs Xvfb
and the libraries Qt's xcb plugin links.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from kanoa_desktop.ui.app import missing_libraries, qt_plugins_dir

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCREEN = (1280, 720)
SHOTS = Path(os.environ.get("KANOA_SCREENSHOTS", ROOT / "screenshots-tmp" / "xvfb"))


@pytest.fixture
def xvfb(tmp_path):
    """An Xvfb server on a free display (``-displayfd``: Xvfb picks it and tells us)."""
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.fail("Xvfb is not installed: `make test` installs it (Debian package xvfb).")
    lacking = missing_libraries(qt_plugins_dir() / "platforms" / "libqxcb.so")
    if lacking:
        pytest.fail(f"Qt's xcb plugin lacks {lacking}: `make test` installs them.")
    read_fd, write_fd = os.pipe()
    screen = f"{SCREEN[0]}x{SCREEN[1]}x24"
    args = [binary, "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"]
    with open(tmp_path / "xvfb.log", "wb") as log:
        proc = subprocess.Popen(args, pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=log)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number.isdigit():
        proc.kill()
        pytest.fail(f"Xvfb did not start: {(tmp_path / 'xvfb.log').read_text()[-500:]}")
    yield f":{number}"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _inputs(tmp_path: Path) -> tuple[Path, Path]:
    csv = tmp_path / "growth_curve_of_e_coli_k12_in_lb_medium_at_37_degrees.csv"
    rows = ["hour,optical_density_at_600_nm_measured,incubator_temperature_in_celsius"]
    # Few rows: a short table summary keeps the prompt small for a CPU-bound server.
    rows += [f"{h / 2:.1f},{0.05 * 1.35 ** (h / 2):.4f},37.00" for h in range(16)]
    csv.write_text("\n".join(rows) + "\n")
    png = tmp_path / "growth_curve_plot_with_a_long_descriptive_file_name.png"
    from PIL import ImageDraw

    image = Image.new("RGB", (800, 500), "white")
    draw = ImageDraw.Draw(image)
    draw.line([(60, 440), (300, 400), (500, 200), (760, 60)], fill="navy", width=4)
    draw.line([(60, 440), (760, 440)], fill="black", width=2)
    draw.line([(60, 40), (60, 440)], fill="black", width=2)
    image.save(png)
    return csv, png


def _brightness(path: Path, box: tuple[int, int, int, int] | None = None) -> float:
    image = Image.open(path).convert("L")
    if box is not None:
        image = image.crop(box)
    return ImageStat.Stat(image).mean[0]


@pytest.mark.llama
@pytest.mark.timeout(600)
def test_real_window_under_xvfb_fits_asks_follows_and_themes(xvfb, llama_server, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    csv, png = _inputs(tmp_path)
    env = {
        **os.environ,
        "DISPLAY": xvfb,
        "QT_QPA_PLATFORM": "xcb",
        "KANOA_DESKTOP_HOME": str(tmp_path / "home"),
        "XDG_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    env.pop("WAYLAND_DISPLAY", None)
    (tmp_path / "runtime").mkdir(mode=0o700)
    run = subprocess.run(
        [
            sys.executable,
            str(HERE / "xvfb_driver.py"),
            llama_server.api_base,
            str(csv),
            str(png),
            str(SHOTS),
        ],  # fmt: skip
        env=env,
        capture_output=True,
        text=True,
        timeout=560,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    r = json.loads((SHOTS / "result.json").read_text())

    assert r["screen"] == list(SCREEN)  # really on the 1,280 x 720 X screen
    assert {"gpuDock", "kbDock", "historyDock", "usageDock"} <= set(r["docks_open"])
    # Fits 1,280 x 720 with every dock open, and never resized itself when files loaded.
    assert r["size_before"] == list(SCREEN)
    assert r["size_after_load"] == list(SCREEN), r
    assert r["minimum_after_load"][0] <= SCREEN[0] and r["minimum_after_load"][1] <= SCREEN[1]
    assert r["frame_after_load"][0] <= SCREEN[0] and r["frame_after_load"][1] <= SCREEN[1]
    assert r["size_after_answers"] == list(SCREEN)

    # Ctrl+Enter from the question field asked (the turn started and ended) and answered.
    assert r["turns"] == ["done"], r["turns"]
    assert r["follow_up_shown"] and r["new_answer_chars"] > 10
    assert "error" not in r["state"].lower(), r["state"]
    # The newest answer is in view: the view overflowed and sits at its bottom, although
    # the user had scrolled to the top before asking.
    assert r["scroll_before_ask"][0] == 0 and r["scroll_before_ask"][1] > 0
    value, maximum = r["scroll"]
    assert maximum > 0 and value == maximum, r["scroll"]
    assert r["end_visible"]

    # Light and dark, as the X server shows them.
    assert r["light_shot"] == list(SCREEN) and r["dark_shot"] == list(SCREEN)
    light, dark = SHOTS / "light.png", SHOTS / "dark.png"
    x, y, w, h = r["window_geometry"]
    window_box = (x, y, x + w, y + h)
    assert _brightness(light, window_box) > 170
    assert _brightness(dark, window_box) < 90
    # The right-hand docks (GPU panel plots) follow too, not only the main widgets.
    right = (x + w - 300, y + 120, x + w - 10, y + h - 60)
    assert _brightness(light, right) - _brightness(dark, right) > 80
    # Labels styled with palette colours follow the scheme: the GPU panel's row names are
    # light text on dark (they were near-black on dark before style sheets were re-set).
    lx, ly, lw, lh = r["gpu_label_rect"]
    label = Image.open(dark).convert("L").crop((lx, ly, lx + lw, ly + lh))
    assert label.getextrema()[1] > 110, label.getextrema()
