"""PNG plots of an evaluation, one file per metric (Agg backend, no display needed).

Methods are overlaid in one figure, as in Lin & Fouchez's variant analysis; the reference
is drawn in black.  matplotlib is imported when a plot is drawn, never at package import,
and figures are built with :class:`matplotlib.figure.Figure` (no pyplot global state), so
plotting is safe inside other programs.  Every file is written to a temporary name and
renamed into place.  Each metric class draws its own plots with these functions
(``Metric.plot``; :func:`survey2survey.evaluate.draw_plots` calls them).

==================  =========================================================================
file                content
==================  =========================================================================
flux.png            Sum |pred - ref| vs Sum |ref| per band, log-log, with the sigma and
                    sqrt(2) sigma noise lines (Lin & Fouchez Fig. 5)
fourier_<band>.png  stacked FFT amplitude of the high-pass images: reference, each method,
                    and log10 of each method's ratio to the reference (Lin & Fouchez Fig. 6)
ssim.png            distributions of MSSIM and of its luminance, contrast, structure terms
magnitude.png       distributions of the pseudo-flux magnitudes and of their differences
snr.png             distributions of the mean S/N and of the relative differences
profile.png         median radial profiles (16-84 % band) in flux per arcsec^2
photometry.png      distributions of the relative aperture flux error of pred and of ref
noise.png           residual power spectra P(k) and per-image residual sigma distributions
==================  =========================================================================
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "plot_flux",
    "plot_fourier",
    "plot_ssim",
    "plot_magnitude",
    "plot_snr",
    "plot_photometry",
    "plot_profile",
    "plot_noise",
    "REFERENCE_COLOR",
    "PLOT_NAMES",
    "png_metadata",
    "is_s2s_png",
]

REFERENCE_COLOR = "black"
#: The file names (without ``.png``) of an evaluation's plots: a name, or a name and ``_<band>``.
PLOT_NAMES = ("flux", "fourier", "ssim", "magnitude", "snr", "profile", "photometry", "noise")
#: Histogram range: pooled percentiles, so that a few outliers (kept, in the edge bins) do
#: not squash the distributions.
_PCT = (2.0, 98.0)


def _figure(n_rows: int, n_cols: int, width: float = 4.0, height: float = 3.3):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # at least 6.4 inches wide, so that a one-panel figure still has room for its title
    fig = Figure(figsize=(max(width * n_cols, 6.4), height * n_rows), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas, whatever backend the process has selected
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    return fig, axes


def png_metadata() -> dict:
    """The PNG text s2s writes into its plots and previews (what :func:`is_s2s_png` looks for)."""
    from survey2survey import __version__

    return {"Software": f"survey2survey {__version__}"}


def is_s2s_png(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a PNG that s2s wrote (its ``Software`` text): one a later run may
    replace; any other file of that name is the user's."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return str(image.info.get("Software", "")).startswith("survey2survey")
    except Exception:  # not a PNG, unreadable, or no PIL: not ours
        return False


def _save(fig, path: Path) -> Path:
    from survey2survey.atomic import atomic_write

    with atomic_write(path, fsync=False) as fh:
        fig.savefig(fh, format="png", dpi=110, metadata=png_metadata())
    return path


def _colors(names):
    import matplotlib

    cycle = matplotlib.colormaps["tab10"]
    return {name: cycle(i % 10) for i, name in enumerate(names)}


def _band_grid(n: int):
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def _log_labels(ax) -> None:
    """Plain-number labels on both log axes, as many as the span leaves room for: matplotlib
    labels every minor tick of an axis spanning under 0.4 decade, and they overlapped."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if not (lo > 0 and hi > lo):
            continue
        span = np.log10(hi / lo)
        subs = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0) if span < 0.5 else (1.0, 2.0, 5.0) if span < 1.5 else (1.0,)
        axis.set_major_locator(LogLocator(base=10.0, subs=subs))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def _hide_unused(axes, n):
    for ax in axes.flat[n:]:
        ax.set_visible(False)


