"""The chart suite: the same seed and version give the same charts and questions (bytes
hashed, in this process and a fresh one), the truth is the data that drew the chart, and
the drawing depends on nothing outside matplotlib's own defaults and bundled fonts."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from kanoa_desktop.core.score.suite import (
    ALL_TEMPLATES,
    KINDS,
    SUITE_ID,
    SuiteError,
    chart_png,
    png_bytes,
    render,
    spec_digest,
    suite_items,
    trend_of,
)

ROOT = Path(__file__).resolve().parents[2]

# The suite's content (questions, truths, chart data) for seed 0, n 64: a change here
# changes every score, so it must come with a new SUITE_VERSION (and a new digest here).
GOLDEN_SPEC_DIGEST = {
    "charts-v1": "791db70ec46215da08dd8fac417874d4387fa9429b9dc49103a523ee4565946f",
}
# The PNG bytes of seed 0's first five charts per matplotlib release: a new release that
# moves pixels fails here, so the suite's images are never changed without anyone seeing.
GOLDEN_PNG_SHA256 = {
    ("charts-v1", "3.11.2"): "eb86bc17935dfe9c83c5feb0380f81265eca0bf6622bf2ac7de781d45bd52d53",
}


def _png_hash(seed: int, n: int) -> str:
    return hashlib.sha256(b"".join(render(i.chart) for i in suite_items(n, seed))).hexdigest()


def test_the_same_seed_gives_the_same_questions_and_the_known_digest():
    a, b = suite_items(64, 0), suite_items(64, 0)
    assert a == b
    assert spec_digest(a) == GOLDEN_SPEC_DIGEST[SUITE_ID]
    assert spec_digest(suite_items(64, 1)) != spec_digest(a)
    assert suite_items(16, 5) == suite_items(64, 5)[:16]  # a short run is a prefix


def test_the_same_seed_gives_the_same_png_bytes_here_and_in_a_fresh_interpreter(tmp_path):
    here = _png_hash(3, 6)
    assert _png_hash(3, 6) == here
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from tests.score.test_suite import _png_hash; print(_png_hash(3, 6))"
    )
    # Another hash seed and another matplotlib config folder with a hostile matplotlibrc:
    # neither may change a byte.
    rc = tmp_path / "mplconfig"
    rc.mkdir()
    (rc / "matplotlibrc").write_text(
        "font.family: serif\naxes.facecolor: black\nlines.linewidth: 7\ntext.antialiased: False\n"
        "savefig.dpi: 300\nfigure.dpi: 300\naxes.prop_cycle: cycler('color', ['k'])\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "MPLCONFIGDIR": str(rc)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, env=env,
        check=True, cwd=tmp_path,
    )  # fmt: skip
    assert out.stdout.strip() == here


def test_png_bytes_are_known_for_this_matplotlib_release():
    key = (SUITE_ID, matplotlib.__version__)
    assert key in GOLDEN_PNG_SHA256, (
        f"No known chart bytes for matplotlib {matplotlib.__version__}: look at the charts "
        "(docs/score-suite.png), then add the hash, and bump SUITE_VERSION if they changed."
    )
    assert _png_hash(0, 5) == GOLDEN_PNG_SHA256[key]


def test_a_png_has_no_metadata_and_stored_deflate_blocks():
    data = render(suite_items(1, 0)[0].chart)
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    assert chunks == [b"IHDR", b"IDAT", b"IEND"]
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGB" and not im.info.get("Software")
    pixels = np.arange(2 * 70000 * 3, dtype=np.uint32).astype(np.uint8).reshape(2, 70000, 3)
    with Image.open(io.BytesIO(png_bytes(pixels))) as im:  # several stored blocks
        assert (np.asarray(im) == pixels).all()


def test_the_cached_chart_has_the_same_pixels_and_is_reused():
    spec = suite_items(3, 9)[2].chart
    reference = np.asarray(Image.open(io.BytesIO(render(spec))))
    first = chart_png(spec)
    assert (np.asarray(Image.open(io.BytesIO(first))) == reference).all()
    assert len(first) < len(render(spec)) / 10  # compressed
    cached = list((Path(os.environ["KANOA_DESKTOP_HOME"]) / "cache" / "score-charts").iterdir())
    assert len(cached) == 1
    cached[0].write_bytes(b"damaged")  # a damaged cache entry is drawn again
    assert chart_png(spec) == first


def test_every_kind_and_template_comes_up_and_the_charts_vary():
    items = suite_items(200, 0)
    assert {i.chart.kind for i in items} == set(KINDS)
    assert {i.template for i in items} == set(ALL_TEMPLATES)
    assert Counter(i.template for i in suite_items(25, 0))["axis_range"] >= 1
    assert {i.chart.show_values for i in items} == {True, False}
    assert {i.chart.font for i in items} == {"sans", "serif", "mono"}
    assert len({i.chart.decimals for i in items}) >= 3
    assert len({i.chart.size for i in items}) >= 4
    assert {len(i.chart.series) for i in items if i.chart.kind == "line"} == {1, 2, 3}
    assert {i.kind for i in items} == {"number", "count", "label"}
    assert len({i.id for i in items}) == 200


def test_the_truth_is_the_data_that_drew_the_chart():
    for item in suite_items(200, 4):
        spec = item.chart
        fmt = spec.fmt
        values = [v for s in spec.series for v in s.values]
        if item.template == "axis_range":
            assert item.truth == fmt(spec.hi) and item.axis_span == spec.hi - spec.lo
        elif item.template == "max_value":
            assert item.truth == fmt(max(values))
        elif item.template == "n_series":
            assert item.truth == str(len(spec.series))
        elif item.template == "n_points":
            assert item.truth == str(len(spec.x))
        elif item.template == "trend":
            assert item.truth in ("increasing", "decreasing", "flat")
            assert any(trend_of(s.values, spec.x, spec.hi - spec.lo) == item.truth
                       for s in spec.series)  # fmt: skip
        elif item.template == "value_at":
            assert float(item.truth) in values
            assert any(c in item.question for c in spec.categories)
        elif item.template in ("argmax", "argmin"):
            assert item.truth in spec.categories and item.truth in item.choices
        elif item.template == "greater":
            assert item.truth in ("yes", "no")
        elif item.template == "difference":
            diffs = {round(a - b, spec.decimals) for s in spec.series for a in s.values
                     for b in s.values}  # fmt: skip
            assert float(item.truth) in diffs
        if item.kind == "number":
            assert item.axis_span and item.axis_span > 0
        assert all(spec.lo <= v <= spec.hi for v in values)
        assert item.question.strip() and item.hint


def test_the_fonts_are_matplotlibs_bundled_dejavu_files():
    from kanoa_desktop.core.score import suite

    for name in suite.FONTS:
        path = Path(suite._font_path(name))
        assert path.is_file() and path.name.startswith("DejaVu")
        assert Path(matplotlib.get_data_path()) in path.parents


def test_a_suite_size_out_of_range_is_a_clear_error():
    for n in (0, -3, 2001):
        with pytest.raises(SuiteError, match="1 to 2,000 items"):
            suite_items(n, 0)


def test_the_items_are_plain_data():
    item = suite_items(1, 0)[0]
    json.dumps([item.question, item.truth, item.kind, item.template, list(item.choices)])


def test_charts_are_drawn_in_a_drawing_process_and_here_when_none_can_run(monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    from kanoa_desktop.core.score import suite

    spec = suite_items(2, 12)[1].chart
    reference = np.asarray(Image.open(io.BytesIO(render(spec))))
    drawer = suite._drawer()
    assert drawer is not None
    pid = drawer.submit(os.getpid).result(timeout=60)
    assert pid != os.getpid()  # another process: its drawing never holds our GIL
    first = suite._draw_elsewhere(spec)
    assert (np.asarray(Image.open(io.BytesIO(first))) == reference).all()

    class Broken:
        def submit(self, *a, **k):
            raise BrokenProcessPool("the drawing process died")

        def shutdown(self, **k):
            pass

    monkeypatch.setattr(suite, "_DRAWER_FAILED", False)  # restored by undo()
    monkeypatch.setattr(suite, "_drawer", lambda: Broken())
    again = suite._draw_elsewhere(spec)  # drawn here instead, same pixels
    assert (np.asarray(Image.open(io.BytesIO(again))) == reference).all()
    assert suite._DRAWER_FAILED  # and from now on, without trying again
    monkeypatch.undo()
    monkeypatch.setenv("KANOA_SCORE_DRAW_HERE", "1")
    assert suite._drawer() is None
