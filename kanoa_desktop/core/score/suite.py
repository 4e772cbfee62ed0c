"""The chart suite: seeded, versioned charts with questions whose answers come from the data.

``suite_items(n, seed)`` gives the first ``n`` items of suite :data:`SUITE_ID` for ``seed``
(``n = 16`` is a prefix of ``n = 64``); ``render(item.chart)`` draws one as PNG bytes. No Qt:
drawing is CPU work, run it off the GUI thread.

What a caller may rely on:

- **Same seed and suite version, same items on every machine.** Every random choice comes
  from :class:`random.Random` seeded per item from ``sha256(suite, seed, index)`` and only its
  ``random()`` method is used (the one the standard library promises to keep stable).
  Questions and truths are plain data (:func:`spec_digest` hashes them).
- **Same PNG bytes** for the same items with the same matplotlib build: the figure is drawn
  with matplotlib's Agg canvas at a fixed dpi under matplotlib's own defaults (a user's
  matplotlibrc is ignored), every text in matplotlib's bundled DejaVu fonts by file (never
  a system font), no metadata; the PNG is written here with uncompressed deflate blocks, so
  no zlib build can change a byte. A new matplotlib release may move pixels: the test
  suite's golden hash says so, and reports name the matplotlib version beside the suite.
- **The truth is the data that drew the chart.** Axis ticks are set explicitly, so "the
  highest value on the axis" is data too; :attr:`ScoreItem.axis_span` is the value axis'
  span for the 1 % tolerance floor.

Kinds: vertical, horizontal and grouped bars, lines with 1-3 series, scatter; each with or
without printed values; scales from hundredths to thousands; three DejaVu faces; several
sizes. Templates: value at x, highest and lowest label, maximum value, trend, number of
series, axis range (its top), is A greater than B, A - B, number of points.

Changing anything that changes an item (vocabulary, ranges, templates, drawing) must bump
:data:`SUITE_VERSION`: scores of different versions are not comparable.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import struct
import sys
import threading
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kanoa_desktop.core.score.items import HINTS, ScoreItem

log = logging.getLogger(__name__)

SUITE_NAME = "charts"
SUITE_VERSION = 1
SUITE_ID = f"{SUITE_NAME}-v{SUITE_VERSION}"
#: The suite's numeric tolerance (relative), beside 1 % of the axis span.
SUITE_TOLERANCE = 0.05
DPI = 100
MAX_ITEMS = 2000

KINDS = ("vbar", "hbar", "gbar", "line", "scatter")
KIND_NAMES = {
    "vbar": "vertical bars",
    "hbar": "horizontal bars",
    "gbar": "grouped bars",
    "line": "line chart",
    "scatter": "scatter plot",
}
TEMPLATES: dict[str, tuple[str, ...]] = {
    "vbar": ("value_at", "argmax", "argmin", "max_value", "axis_range", "greater", "difference"),
    "hbar": ("value_at", "argmax", "argmin", "max_value", "axis_range", "greater", "difference"),
    "gbar": ("value_at", "argmax", "n_series", "greater", "difference", "axis_range"),
    "line": ("value_at", "trend", "n_series", "max_value", "argmax", "axis_range"),
    "scatter": ("trend", "max_value", "n_points", "axis_range"),
}
ALL_TEMPLATES = tuple(sorted({t for ts in TEMPLATES.values() for t in ts}))

# Vocabulary: (category axis name, labels). Several words per set, so questions vary.
CATEGORY_SETS = (
    ("Site", ("North", "South", "East", "West", "Central", "Coast", "Valley", "Ridge")),
    ("Sample", ("Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta", "Theta", "Kappa")),
    ("Month", ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug")),
    ("Species", ("Oak", "Pine", "Birch", "Maple", "Ash", "Willow", "Elm", "Cedar")),
    ("Lab", ("Lab A", "Lab B", "Lab C", "Lab D", "Lab E", "Lab F", "Lab G", "Lab H")),
)
SERIES_SETS = (
    ("Control", "Treatment A", "Treatment B"),
    ("Wild type", "Mutant", "Rescue"),
    ("Sensor 1", "Sensor 2", "Sensor 3"),
    ("Urban", "Rural", "Coastal"),
)
MEASURES = (
    "Yield (t/ha)", "Expression (a.u.)", "Count", "Concentration (mg/L)", "Biomass (g)",
    "Signal (mV)", "Rate (per hour)", "Area (km²)",
)  # fmt: skip
TITLES = (
    "Field survey", "Assay results", "Monthly totals", "Growth experiment", "Sensor readings",
    "Site comparison", "Quarterly report", "Pilot study",
)  # fmt: skip
# (decimals, factor): the values are integers 5..95 times the factor.
SCALES = ((0, 1.0), (0, 10.0), (1, 0.1), (0, 100.0), (2, 0.01), (0, 1000.0))
FONTS = {
    "sans": "DejaVuSans.ttf",
    "serif": "DejaVuSerif.ttf",
    "mono": "DejaVuSansMono.ttf",
}
SIZES = ((6.4, 4.0), (5.6, 4.2), (7.2, 4.0), (4.8, 4.8), (6.0, 3.6))
FONT_SIZES = (8.0, 9.0, 10.0, 11.0)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


class SuiteError(ValueError):
    """The suite cannot be made as asked (n out of range)."""


# ---------------------------------------------------------------- the data


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class ChartSpec:
    """Everything :func:`render` draws, as plain data. ``categories`` label the bars (or
    the line's x ticks); ``x`` are the line's or scatter's x values; the value axis runs
    ``lo``..``hi`` with ticks every ``step``; values print with ``decimals``."""

    kind: str
    title: str
    category_label: str
    value_label: str
    categories: tuple[str, ...]
    x: tuple[float, ...]
    series: tuple[Series, ...]
    lo: float
    hi: float
    step: float
    decimals: int
    show_values: bool
    font: str
    font_size: float
    size: tuple[float, float]

    @property
    def legend(self) -> bool:
        return len(self.series) > 1

    def fmt(self, v: float) -> str:
        return f"{v:.{self.decimals}f}"


class _Rng:
    """Choices from ``random.Random.random()`` alone (the stable part of the module)."""

    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)

    def random(self) -> float:
        return self._r.random()

    def randint(self, a: int, b: int) -> int:
        return min(b, a + int(self._r.random() * (b - a + 1)))

    def choice(self, seq: Sequence):
        return seq[self.randint(0, len(seq) - 1)]

    def sample(self, seq: Sequence, k: int) -> list:
        pool = list(seq)
        out = []
        for _ in range(k):
            out.append(pool.pop(self.randint(0, len(pool) - 1)))
        return out


def _item_seed(seed: int, index: int) -> int:
    digest = hashlib.sha256(f"{SUITE_ID}:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _spread(rng: _Rng, k: int, lo: int = 5, hi: int = 95, gap: int = 4) -> list[int]:
    """``k`` distinct integers in lo..hi, each pair at least ``gap`` apart (so the highest
    and the lowest are clear), in random order."""
    while True:
        values = [rng.randint(lo, hi) for _ in range(k)]
        s = sorted(values)
        if all(b - a >= gap for a, b in zip(s, s[1:], strict=False)):
            return values


def _axis(max_int: int) -> tuple[int, int]:
    """(top, step) in integer units for values up to ``max_int``: 5 or 6 ticks."""
    step = 10 if max_int <= 55 else 20
    top = int(math.ceil((max_int + 3) / step)) * step
    return top, step


def _trend_values(rng: _Rng, trend: str, k: int) -> list[int]:
    if trend == "flat":
        level = rng.randint(30, 70)
        return [level + rng.randint(-2, 2) for _ in range(k)]
    steps = [rng.randint(3, 9) for _ in range(k - 1)]
    total = sum(steps)
    start = rng.randint(5, max(5, 95 - total)) if total < 90 else 5
    values = [start]
    for s in steps:
        values.append(min(95, values[-1] + s))
    if values[-1] - values[0] < 20 or len(set(values)) != k:  # cut by the ceiling: redo
        return _trend_values(rng, trend, k)
    return values if trend == "increasing" else values[::-1]


def _spec(rng: _Rng, kind: str) -> ChartSpec:
    cat_name, vocab = rng.choice(CATEGORY_SETS)
    decimals, factor = rng.choice(SCALES)
    font = rng.choice(tuple(FONTS))
    font_size = rng.choice(FONT_SIZES)
    size = rng.choice(SIZES)
    title = rng.choice(TITLES)
    measure = rng.choice(MEASURES)
    show_values = rng.random() < 0.5
    categories: tuple[str, ...] = ()
    x: tuple[float, ...] = ()
    if kind in ("vbar", "hbar"):
        k = rng.randint(4, 7)
        categories = tuple(rng.sample(vocab, k))
        ints = [_spread(rng, k)]
        names = ("",)
    elif kind == "gbar":
        k = rng.randint(3, 5)
        categories = tuple(rng.sample(vocab, k))
        m = rng.randint(2, 3)
        names = tuple(rng.choice(SERIES_SETS)[:m])
        ints = [_spread(rng, k, gap=3) for _ in range(m)]
    elif kind == "line":
        k = rng.randint(6, 10)
        start = rng.randint(1995, 2015)
        x = tuple(float(start + i) for i in range(k))
        categories = tuple(str(start + i) for i in range(k))
        cat_name = "Year"
        m = rng.randint(1, 3)
        names = tuple(rng.choice(SERIES_SETS)[:m]) if m > 1 else ("",)
        trends = [rng.choice(("increasing", "decreasing", "flat")) for _ in range(m)]
        ints = [_trend_values(rng, t, k) for t in trends]
    else:  # scatter
        k = rng.randint(8, 14)
        cat_name = rng.choice(("Dose (mg)", "Temperature (°C)", "Depth (m)", "Age (days)"))
        xs = sorted(rng.sample(range(2, 99), k))
        x = tuple(float(v) for v in xs)
        trend = rng.choice(("increasing", "decreasing", "flat"))
        if trend == "flat":
            level = rng.randint(35, 65)
            ys = [level + rng.randint(-4, 4) for _ in xs]
        else:
            slope = (rng.randint(40, 80) / 100) * (1 if trend == "increasing" else -1)
            base = 10 if slope > 0 else 90
            ys = [max(2, min(98, round(base + slope * v + rng.randint(-6, 6)))) for v in xs]
        names = ("",)
        ints = [ys]
    max_int = max(max(v) for v in ints)
    top, step = _axis(max_int)
    series = tuple(
        Series(name, tuple(round(v * factor, decimals) for v in vals))
        for name, vals in zip(names, ints, strict=True)
    )
    return ChartSpec(
        kind=kind,
        title=title,
        category_label=cat_name,
        value_label=measure,
        categories=categories,
        x=x,
        series=series,
        lo=0.0,
        hi=round(top * factor, decimals),
        step=round(step * factor, decimals),
        decimals=decimals,
        show_values=show_values,
        font=font,
        font_size=font_size,
        size=size,
    )


def trend_of(values: Sequence[float], x: Sequence[float], span: float) -> str:
    """The trend the data show: the least-squares slope over the x range, as a share of
    the axis span: above 15 % increasing, below -15 % decreasing, within 5 % flat; ""
    between (the generator never asks about those)."""
    n = len(values)
    mx, my = sum(x) / n, sum(values) / n
    sxx = sum((a - mx) ** 2 for a in x)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, values, strict=True)) / sxx
    change = slope * (max(x) - min(x)) / span
    if change > 0.15:
        return "increasing"
    if change < -0.15:
        return "decreasing"
    if abs(change) < 0.05:
        return "flat"
    return ""


def _question(rng: _Rng, spec: ChartSpec, template: str) -> tuple[str, str, str, tuple, str]:
    """(question, truth, kind, choices, hint key) for ``template`` on ``spec``, or raises
    LookupError when the chart cannot carry it (the caller draws another chart)."""
    axis = "x" if spec.kind == "hbar" else "y"
    fmt = spec.fmt
    span = spec.hi - spec.lo
    cats = spec.categories
    if template == "axis_range":
        return (
            f"The {axis} axis runs from {fmt(spec.lo)} up to which value? What is the "
            f"highest value labelled on the {axis} axis?",
            fmt(spec.hi), "number", (), "number",
        )  # fmt: skip
    if template == "n_series":
        return (
            "How many data series does this chart show?",
            str(len(spec.series)), "count", (), "count",
        )  # fmt: skip
    if template == "n_points":
        return (
            "How many points are plotted?",
            str(len(spec.x)), "count", (), "count",
        )  # fmt: skip
    if template == "trend":
        s = rng.choice(spec.series)
        xs = spec.x
        truth = trend_of(s.values, xs, span)
        if not truth:
            raise LookupError("no clear trend")
        of = f" of {s.name}" if s.name else ""
        what = "the points" if spec.kind == "scatter" else f"the line{of}"
        return (
            f"Is the overall trend of {what} increasing, decreasing or flat?",
            truth, "label", ("increasing", "decreasing", "flat"), "trend",
        )  # fmt: skip
    if template == "max_value":
        best = max(v for s in spec.series for v in s.values)
        where = "among the points" if spec.kind == "scatter" else "in the chart"
        return (f"What is the largest value shown {where}?", fmt(best), "number", (), "number")
    # The rest name one series (and, for bars and lines, categories).
    s = rng.choice(spec.series)
    in_s = f" for {s.name}" if s.name else ""
    values = dict(zip(cats, s.values, strict=True))
    if template == "value_at":
        c = rng.choice(cats)
        if spec.kind == "line":
            return (
                f"What is the value{in_s} in {c}?", fmt(values[c]), "number", (), "number"
            )  # fmt: skip
        return (f"What is the value of {c}{in_s}?", fmt(values[c]), "number", (), "number")
    if template in ("argmax", "argmin"):
        pick = max if template == "argmax" else min
        best = pick(cats, key=lambda c: values[c])
        others = sorted(values.values())
        if others.count(values[best]) > 1:
            raise LookupError("tie")
        if spec.kind == "line":
            return (
                f"In which year is the value{in_s} highest?",
                best, "label", cats, "label",
            )  # fmt: skip
        word = "highest" if template == "argmax" else "lowest"
        return (
            f"Which {spec.category_label.lower()} has the {word} value{in_s}?",
            best, "label", cats, "label",
        )  # fmt: skip
    a, b = rng.sample(cats, 2)
    if abs(values[a] - values[b]) < 0.05 * span:
        raise LookupError("too close to tell by eye")
    if template == "greater":
        return (
            f"Is the value of {a} greater than the value of {b}{in_s}?",
            "yes" if values[a] > values[b] else "no", "label", ("yes", "no"), "yesno",
        )  # fmt: skip
    if template == "difference":
        return (
            f"What is the value of {a} minus the value of {b}{in_s}?",
            fmt(round(values[a] - values[b], spec.decimals)), "number", (), "number",
        )  # fmt: skip
    raise LookupError(f"unknown template {template}")


def make_item(seed: int, index: int) -> ScoreItem:
    """Item ``index`` of the suite for ``seed`` (the same on every machine)."""
    rng = _Rng(_item_seed(seed, index))
    kind = KINDS[index % len(KINDS)]
    templates = TEMPLATES[kind]
    # Templates in turn (not drawn), so a short run still covers them all.
    template = templates[(index // len(KINDS) + seed) % len(templates)]
    for _ in range(50):
        spec = _spec(rng, kind)
        try:
            question, truth, answer_kind, choices, hint = _question(rng, spec, template)
        except LookupError:
            continue
        return ScoreItem(
            id=f"{SUITE_ID}/{seed}/{index:03d}",
            index=index,
            question=question,
            truth=truth,
            kind=answer_kind,
            template=template,
            tolerance=SUITE_TOLERANCE,
            axis_span=spec.hi - spec.lo if answer_kind == "number" else None,
            choices=tuple(choices),
            hint=HINTS[hint],
            chart=spec,
            source=KIND_NAMES[kind] + (", values printed" if spec.show_values else ""),
        )
    raise RuntimeError(f"no chart fits {template} for item {index}")  # never seen: a bug


def check_size(n: int) -> None:
    if not 1 <= n <= MAX_ITEMS:
        raise SuiteError(f"The suite takes 1 to {MAX_ITEMS:,} items; {n} were asked for.")


def suite_items(n: int, seed: int = 0) -> list[ScoreItem]:
    """The first ``n`` items of the suite for ``seed``. Raises :class:`SuiteError` for n
    out of 1..MAX_ITEMS."""
    check_size(n)
    return [make_item(seed, i) for i in range(n)]


def spec_digest(items: Sequence[ScoreItem]) -> str:
    """sha256 of the items' questions, truths and chart data (not the pixels)."""
    blob = json.dumps(
        [
            [i.id, i.question, i.truth, i.kind, i.template, i.axis_span, list(i.choices),
             asdict(i.chart) if i.chart is not None else None]
            for i in items
        ],
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()


# ---------------------------------------------------------------- drawing

# rcParams are global: charts are drawn one at a time under matplotlib's own defaults.
_DRAW_LOCK = threading.Lock()


def renderer_name() -> str:
    """What draws the charts, for reports: ``matplotlib 3.11.2``."""
    import matplotlib

    return f"matplotlib {matplotlib.__version__}"


def _font_path(name: str) -> str:
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FONTS[name])


def render(spec: ChartSpec) -> bytes:
    """The chart as PNG bytes (RGB, 8 bits, stored deflate: see the module docstring)."""
    return png_bytes(_pixels(spec))


def _pixels(spec: ChartSpec):
    import matplotlib

    with _DRAW_LOCK:
        if _rc_is_default():
            return _draw(spec)
        with matplotlib.rc_context():  # a user's matplotlibrc: drawn under the defaults
            matplotlib.rcdefaults()
            return _draw(spec)


def _rc_is_default() -> bool:
    import matplotlib

    rc, default = matplotlib.rcParams, matplotlib.rcParamsDefault
    return all(rc[k] == v for k, v in default.items() if k in rc)


def chart_png(spec: ChartSpec) -> bytes:
    """The chart as a compressed PNG with the same pixels as :func:`render`, from the
    cache when it was drawn before (a folder under the cache directory, by the spec's
    content and the renderer; about 25 KB a chart). What the scorer sends.

    A chart not in the cache is drawn in a drawing process (:func:`_drawer`), so the
    drawing never holds this process's GIL (a window's GUI thread stays smooth); where no
    process can be started it is drawn here."""
    from kanoa_desktop.core.config import paths

    blob = json.dumps([SUITE_ID, renderer_name(), asdict(spec)], sort_keys=True).encode()
    name = hashlib.sha256(blob).hexdigest()
    folder = paths.cache_dir() / "score-charts"
    cached = folder / f"{name}.png"
    try:
        data = cached.read_bytes()
        if data.startswith(b"\x89PNG"):
            return data
    except OSError:
        pass
    data = _draw_elsewhere(spec)
    try:  # a cache that cannot be written is no cache, not an error
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_bytes(data)
        tmp.replace(cached)
    except OSError:
        pass
    return data


def compressed_png(spec: ChartSpec) -> bytes:
    """The chart drawn and deflated (zlib level 6, which releases the GIL): the pixels of
    :func:`render`, about a fortieth of its bytes."""
    return png_bytes(_pixels(spec), level=6)


# Up to two processes draw the charts a run needs (spawned on first use, kept for the
# session): drawing runs beside the questions without sharing this process's GIL.
_DRAWER: Any = None
_DRAWER_LOCK = threading.Lock()
_DRAWER_FAILED = False  # once a drawing process failed, charts are drawn here
DRAW_TIMEOUT_S = 120.0


def _drawer():
    """The drawing processes (a ProcessPoolExecutor of up to two, spawned: never a fork of
    a process with threads and a GUI), or None where none can run: a frozen bundle (its
    entry point is the app, not Python), ``KANOA_SCORE_DRAW_HERE=1``, or after one failed
    to start (a main script without an ``if __name__ == "__main__"`` guard cannot spawn)."""
    global _DRAWER
    if getattr(sys, "frozen", False) or os.environ.get("KANOA_SCORE_DRAW_HERE") == "1":
        return None
    if _DRAWER_FAILED:
        return None
    with _DRAWER_LOCK:
        if _DRAWER is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            _DRAWER = ProcessPoolExecutor(
                max_workers=max(1, min(2, (os.cpu_count() or 1) - 1)),
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_background,
            )
            # Ended while the interpreter is whole: left to the garbage collector at
            # exit, its manager's callback runs after its modules are gone (an
            # "Exception ignored" on stderr at the end of every command and window).
            atexit.unregister(stop_drawing)  # once, however often it is started
            atexit.register(stop_drawing)
        return _DRAWER


def _background() -> None:
    """In a drawing process: a lower CPU priority, so a window (and the questions) get the
    CPU first when the machine is busy; charts are background work."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(10)


def _draw_elsewhere(spec: ChartSpec) -> bytes:
    from concurrent.futures import BrokenExecutor

    global _DRAWER, _DRAWER_FAILED
    drawer = _drawer()
    if drawer is not None:
        try:
            return drawer.submit(compressed_png, spec).result(timeout=DRAW_TIMEOUT_S)
        except (BrokenExecutor, OSError, RuntimeError, TimeoutError) as exc:
            log.warning("chart drawing process failed (%s); drawing here from now on", exc)
            with _DRAWER_LOCK:
                _DRAWER_FAILED = True
                if _DRAWER is drawer:
                    _DRAWER = None
            drawer.shutdown(wait=False, cancel_futures=True)
    return compressed_png(spec)


def stop_drawing() -> None:
    """End the drawing process (a new one starts when a chart is needed again)."""
    global _DRAWER
    with _DRAWER_LOCK:
        drawer, _DRAWER = _DRAWER, None
    if drawer is not None:
        drawer.shutdown(wait=True, cancel_futures=True)


def _draw(spec: ChartSpec):
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    fp = FontProperties(fname=_font_path(spec.font), size=spec.font_size)
    small = FontProperties(fname=_font_path(spec.font), size=spec.font_size - 1)
    title = FontProperties(fname=_font_path(spec.font), size=spec.font_size + 2)
    fig = Figure(figsize=spec.size, dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor("white")
    ax.set_axisbelow(True)
    ticks = [spec.lo + i * spec.step for i in range(round((spec.hi - spec.lo) / spec.step) + 1)]
    tick_labels = [spec.fmt(t) for t in ticks]
    n_series = len(spec.series)
    if spec.kind in ("vbar", "hbar", "gbar"):
        k = len(spec.categories)
        width = 0.8 / n_series
        for j, s in enumerate(spec.series):
            pos = [i - 0.4 + width * (j + 0.5) for i in range(k)]
            colour = PALETTE[j] if n_series > 1 else PALETTE[0]
            if spec.kind == "hbar":
                ax.barh(pos, s.values, height=width, color=colour, label=s.name or None)
            else:
                ax.bar(pos, s.values, width=width, color=colour, label=s.name or None)
            if spec.show_values:
                for p, v in zip(pos, s.values, strict=True):
                    if spec.kind == "hbar":
                        ax.text(v + spec.step * 0.05, p, spec.fmt(v), va="center",
                                ha="left", fontproperties=small)  # fmt: skip
                    else:
                        ax.text(p, v + spec.step * 0.05, spec.fmt(v), va="bottom",
                                ha="center", fontproperties=small)  # fmt: skip
        cat_ticks = list(range(k))
        if spec.kind == "hbar":
            ax.set_yticks(cat_ticks, list(spec.categories), fontproperties=fp)
            ax.set_xticks(ticks, tick_labels, fontproperties=fp)
            ax.set_xlim(spec.lo, spec.hi)
            ax.set_ylim(-0.6, k - 0.4)
            ax.invert_yaxis()
            ax.grid(axis="x", color="#dddddd")
            ax.set_xlabel(spec.value_label, fontproperties=fp)
            ax.set_ylabel(spec.category_label, fontproperties=fp)
        else:
            ax.set_xticks(cat_ticks, list(spec.categories), fontproperties=fp)
            ax.set_yticks(ticks, tick_labels, fontproperties=fp)
            ax.set_ylim(spec.lo, spec.hi)
            ax.set_xlim(-0.6, k - 0.4)
            ax.grid(axis="y", color="#dddddd")
            ax.set_xlabel(spec.category_label, fontproperties=fp)
            ax.set_ylabel(spec.value_label, fontproperties=fp)
    elif spec.kind == "line":
        for j, s in enumerate(spec.series):
            ax.plot(spec.x, s.values, color=PALETTE[j], marker="o", markersize=4,
                    linewidth=1.8, label=s.name or None)  # fmt: skip
            if spec.show_values:
                for xv, v in zip(spec.x, s.values, strict=True):
                    ax.text(xv, v + spec.step * 0.08, spec.fmt(v), ha="center", va="bottom",
                            fontproperties=small)  # fmt: skip
        ax.set_xticks(list(spec.x), list(spec.categories), fontproperties=fp)
        ax.set_yticks(ticks, tick_labels, fontproperties=fp)
        ax.set_ylim(spec.lo, spec.hi)
        ax.set_xlim(spec.x[0] - 0.5, spec.x[-1] + 0.5)
        ax.grid(color="#e5e5e5")
        ax.set_xlabel(spec.category_label, fontproperties=fp)
        ax.set_ylabel(spec.value_label, fontproperties=fp)
        if len(spec.categories) > 8:
            for label in ax.get_xticklabels():
                label.set_rotation(45)
    else:  # scatter
        (s,) = spec.series
        ax.scatter(spec.x, s.values, color=PALETTE[0], s=22)
        if spec.show_values:
            for xv, v in zip(spec.x, s.values, strict=True):
                ax.text(xv + 1.2, v, spec.fmt(v), ha="left", va="center", fontproperties=small)
        xticks = list(range(0, 101, 20))
        ax.set_xticks(xticks, [str(t) for t in xticks], fontproperties=fp)
        ax.set_yticks(ticks, tick_labels, fontproperties=fp)
        ax.set_xlim(0, 100)
        ax.set_ylim(spec.lo, spec.hi)
        ax.grid(color="#e5e5e5")
        ax.set_xlabel(spec.category_label, fontproperties=fp)
        ax.set_ylabel(spec.value_label, fontproperties=fp)
    if n_series > 1:
        ax.legend(prop=small, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(spec.title, fontproperties=title)
    fig.subplots_adjust(**_margins(spec))  # fixed margins: tight_layout costs a third
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


def _margins(spec: ChartSpec) -> dict[str, float]:
    """Figure margins that fit the tick labels, axis labels and legend (in points: a
    DejaVu glyph is at most 0.62 em wide here)."""
    w_pt, h_pt = spec.size[0] * 72, spec.size[1] * 72
    fs = spec.font_size
    value_width = max(len(spec.fmt(spec.hi)), len(spec.fmt(spec.lo)))
    if spec.kind == "hbar":
        left_chars = max(len(c) for c in spec.categories)
    else:
        left_chars = value_width
    left = (left_chars * 0.62 * fs + 2.6 * fs + 10) / w_pt
    # The last tick label of a numeric x axis is centred on the axis' end: half of it
    # stands out on the right.
    last_x = {"hbar": len(spec.fmt(spec.hi)), "scatter": 3}.get(spec.kind, 0)
    right = max(12.0, last_x * 0.62 * fs / 2 + 6) / w_pt
    if len(spec.series) > 1:
        names = max(len(s.name) for s in spec.series)
        right = ((names * 0.62 + 3.5) * (fs - 1) + 8) / w_pt
    bottom = (3.4 * fs + 8) / h_pt
    if spec.kind == "line" and len(spec.categories) > 8:
        bottom = (5.2 * fs + 8) / h_pt
    top = (2.6 * fs + 8) / h_pt
    return {"left": left, "right": 1 - right, "bottom": bottom, "top": 1 - top}


def png_bytes(rgb, level: int = 0) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` (an H x W x 3 uint8 array) with no metadata. Level 0
    (the default) deflates in stored (uncompressed) blocks: the bytes depend on the pixels
    alone. Another level compresses with zlib (smaller; bytes may vary with zlib's build)."""
    import numpy as np

    h, w, _ = rgb.shape
    raw = np.empty((h, 1 + w * 3), dtype=np.uint8)
    raw[:, 0] = 0  # filter type None on every row
    raw[:, 1:] = rgb.reshape(h, w * 3)
    if level:
        idat = zlib.compress(raw.tobytes(), level)
        return _png_file(w, h, idat)
    data = memoryview(raw.tobytes())
    parts = [b"\x78\x01"]
    block = 65535
    for start in range(0, len(data), block):
        chunk = data[start : start + block]
        final = start + block >= len(data)
        parts.append(bytes([1 if final else 0]))
        parts.append(struct.pack("<HH", len(chunk), len(chunk) ^ 0xFFFF))
        parts.append(chunk)
    parts.append(struct.pack(">I", zlib.adler32(data)))
    idat = b"".join(parts)
    return _png_file(w, h, idat)


def _png_file(w: int, h: int, idat: bytes) -> bytes:
    def chunk_of(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(body, zlib.crc32(kind))
        return b"".join((struct.pack(">I", len(body)), kind, body, struct.pack(">I", crc)))

    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk_of(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)),
            chunk_of(b"IDAT", idat),
            chunk_of(b"IEND", b""),
        )
    )


__all__ = [
    "ALL_TEMPLATES",
    "DPI",
    "KINDS",
    "KIND_NAMES",
    "MAX_ITEMS",
    "SUITE_ID",
    "SUITE_NAME",
    "SUITE_TOLERANCE",
    "SUITE_VERSION",
    "TEMPLATES",
    "ChartSpec",
    "Series",
    "SuiteError",
    "chart_png",
    "check_size",
    "compressed_png",
    "make_item",
    "png_bytes",
    "render",
    "renderer_name",
    "spec_digest",
    "stop_drawing",
    "suite_items",
    "trend_of",
]
