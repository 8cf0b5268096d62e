"""Pixels sharper than the PSF: cosmic rays and hot pixels that a network must not see.

A survey's PSF spreads every source over several pixels (SDSS: 1.4" over 0.396" pixels), so a
pixel far brighter than all four of its neighbours is no source but a defect: a cosmic ray or
a hot pixel that the survey's pipeline left.  The physics translation carries such a pixel on
as it would any light, in its own band.  A network that mixes the bands paints it into the
others (a 71-sigma r pixel made 8-21-sigma features in u, g, i and z of the default model), so
the learned translators replace these pixels by the median of their eight neighbours first
(:func:`repair_sharp_pixels`) and say so.

A pixel is taken for a defect when it stands more than :data:`MIN_SIGMA` sky sigma above the
band's sky and more than :data:`MIN_CONTRAST` times as far above it as the brightest of its
four neighbours.  Through a PSF of FWHM at least two pixels no source comes near: a point
source's central pixel is at most about twice its brightest neighbour (a Gaussian of 2 px FWHM:
1.8x once integrated over the pixels).  Surveys whose PSF is narrower than that, or unknown to
the registry, are left alone.  Only single pixels are caught: a cosmic ray two pixels long has
a neighbour as bright as itself.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_CONTRAST", "MIN_SIGMA", "psf_pixels", "repair_sharp_pixels", "sharp_pixels"]

#: How many sky sigma above the sky a defect stands, at least.
MIN_SIGMA = 10.0
#: How many times as far above the sky as its brightest edge neighbour, at least.
MIN_CONTRAST = 3.0
#: The narrowest PSF (FWHM in pixels) for which a sharp pixel is known to be no source.
MIN_PSF_PIXELS = 2.0


def psf_pixels(survey) -> float | None:
    """The narrowest of a survey's typical PSF FWHMs, in its pixels; None when the registry has none."""
    return min(survey.psf_fwhm) / survey.pixel_scale if survey.psf_fwhm else None


_EDGE = ((-1, 0), (1, 0), (0, -1), (0, 1))
_AROUND = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def _at(plane: np.ndarray, ys: np.ndarray, xs: np.ndarray, offsets) -> np.ndarray:
    """``(len(offsets), n)``: the values at (ys + dy, xs + dx), the image mirrored at its edges."""
    padded = np.pad(plane, 1, mode="reflect")
    return np.stack([padded[ys + 1 + dy, xs + 1 + dx] for dy, dx in offsets])


def sharp_pixels(data: np.ndarray, psf_fwhm_px: float | None = None) -> np.ndarray:
    """Boolean (C, H, W) mask of the pixels of ``data`` (C, H, W) sharper than any source.

    ``psf_fwhm_px`` (the PSF's FWHM in pixels): unknown (None) or below :data:`MIN_PSF_PIXELS`,
    nothing is flagged.
    """
    data = np.asarray(data, dtype=np.float64)
    flags = np.zeros(data.shape, bool)
    if psf_fwhm_px is None or psf_fwhm_px < MIN_PSF_PIXELS:
        return flags
    for c, plane in enumerate(data):
        sky = float(np.median(plane))
        sigma = 1.4826 * float(np.median(np.abs(plane - sky)))
        if not sigma > 0:
            continue
        ys, xs = np.nonzero(plane - sky > MIN_SIGMA * sigma)  # few: only these are compared with their edges
        if len(ys):
            edge = _at(plane, ys, xs, _EDGE).max(axis=0)
            flags[c, ys, xs] = plane[ys, xs] - sky > MIN_CONTRAST * np.maximum(edge - sky, sigma)
    return flags


def repair_sharp_pixels(data: np.ndarray, psf_fwhm_px: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(repaired copy of data, pixels replaced per band)``: each pixel :func:`sharp_pixels` flags
    set to the median of its eight neighbours."""
    flags = sharp_pixels(data, psf_fwhm_px)
    counts = flags.sum(axis=(-2, -1))
    if not counts.any():
        return data, counts
    out = np.array(data, dtype=np.float32, copy=True)
    for c in np.nonzero(counts)[0]:
        ys, xs = np.nonzero(flags[c])
        out[c, ys, xs] = np.median(_at(np.asarray(data[c], dtype=np.float64), ys, xs, _AROUND), axis=0)
    return out, counts