def _finite(x):
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def _hist(ax, samples: dict[str, tuple[np.ndarray, Any, str]], xlabel: str, log: bool = False):
    """Step histograms (density) of several samples over common bins."""
    pooled = np.concatenate([_finite(s) for s, _, _ in samples.values()] or [np.array([])])
    if pooled.size == 0:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(xlabel)
        return
    if log:
        pooled = pooled[pooled > 0]
        if pooled.size == 0:
            return
    lo, hi = np.percentile(pooled, _PCT)
    if hi <= lo:
        lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
    # Rice rule on the smallest sample: 2 N^(1/3) bins (7 for 40 images, 27 for 2,500)
    n_min = min(max(_finite(s).size, 1) for s, _, _ in samples.values())
    n_bins = int(np.clip(round(2 * n_min ** (1 / 3)), 6, 50))
    bins = np.geomspace(lo, hi, n_bins + 1) if log else np.linspace(lo, hi, n_bins + 1)
    for label, (values, color, style) in samples.items():
        v = _finite(values)
        if v.size:
            ax.hist(np.clip(v, lo, hi), bins=bins, density=True, histtype="step", color=color, ls=style,
                    lw=1.6, label=f"{label} (N={v.size})")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")


def _column(evaluation, method, name, b):
    cols = evaluation.methods[method].columns
    return cols[name][:, b] if name in cols else np.array([])


def _methods(evaluation):
    return [n for n, m in evaluation.methods.items() if m.pairs]


def _unit(evaluation):
    return evaluation.survey.flux_unit or "native units"


# --- Lin & Fouchez Fig. 5 -----------------------------------------------------------


