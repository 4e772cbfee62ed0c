"""Regenerate the endpoint benchmark's sample figures (run once; the PNGs are committed).

``python resources/bench/make_figures.py`` writes three PNGs next to this file:

- ``photo.png``: a photo-like scene (sky gradient, sun, hills, grainy noise), the stand-in
  for kanoa's "boardwalk photo" task;
- ``complex_plot.png``: a four-panel scientific figure (spectra with error bands, a heat
  map with colour bar, a log-log scatter with fit, a histogram with an inset);
- ``data_chart.png``: a grouped bar chart with error bars and annotations to interpret.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

HERE = Path(__file__).resolve().parent


def photo(path: Path) -> None:
    rng = np.random.default_rng(1)
    h, w = 480, 720
    y = np.linspace(0, 1, h)[:, None]
    x = np.linspace(0, 1, w)[None, :]
    sky = np.stack([0.35 + 0.4 * y, 0.55 + 0.3 * y, 0.95 - 0.2 * y], axis=-1) * np.ones((h, w, 1))
    sun = np.exp(-(((x - 0.72) ** 2 + (y - 0.22) ** 2) / 0.004))[..., None]
    img = sky + sun * np.array([1.0, 0.85, 0.4])
    hill1 = 0.62 + 0.06 * np.sin(x * 9) + 0.03 * np.sin(x * 23)
    hill2 = 0.75 + 0.05 * np.cos(x * 6 + 1)
    img = np.where((y > hill1)[..., None], np.array([0.25, 0.45, 0.2]) * (1.2 - 0.5 * y[..., None]), img)
    img = np.where((y > hill2)[..., None], np.array([0.45, 0.35, 0.2]) * (1.3 - 0.6 * y[..., None]), img)
    # Boardwalk: converging planks toward the horizon.
    planks = (np.abs(x - 0.5) < (y - 0.7) * 0.6) & (y > 0.7)
    stripes = (np.floor((1 / np.maximum(y - 0.68, 0.01)) * 2) % 2)[..., None]
    img = np.where(planks[..., None], np.array([0.6, 0.45, 0.3]) * (0.8 + 0.2 * stripes), img)
    img = np.clip(img + rng.normal(0, 0.025, img.shape), 0, 1)
    fig = Figure(figsize=(w / 100, h / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(img)
    ax.axis("off")
    fig.savefig(path, dpi=100)
    # Photos are noisy, so PNG compresses them badly: a 256-colour palette keeps the file
    # small (the grain survives as dithering) while staying a PNG.
    from PIL import Image

    with Image.open(path) as im:
        im.convert("RGB").quantize(256).save(path, optimize=True)


def complex_plot(path: Path) -> None:
    rng = np.random.default_rng(2)
    fig = Figure(figsize=(9, 6.5), dpi=100, layout="constrained")
    axs = fig.subplots(2, 2)
    wl = np.linspace(400, 700, 300)
    for k, (c, lab) in enumerate((("C0", "control"), ("C1", "treated"), ("C2", "recovery"))):
        mu = 520 + 40 * k
        s = np.exp(-((wl - mu) ** 2) / (2 * 25**2)) * (1 - 0.2 * k) + rng.normal(0, 0.01, wl.size)
        axs[0, 0].plot(wl, s, c, label=lab)
        axs[0, 0].fill_between(wl, s - 0.05, s + 0.05, color=c, alpha=0.2)
    axs[0, 0].set(xlabel="wavelength (nm)", ylabel="absorbance (a.u.)", title="A  spectra")
    axs[0, 0].legend(fontsize=8)
    gx, gy = np.meshgrid(np.linspace(-3, 3, 80), np.linspace(-3, 3, 80))
    field = np.sin(gx * 1.5) * np.cos(gy) + 0.3 * gx
    im = axs[0, 1].imshow(field, cmap="viridis", origin="lower", extent=(-3, 3, -3, 3))
    fig.colorbar(im, ax=axs[0, 1], label="potential (mV)")
    axs[0, 1].set(title="B  field map", xlabel="x (mm)", ylabel="y (mm)")
    xs = 10 ** rng.uniform(0, 3, 200)
    ys = 2.5 * xs**0.75 * 10 ** rng.normal(0, 0.1, 200)
    axs[1, 0].loglog(xs, ys, ".", alpha=0.6)
    axs[1, 0].loglog(np.sort(xs), 2.5 * np.sort(xs) ** 0.75, "k--", label="fit: slope 0.75")
    axs[1, 0].set(title="C  scaling", xlabel="body mass (g)", ylabel="metabolic rate (W)")
    axs[1, 0].legend(fontsize=8)
    data = np.concatenate([rng.normal(0, 1, 800), rng.normal(3.5, 0.6, 300)])
    axs[1, 1].hist(data, bins=40, color="C3", alpha=0.8)
    axs[1, 1].set(title="D  distribution", xlabel="z-score", ylabel="count")
    inset = axs[1, 1].inset_axes((0.62, 0.55, 0.35, 0.4))
    inset.boxplot([data[:800], data[800:]])
    inset.tick_params(labelsize=6)
    fig.suptitle("Figure 3. Treatment response across four assays")
    fig.savefig(path, dpi=100)


def data_chart(path: Path) -> None:
    rng = np.random.default_rng(3)
    sites = ["North", "South", "East", "West", "Central"]
    years = ["2022", "2023", "2024"]
    fig = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    width = 0.25
    base = np.array([42, 35, 51, 28, 46], dtype=float)
    for k, year in enumerate(years):
        vals = base * (1 + 0.12 * k) + rng.normal(0, 3, base.size)
        err = rng.uniform(2, 6, base.size)
        bars = ax.bar(np.arange(5) + (k - 1) * width, vals, width, yerr=err, capsize=3, label=year)
        if k == 2:
            ax.bar_label(bars, fmt="%.0f", fontsize=8, padding=3)
    ax.axhline(50, color="grey", ls=":", label="target")
    ax.set_xticks(np.arange(5), sites)
    ax.set(ylabel="species richness (count)", title="Species richness by site and year")
    ax.legend(title="survey year")
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    photo(HERE / "photo.png")
    complex_plot(HERE / "complex_plot.png")
    data_chart(HERE / "data_chart.png")
    for p in sorted(HERE.glob("*.png")):
        print(p.name, p.stat().st_size // 1024, "KB")
