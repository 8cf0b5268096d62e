"""A quick look at one translation: input and output side by side, per band (``s2s translate --preview``).

Both images are shown in surface brightness, nanomaggies per arcsec^2 (pixel value x
``Survey.flux_factor`` / pixel area), on the same angular extent and with the same asinh
stretch per band, so that the two pixel scales compare: a translation that keeps the flux
looks equally bright, and a frame, stripes or a pedestal stand out.  The stretch's
softening is the input's sky noise (1.4826 MAD) and its top the brighter image's 99.8th
percentile.  matplotlib is imported when a preview is drawn (Agg canvas, no pyplot state).
"""

from __future__ import annotations

import os

import numpy as np

from survey2survey.atomic import atomic_write

__all__ = ["write_preview", "surface_brightness"]

#: Bottom of the stretch in units of the input's sky sigma.
_FLOOR_SIGMA = 2.0
#: Percentile that sets the top of the stretch.
_TOP_PERCENTILE = 99.8


def surface_brightness(image: np.ndarray, survey, pixel_scale: float) -> np.ndarray:
    """Native pixel values -> nanomaggies per arcsec^2 (float64)."""
    return np.asarray(image, np.float64) * survey.flux_factor / float(pixel_scale) ** 2


def _stretch(a: np.ndarray, b: np.ndarray | None) -> tuple[float, float, float]:
    """(softening, low, high) of the asinh stretch shared by input ``a`` and output ``b``."""
    sky = np.median(a)
    sigma = 1.4826 * np.median(np.abs(a - sky))
    both = a if b is None else np.concatenate([a.ravel(), b.ravel()])
    top = float(np.percentile(both, _TOP_PERCENTILE))
    soft = sigma if sigma > 0 else max(abs(top), 1e-30) * 1e-3
    return soft, -_FLOOR_SIGMA * soft, max(top, soft)


def write_preview(path: str | os.PathLike, inp: tuple, out: tuple, *, title: str = "", overwrite: bool = True):
    """Write a PNG: one row per output band, input on the left, output on the right.

    Parameters
    ----------
    path : path
    inp, out : (cube (C, H, W) native, band names, Survey, arcsec per pixel)
        The input as read and the translation.
    title : str
    overwrite : bool
        Replace an existing file (else FileExistsError).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from survey2survey.plots import png_metadata

    data_in, bands_in, survey_in, scale_in = inp
    data_out, bands_out, survey_out, scale_out = out
    lowered = [b.lower() for b in bands_in]
    fig = Figure(figsize=(4.6, 2.15 * len(bands_out) + 0.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(bands_out), 2, squeeze=False)
    for row, band in enumerate(bands_out):
        b_out = surface_brightness(data_out[row], survey_out, scale_out)
        j = lowered.index(band.lower()) if band.lower() in lowered else None
        b_in = surface_brightness(data_in[j], survey_in, scale_in) if j is not None else None
        soft, low, high = _stretch(b_in if b_in is not None else b_out, b_out)
        norm = (np.arcsinh(low / soft), np.arcsinh(high / soft))
        for col, (img, survey, scale) in enumerate(((b_in, survey_in, scale_in), (b_out, survey_out, scale_out))):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if img is None:
                ax.text(0.5, 0.5, f"no {band} input", ha="center", va="center", transform=ax.transAxes)
                continue
            h, w = img.shape
            extent = (-w * scale / 2, w * scale / 2, -h * scale / 2, h * scale / 2)  # arcsec, same footprint
            ax.imshow(np.arcsinh(np.clip(img, low, None) / soft), origin="lower", cmap="gray", extent=extent,
                      vmin=norm[0], vmax=norm[1], interpolation="nearest")
            ax.set_title(f"{survey.name} {band}, {scale:.3g}\"/px", fontsize=8)
    fig.suptitle(f"{title}\nasinh stretch, nanomaggies/arcsec$^2$, same per row", fontsize=8)
    with atomic_write(path, overwrite=overwrite, fsync=False) as fh:
        fig.savefig(fh, format="png", dpi=80, metadata=png_metadata())
    return path
