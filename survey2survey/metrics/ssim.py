"""Structural similarity and its three terms (Wang et al. 2004; Survey2Survey Eq. 9-10).

Within an 11x11 Gaussian window (sigma 1.5 px) around each pixel, with local means mu,
standard deviations sigma and covariance sigma_xy::

    l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)            luminance
    c = (2 sigma_x sigma_y + C2) / (sigma_x^2 + sigma_y^2 + C2)  contrast
    s = (2 sigma_xy + C2) / (2 sigma_x sigma_y + C2)             structure
    SSIM = l c s,  C1 = (0.01 R)^2,  C2 = (0.03 R)^2

and the image means of the maps (MSSIM, l-bar, c-bar, s-bar) are reported.  Survey2Survey
used 8-bit images and R = 255; for float fluxes the dynamic range R is taken from the data:
``max - min`` of each reference image band.  As in Wang et al., only pixels whose window
lies inside the image are averaged (a 5 px border is left out).

The windows are computed for the whole stack at once with separable Gaussian filters
(:func:`scipy.ndimage.gaussian_filter1d`); ``tests/test_metrics.py`` checks the result
against an explicit window-by-window computation.
"""

from __future__ import annotations

import numpy as np

from survey2survey.metrics.base import Metric, Quantity

__all__ = ["ssim", "SSIMMetric", "WINDOW_SIGMA", "WINDOW_RADIUS", "K1", "K2"]

#: Gaussian window: sigma 1.5 px, 11 taps (radius 5).
WINDOW_SIGMA = 1.5
WINDOW_RADIUS = 5
#: Stabilising constants C1 = (K1 R)^2, C2 = (K2 R)^2.
K1 = 0.01
K2 = 0.03


def _gaussian_taps() -> np.ndarray:
    taps = np.exp(-0.5 * ((np.arange(2 * WINDOW_RADIUS + 1) - WINDOW_RADIUS) / WINDOW_SIGMA) ** 2)
    return (taps / taps.sum()).astype(np.float32)


_TAPS = _gaussian_taps()


def _window_mean(x: np.ndarray) -> np.ndarray:
    """Gaussian-weighted mean in the 11x11 window of every pixel whose window fits.

    (..., H, W) -> (..., H - 10, W - 10); the border pixels, whose windows would need
    padding, are never computed (Wang et al. average the 'valid' SSIM map).
    """
    from scipy import ndimage

    r = WINDOW_RADIUS
    rows = ndimage.correlate1d(x, _TAPS, axis=-1)[..., r:-r]
    return ndimage.correlate1d(rows, _TAPS, axis=-2)[..., r:-r, :]


def ssim(pred: np.ndarray, ref: np.ndarray, data_range: np.ndarray | float | None = None) -> dict[str, np.ndarray]:
    """Mean SSIM and mean luminance, contrast and structure terms per image.

    Parameters
    ----------
    pred, ref : ndarray, shape (..., H, W)
        Native flux units; H, W >= 11.
    data_range : float or ndarray of shape (...), optional
        Dynamic range R of each image (native units).  Default: ``max(ref) - min(ref)`` per
        image.

    Returns
    -------
    dict of ndarray, shape (...)
        ``mssim``, ``l_mean``, ``c_mean``, ``s_mean`` (dimensionless, 1 for identical images).
        NaN where the reference is constant (R = 0).
    """
    x = np.asarray(pred, dtype=np.float32)
    y = np.asarray(ref, dtype=np.float32)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} and {y.shape}")
    h, w = x.shape[-2:]
    if min(h, w) < 2 * WINDOW_RADIUS + 1:
        raise ValueError(f"images of {w}x{h} px are smaller than the 11x11 SSIM window")
    if data_range is None:
        data_range = y.max(axis=(-2, -1)) - y.min(axis=(-2, -1))
    r = np.asarray(data_range, dtype=np.float32)[..., None, None]
    c1 = (K1 * r) ** 2
    c2 = (K2 * r) ** 2

    # everything is float32: the images are first centred on a common per-image offset
    # (SSIM's variances and covariance do not change), so that the local second moments
    # of bright galaxies suffer no cancellation
    offset = 0.5 * (x.mean(axis=(-2, -1), keepdims=True) + y.mean(axis=(-2, -1), keepdims=True))
    xc = x - offset
    yc = y - offset
    mx = _window_mean(xc)  # local means, centred; (..., H-10, W-10)
    my = _window_mean(yc)
    var_x = _window_mean(xc * xc)
    var_x -= mx * mx
    np.maximum(var_x, 0.0, out=var_x)
    var_y = _window_mean(yc * yc)
    var_y -= my * my
    np.maximum(var_y, 0.0, out=var_y)
    cov = _window_mean(xc * yc)
    cov -= mx * my
    del xc, yc
    mu_x = mx + offset
    mu_y = my + offset
    sig_xy = np.sqrt(var_x * var_y)  # sigma_x sigma_y

    with np.errstate(divide="ignore", invalid="ignore"):
        lum = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
        den = var_x + var_y + c2
        con = (2 * sig_xy + c2) / den
        struct = (cov + c2 / 2) / (sig_xy + c2 / 2)
        # l c s as one fraction: c s = (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2)
        full = lum * (2 * cov + c2) / den

    return {
        name: m.mean(axis=(-2, -1), dtype=np.float64)
        for name, m in (("mssim", full), ("l_mean", lum), ("c_mean", con), ("s_mean", struct))
    }


class SSIMMetric(Metric):
    """SSIM with its luminance, contrast and structure terms (Survey2Survey Eq. 9-10)."""

    name = "ssim"
    title = "Structural similarity (Wang et al. 2004; Survey2Survey Eq. 9-10), R = max - min of ref"
    parameters = {"ssim": f"{2 * WINDOW_RADIUS + 1}x{2 * WINDOW_RADIUS + 1} Gaussian window, sigma {WINDOW_SIGMA:g} px, "
                          f"C1 = ({K1:g} R)^2, C2 = ({K2:g} R)^2, R = max - min of ref"}
    columns = (
        Quantity("mssim", "MSSIM", "", "1", "mean structural similarity (1 = identical)", headline=True),
        Quantity("l_mean", "SSIM luminance l̄", "", "1", "mean luminance term: local brightness agreement",
                 headline=True),
        Quantity("c_mean", "SSIM contrast c̄", "", "1", "mean contrast term: local sharpness agreement",
                 headline=True),
        Quantity("s_mean", "SSIM structure s̄", "", "1", "mean structure term: local correlation", headline=True),
    )

    @classmethod
    def plot(cls, evaluation, out):
        from survey2survey.plots import plot_ssim

        path = plot_ssim(evaluation, out / "ssim.png")
        return {"ssim": path} if path is not None else {}

    def measure(self, pred, ref, truth):
        return ssim(pred, ref), {}
