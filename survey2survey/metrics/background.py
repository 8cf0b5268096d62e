"""Per-pixel background noise level of cutouts, measured from the images themselves.

Lin & Fouchez (2021) draw the reference lines of their flux plot (Fig. 5) from the noise
amplitude of their Noise Emulators.  An evaluation of arbitrary cutouts has no emulator,
so the noise is measured: either exactly, as ``std(ref - truth)`` when the noise-free
images are known (:func:`sigma_from_truth`), or robustly from the reference image alone
(:func:`background_sigma`): the median absolute deviation of the pixels after one 3-sigma
clip grown by 2 px, which leaves out the galaxy, its wings and any companion.  The pixel noise (not a high-pass
estimate) is measured on purpose: the flux metric sums pixel differences, and survey noise
is correlated between neighbouring pixels, which a high-pass estimate would miss.
"""

from __future__ import annotations

import numpy as np

from survey2survey.metrics.stats import MAD_TO_SIGMA

__all__ = ["background_sigma", "sigma_from_truth", "BACKGROUND_METHOD", "TRUTH_METHOD"]

#: How :func:`background_sigma` measures the noise (written into reports).
BACKGROUND_METHOD = (
    "measured from the reference images: 1.4826 x MAD of the background pixels "
    "(3-sigma clip grown by 2 px)"
)
#: How :func:`sigma_from_truth` measures the noise (written into reports).
TRUTH_METHOD = "from --truth: sum |reference - truth| (per-pixel sigma: std of reference - truth)"

#: Above this many pixels per image the estimate uses every other pixel in x and y: the
#: statistical error stays below 2 % and neighbouring pixels are correlated anyway.
_MAX_PIXELS = 4096
#: Pixels by which the clipped (source) region is grown.
_GROW = 2


def background_sigma(images: np.ndarray, clip: float = 3.0) -> np.ndarray:
    """Robust per-image noise sigma (native units) of background-dominated cutouts.

    Parameters
    ----------
    images : ndarray, shape (..., H, W)
        Native flux units.
    clip : float
        Pixels further than ``clip`` sigma from the median (the galaxy), and those within
        2 px of them, are left out of the second estimate.

    Returns
    -------
    ndarray, shape (...)
        ``1.4826 x median(|x - median(x)|)`` of the clipped pixels, float64, native units.
        A Gaussian sky gives its sigma; bright sources covering a small part of the cutout
        barely change it.
    """
    from scipy import ndimage

    images = np.asarray(images)
    h, w = images.shape[-2:]
    lead = images.shape[:-2]
    if h * w > _MAX_PIXELS:
        images = images[..., ::2, ::2]
    flat = images.reshape(-1, images.shape[-2] * images.shape[-1]).astype(np.float32, copy=False)
    med = np.median(flat, axis=1, keepdims=True)
    sigma = MAD_TO_SIGMA * np.median(np.abs(flat - med), axis=1, keepdims=True)
    # one clip pass: MAD is already robust, the clip takes away the residual pull of the
    # source; the clipped region is grown by 2 px so that the galaxy's faint wings go too
    outlier = (np.abs(flat - med) > clip * sigma).reshape(-1, *images.shape[-2:])
    outlier = ndimage.maximum_filter(outlier, size=(1, 2 * _GROW + 1, 2 * _GROW + 1), mode="constant")
    clipped = np.where(outlier.reshape(flat.shape), np.float32(np.nan), flat)
    med = np.nanmedian(clipped, axis=1, keepdims=True)
    sigma = MAD_TO_SIGMA * np.nanmedian(np.abs(clipped - med), axis=1)
    # a clip at 3 sigma trims the Gaussian tails, which lowers the MAD by 0.3 %: undo it
    # (MAD of a Gaussian truncated at +-clip sigma, solved for the untruncated sigma)
    sigma = sigma * _truncation_correction(clip)
    return sigma.astype(np.float64).reshape(lead)


def _truncation_correction(clip: float) -> float:
    """Factor that turns the MAD-sigma of an N(0, 1) truncated at +-clip back into 1."""
    from scipy.special import erf, erfinv

    # the truncated distribution's median |x| solves P(|x| < m) = P(|x| < clip) / 2
    half = 0.5 * erf(clip / np.sqrt(2.0))
    m = np.sqrt(2.0) * erfinv(half)
    return float(1.0 / (m * MAD_TO_SIGMA))


def sigma_from_truth(ref: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image noise sigma of ``ref`` knowing its noise-free image ``truth``.

    Parameters
    ----------
    ref, truth : ndarray, shape (..., H, W)
        Native units.

    Returns
    -------
    ndarray, shape (...)
        Standard deviation of ``ref - truth`` over the pixels, float64, native units.
    """
    diff = np.asarray(ref, dtype=np.float32) - np.asarray(truth, dtype=np.float32)
    return diff.std(axis=(-2, -1), dtype=np.float64)
