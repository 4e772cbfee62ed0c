"""Benchmark table loading/summarising and figure preparation.

Run: ``python bench/bench_tables.py [--rows N]``. Prints a table; asserts nothing about time.

- load_table on N rows × 10 columns (8 float, 1 int, 1 text) against plain ``pd.read_csv``
  with the delimiter given (the floor: detection + notes are the overhead we add).
- summarise_table on that frame (1,500-token budget).
- quick_plot line of one column (min/max downsampling) against a naive full-resolution plot.
- prepare_figure on a 12-megapixel PNG plot (4000×3000) against plain Pillow
  open + thumbnail + PNG encode.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import best_of  # noqa: E402
from kanoa_desktop.core.inputs.figures import prepare_figure  # noqa: E402
from kanoa_desktop.core.inputs.tables import load_table, quick_plot, summarise_table  # noqa: E402


def _make_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"f{i}": rng.normal(size=rows).round(5) for i in range(8)})
    frame["count"] = rng.integers(0, 1000, rows)
    frame["site"] = rng.choice(["north", "south", "east", "west"], rows)
    frame.to_csv(path, index=False)


def _make_plot_png(path: Path) -> None:
    # A 12 MP line-art plot: white page, axes, a few thousand-point polylines.
    im = Image.new("RGB", (4000, 3000), "white")
    draw = ImageDraw.Draw(im)
    draw.line([(200, 2800), (3900, 2800)], fill="black", width=6)
    draw.line([(200, 100), (200, 2800)], fill="black", width=6)
    xs = np.linspace(200, 3900, 4000)
    for k, color in enumerate(("#1f77b4", "#ff7f0e", "#2ca02c")):
        ys = 1450 + 900 * np.sin(xs / (300 + 90 * k)) * np.cos(xs / 1700)
        draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=color, width=5)
    im.save(path, "PNG")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(
        f"machine: {platform.machine()} {platform.processor() or ''} "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, pandas {pd.__version__}"
    )
    rows: list[tuple[str, float, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "bench.csv"
        _make_csv(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 1e6
        print(f"CSV: {args.rows:,} rows × 10 columns, {size_mb:.0f} MB")

        base = best_of(lambda: pd.read_csv(csv_path, sep=","), args.repeat)
        ours = best_of(lambda: load_table(csv_path), args.repeat)
        rows.append(("load_table", ours, "pd.read_csv(sep=',')", base))

        table = load_table(csv_path)
        summ = best_of(lambda: summarise_table(table, token_budget=1500), args.repeat)
        desc = best_of(lambda: table.frame.describe(), args.repeat)
        rows.append(("summarise_table (1500 tok)", summ, "frame.describe()", desc))

        line = best_of(lambda: quick_plot(table, None, "f0", "line"), args.repeat)

        def naive_line() -> None:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            fig = Figure(figsize=(10.24, 6.4), dpi=100)
            FigureCanvasAgg(fig)
            fig.add_subplot().plot(table.frame["f0"].to_numpy(), linewidth=1)
            fig.savefig(io.BytesIO(), format="png")

        naive = best_of(naive_line, args.repeat)
        rows.append((f"quick_plot line ({args.rows:,} pts)", line, "matplotlib full series", naive))

        png_path = Path(tmp) / "plot12mp.png"
        _make_plot_png(png_path)

        def pillow_only() -> None:
            with Image.open(png_path) as im:
                im.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
                im.save(io.BytesIO(), "PNG")

        fig_t = best_of(lambda: prepare_figure(png_path), args.repeat)
        pil_t = best_of(pillow_only, args.repeat)
        fig = prepare_figure(png_path)
        rows.append(
            (
                f"prepare_figure 12 MP PNG -> {fig.sent_size[0]}x{fig.sent_size[1]} "
                f"{fig.format_label} {len(fig.data) // 1024} KB",
                fig_t,
                "Pillow open+thumbnail+PNG",
                pil_t,
            )
        )

    width = max(len(r[0]) for r in rows)
    bwidth = max(len(r[2]) for r in rows)
    print(f"\n{'operation':<{width}}  {'time s':>8}  {'baseline':<{bwidth}}  {'base s':>8}  ratio")
    for name, t, bname, b in rows:
        print(f"{name:<{width}}  {t:8.3f}  {bname:<{bwidth}}  {b:8.3f}  {t / b:5.2f}")
    print(f"\n(best of {args.repeat}; ratio = ours / baseline)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