def plot_flux(evaluation, path: Path) -> Path:
    methods = _methods(evaluation)
    colors = _colors(methods)
    bands = evaluation.bands
    rows, cols = _band_grid(len(bands))
    fig, axes = _figure(rows, cols, 4.4, 3.8)
    unit = _unit(evaluation)
    for b, band in enumerate(bands):
        ax = axes.flat[b]
        for name in methods:
            x = _column(evaluation, name, "ref_absflux", b)
            y = _column(evaluation, name, "flux_absdiff", b)
            ok = (x > 0) & (y > 0)
            ax.scatter(x[ok], y[ok], s=5, alpha=0.5, color=colors[name], label=name, linewidths=0)
        first = evaluation.methods[methods[0]].summaries.get(band, {}).get("flux", {}).get("set", {})
        if first.get("sigma_line"):
            ax.axhline(first["sigma_line"], color="black", ls="--", lw=1.2, label="σ (noise-free ideal)")
            ax.axhline(first["sqrt2_sigma_line"], color="black", ls=":", lw=1.5, label="√2 σ (ideal with noise)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _log_labels(ax)
        ax.set_xlabel(f"Σ|ref| [{unit}]")
        ax.set_ylabel(f"Σ|pred − ref| [{unit}]")
        ax.set_title(f"{band} band")
        ax.grid(True, which="major", alpha=0.3)
        if b == 0:
            ax.legend(fontsize=7, markerscale=2.5, loc="upper left")
    _hide_unused(axes, len(bands))
    fig.suptitle(
        "Global shape: summed absolute flux difference (Lin & Fouchez 2021, Fig. 5)\n"
        "σ = median summed noise amplitude of the reference, noise level\n"
        f"{evaluation.noise_sigma or 'unknown'}",
        fontsize=8,
    )
    return _save(fig, path)


# --- Lin & Fouchez Fig. 6 -----------------------------------------------------------


def plot_fourier(evaluation, band: str, path: Path) -> Path | None:
    from matplotlib.colors import LogNorm

    methods = [m for m in _methods(evaluation) if "fourier" in evaluation.methods[m].results]
    if not methods:
        return None
    b = evaluation.bands.index(band)
    ref_stack = evaluation.methods[methods[0]].results["fourier"].arrays["stack_ref"][b]
    stacks = {m: evaluation.methods[m].results["fourier"].arrays["stack_pred"][b] for m in methods}
    fig, axes = _figure(2, len(methods) + 1, 3.3, 3.1)
    # one colour scale, the reference's range: a method with too little small-scale power
    # shows up dark, one with too much saturates
    positive = ref_stack[ref_stack > 0]
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    im = axes[0, 0].imshow(ref_stack, origin="lower", cmap="viridis", norm=norm)
    axes[0, 0].set_title("reference", fontsize=9)
    for j, m in enumerate(methods, start=1):
        axes[0, j].imshow(stacks[m], origin="lower", cmap="viridis", norm=norm)
        dist = evaluation.methods[m].summaries.get(band, {}).get("fourier", {}).get("set", {}).get("stack_distance")
        axes[0, j].set_title(f"{m}" + (f"  (distance {dist:.3f} dex)" if dist is not None else ""), fontsize=9)
    fig.colorbar(im, ax=axes[0, :].tolist(), shrink=0.8, label="mean |FFT| of high-pass image")
    for j, m in enumerate(methods, start=1):
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.clip(np.log10(stacks[m] / ref_stack), -6, 6)
        finite = np.abs(log_ratio[np.isfinite(log_ratio)])
        # each method its own symmetric scale: a good method's 0.02 dex pattern stays visible
        lim = max(float(np.percentile(finite, 99)) if finite.size else 0.1, 0.02)
        ratio_im = axes[1, j].imshow(log_ratio, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[1, j].set_title(f"log10({m} / reference)", fontsize=9)
        # below the panel, so that the columns keep the widths of the row above
        fig.colorbar(ratio_im, ax=axes[1, j], location="bottom", shrink=0.8, aspect=25, label="dex")
    axes[1, 0].axis("off")
    axes[1, 0].text(
        0.02, 0.5,
        "Unshifted FFT (as the paper):\nzero frequency in the corners,\nhighest frequency at the centre.\n\n"
        "Red: more small-scale power than\nthe reference; blue: less\n(too smooth).",
        fontsize=8, va="center", transform=axes[1, 0].transAxes,
    )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Local fluctuations, {band} band: stacked Fourier amplitude of high-pass images "
                 "(Lin & Fouchez 2021, Fig. 6)", fontsize=9)
    return _save(fig, path)


# --- distributions --------------------------------------------------------------------


def _distribution_grid(evaluation, path, panels, title):
    """Rows = bands, columns = panels; each panel: (column, label, include_ref_column or None)."""
    methods = _methods(evaluation)
    colors = _colors(methods)
    bands = evaluation.bands
    fig, axes = _figure(len(bands), len(panels), 3.6, 2.7)
    for b, band in enumerate(bands):
        for j, (col, label, ref_col) in enumerate(panels):
            samples = {}
            if ref_col is not None and methods:
                samples["reference"] = (_column(evaluation, methods[0], ref_col, b), REFERENCE_COLOR, "-")
            for m in methods:
                samples[m] = (_column(evaluation, m, col, b), colors[m], "-")
            ax = axes[b, j]
            _hist(ax, samples, label)
            ax.set_title(f"{band} band", fontsize=8)
            if b == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_ssim(evaluation, path):
    panels = [("mssim", "MSSIM (1 = identical)", None), ("l_mean", "luminance l̄", None),
              ("c_mean", "contrast c̄", None), ("s_mean", "structure s̄", None)]
    return _distribution_grid(evaluation, path, panels,
                              "SSIM and its terms, pred vs ref (Survey2Survey Eq. 9-10; R = max − min of ref)")


def plot_magnitude(evaluation, path):
    panels = [("mag_pred", "pseudo-flux magnitude within r_max [AB mag]", "mag_ref"),
              ("dmag", "Δmag = mag(pred) − mag(ref) [mag]", None)]
    return _distribution_grid(evaluation, path, panels, "Pseudo-flux magnitude (Survey2Survey Eq. 6)")


def plot_snr(evaluation, path):
    panels = [("snr_pred", "mean S/N within r_max", "snr_ref"),
              ("snr_rel_diff", "(S/N pred − S/N ref) / S/N ref", None)]
    return _distribution_grid(evaluation, path, panels, "Mean S/N within r_max (Survey2Survey Eq. 7)")


def plot_photometry(evaluation, path):
    methods = _methods(evaluation)
    colors = _colors(methods)
    bands = evaluation.bands
    rows, cols = _band_grid(len(bands))
    fig, axes = _figure(rows, cols, 4.2, 3.2)
    for b, band in enumerate(bands):
        samples = {}
        if methods:
            samples["reference − truth"] = (_column(evaluation, methods[0], "rel_dflux_ref", b), REFERENCE_COLOR, "-")
        for m in methods:
            samples[f"{m} − truth"] = (_column(evaluation, m, "rel_dflux_pred", b), colors[m], "-")
        ax = axes.flat[b]
        _hist(ax, samples, "(F − F_true) / F_true in the aperture")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(f"{band} band", fontsize=9)
        if b == 0:
            ax.legend(fontsize=7)
    _hide_unused(axes, len(bands))
    radius = evaluation.parameters.get("aperture_radius_arcsec")
    fig.suptitle(f"Aperture photometry against the noise-free truth (radius {radius} arcsec)", fontsize=9)
    return _save(fig, path)


def plot_profile(evaluation, path):
    methods = [m for m in _methods(evaluation) if "profile" in evaluation.methods[m].results]
    if not methods:
        return None
    colors = _colors(methods)
    bands = evaluation.bands
    scale = evaluation.survey.pixel_scale
    rows, cols = _band_grid(len(bands))
    fig, axes = _figure(rows, cols, 4.2, 3.4)
    unit = _unit(evaluation)
    area = scale * scale  # arcsec^2 per pixel
    for b, band in enumerate(bands):
        ax = axes.flat[b]
        first = evaluation.methods[methods[0]].results["profile"].arrays
        r = first["radius_px"] * scale
        curves = [("reference", first, "ref", REFERENCE_COLOR)]
        curves += [(m, evaluation.methods[m].results["profile"].arrays, "pred", colors[m]) for m in methods]
        for label, arrays, key, color in curves:
            med = arrays[f"median_{key}"][b] / area
            lo = arrays[f"p16_{key}"][b] / area
            hi = arrays[f"p84_{key}"][b] / area
            ax.plot(r, med, color=color, lw=1.6, label=label)
            ax.fill_between(r, lo, hi, color=color, alpha=0.12)
        # symmetric log: logarithmic for the galaxy, linear (negative values allowed) below
        # the scatter of the reference's outer annuli, where sky noise dominates
        ref_med = first["median_ref"][b] / area
        outer = slice(len(r) // 2, None)
        noise = np.nanmedian((first["p84_ref"][b] - first["p16_ref"][b])[outer]) / (2 * area)
        top = np.nanmax(np.abs(ref_med)) if np.isfinite(ref_med).any() else 1.0
        linthresh = noise if np.isfinite(noise) and noise > 0 else 1e-3 * top
        ax.set_yscale("symlog", linthresh=linthresh)
        ax.set_ylim(-3 * linthresh, 3 * top)
        # 0 and the decades outside the linear part: a decade inside it sat on 0's label
        from matplotlib.ticker import FixedLocator

        if top > 0 and linthresh > 0:
            first_decade = int(np.ceil(np.log10(2 * linthresh)))
            decades = [10.0**k for k in range(first_decade, int(np.floor(np.log10(3 * top))) + 1)]
            ax.yaxis.set_major_locator(FixedLocator([-d for d in decades if d <= 3 * linthresh] + [0.0] + decades))
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xlabel("radius [arcsec]")
        ax.set_ylabel(f"dF/dS [{unit} / arcsec²]")
        ax.set_title(f"{band} band (median, 16–84 %)", fontsize=9)
        ax.grid(True, alpha=0.3)
        if b == 0:
            ax.legend(fontsize=7)
    _hide_unused(axes, len(bands))
    fig.suptitle("Radial luminosity profile in 1-px annuli (Survey2Survey Eq. 8)", fontsize=9)
    return _save(fig, path)


def plot_noise(evaluation, path):
    methods = [m for m in _methods(evaluation) if "noise" in evaluation.methods[m].results]
    if not methods:
        return None
    colors = _colors(methods)
    bands = evaluation.bands
    fig, axes = _figure(len(bands), 2, 4.2, 2.9)
    unit = _unit(evaluation)
    for b, band in enumerate(bands):
        ax = axes[b, 0]
        first = evaluation.methods[methods[0]].results["noise"].arrays
        ax.plot(first["k"], first["ps_ref"][b], color=REFERENCE_COLOR, lw=1.6, label="reference − truth")
        for m in methods:
            arr = evaluation.methods[m].results["noise"].arrays
            ax.plot(arr["k"], arr["ps_pred"][b], color=colors[m], lw=1.4, label=f"{m} − truth")
        ax.set_yscale("log")
        ax.set_xlabel("k [cycles / pixel]")
        ax.set_ylabel(f"P(k) [({unit})²]")
        ax.set_title(f"{band} band: residual power spectrum", fontsize=8)
        ax.grid(True, alpha=0.3)
        if b == 0:
            ax.legend(fontsize=7)
        samples = {"reference − truth": (first["sigma_ref"][:, b], REFERENCE_COLOR, "-")}
        for m in methods:
            s = evaluation.methods[m].summaries.get(band, {}).get("noise", {}).get("set", {})
            d = s.get("ks_statistic")
            label = f"{m} − truth" + (f", KS D={d:.2f}" if d is not None else "")
            samples[label] = (evaluation.methods[m].results["noise"].arrays["sigma_pred"][:, b], colors[m], "-")
        _hist(axes[b, 1], samples, f"per-image residual σ [{unit}]")
        axes[b, 1].set_title(f"{band} band: noise level distribution", fontsize=8)
        axes[b, 1].legend(fontsize=7)
    fig.suptitle("Noise against the noise-free truth: residuals x − truth", fontsize=9)
    return _save(fig, path)


# --- everything ---------------------------------------------------------------------
