"""Noise of the prediction against the noise of the real survey, knowing the truth.

Needs the noise-free images (``--truth``).  The residuals ``pred - truth`` and
``ref - truth`` are what each image adds to the true sky: for a faithful translation they
should look alike.  Reported:

* per image, the residual sigma of each (``std(x - truth)``) and their ratio;
* per set, the two-sample KS statistic between the distributions of per-image sigma
  (the paper's Noise Emulators draw a random amplitude per image, so the *distribution*
  matters, not only its median);
* per set, the power spectrum ``P(k) = <|FFT2(x - truth - mean)|^2> / N_pix``, averaged over
  images and over rings of spatial frequency k (cycles per pixel), for pred and ref, and
  ``ps_distance``, the mean over k bins of ``|log10(P_pred / P_ref)|`` (each bin capped at
  6 dex, so that a noise-free prediction gets a large finite distance).  White noise of
  sigma has a flat ``P(k) = sigma^2``; correlated survey noise falls at high k.
"""

from __future__ import annotations

import numpy as np

from survey2survey.metrics.base import Metric, MetricResult, Quantity
from survey2survey.metrics.fourier import log_ratio_distance
from survey2survey.metrics.stats import ks_2samp

__all__ = ["power_spectrum_2d", "radial_bins", "radial_average", "NoiseMetric"]


def power_spectrum_2d(residuals: np.ndarray) -> np.ndarray:
    """``|FFT2(x - mean)|^2 / N_pix`` per image, rfft half plane.

    Parameters
    ----------
    residuals : ndarray, shape (..., H, W)
        Native flux units.

    Returns
    -------
    ndarray, shape (..., H, W // 2 + 1), float32
        Native flux units squared; white noise of sigma gives sigma^2 at every k.
    """
    import scipy.fft

    x = np.asarray(residuals, dtype=np.float32)
    x = x - x.mean(axis=(-2, -1), keepdims=True)
    h, w = x.shape[-2:]
    f = scipy.fft.rfft2(x, workers=-1)
    power = np.square(f.real)
    power += np.square(f.imag)
    power /= h * w
    return power


def radial_bins(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ring index of each rfft mode, ring centres and mode weights.

    Rings have width ``1 / min(H, W)`` cycles/px from 0 to 0.5 (Nyquist); the zero
    frequency and the corners beyond 0.5 are left out (index -1).  In the half plane,
    columns other than the first (and the last for even W) stand for two modes.

    Returns
    -------
    index : ndarray of int, shape (H, W // 2 + 1)
    k : ndarray, shape (n_bins,)
        Ring centres, cycles per pixel.
    weight : ndarray, shape (H, W // 2 + 1)
    """
    h, w = shape
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    k = np.sqrt(kx**2 + ky**2)
    width = 1.0 / min(h, w)
    n_bins = int(round(0.5 / width))
    index = np.floor(k / width - 0.5).astype(int)  # ring j covers [(j+0.5) width, (j+1.5) width)
    index[(index < 0) | (index >= n_bins) | (k == 0)] = -1
    weight = np.full(k.shape, 2.0)
    weight[:, 0] = 1.0
    if w % 2 == 0:
        weight[:, -1] = 1.0
    centres = (np.arange(n_bins) + 1.0) * width
    return index, centres, weight


def radial_average(power: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Average a half-plane power map (..., H, W//2+1) over rings of k.

    Returns
    -------
    k : ndarray, shape (n_bins,)
        Cycles per pixel.
    p : ndarray, shape (..., n_bins)
    """
    index, centres, weight = radial_bins(shape)
    n_bins = centres.size
    sel = index >= 0
    idx = index[sel]
    w = weight[sel]
    flat = power[..., sel]  # (..., n_modes)
    matrix = np.zeros((idx.size, n_bins))
    matrix[np.arange(idx.size), idx] = w
    sums = flat @ matrix
    return centres, sums / matrix.sum(axis=0)


class NoiseMetric(Metric):
    """Residual noise level and power spectrum of pred vs ref, relative to the truth."""

    name = "noise"
    needs_truth = True
    title = "Noise against the truth: residual sigma and power spectrum of (x - truth)"
    columns = (
        Quantity(
            "noise_sigma_ratio", "σ(pred−true) / σ(ref−true)", "", "1",
            "per-image residual sigma of the prediction over that of the reference", headline=True,
        ),
        Quantity("noise_sigma_pred", "σ(pred−true)", "{flux}", "", "std of pred - truth"),
        Quantity("noise_sigma_ref", "σ(ref−true)", "{flux}", "", "std of ref - truth"),
    )
    set_quantities = (
        Quantity(
            "ks_statistic", "KS D σ(pred) vs σ(ref)", "", "0",
            "two-sample KS distance between the per-image noise sigma distributions", headline=True,
        ),
        Quantity("ks_pvalue", "KS p-value (σ)", "", "higher", "p-value of that KS test"),
        Quantity(
            "ps_distance", "noise power spectrum distance", "dex", "0",
            "mean over k bins of |log10(P_pred(k) / P_ref(k))|", headline=True,
        ),
    )

    @classmethod
    def plot(cls, evaluation, out):
        from survey2survey.plots import plot_noise

        path = plot_noise(evaluation, out / "noise.png")
        return {"noise": path} if path is not None else {}

    def __init__(self, context):
        super().__init__(context)
        self._shape = None

    def measure(self, pred, ref, truth):
        r_pred = np.subtract(pred, truth, dtype=np.float32)
        r_ref = np.subtract(ref, truth, dtype=np.float32)
        s_pred = r_pred.std(axis=(-2, -1), dtype=np.float64)
        s_ref = r_ref.std(axis=(-2, -1), dtype=np.float64)
        ps_pred = power_spectrum_2d(r_pred).sum(axis=0, dtype=np.float64)  # (C, H, W//2+1)
        ps_ref = power_spectrum_2d(r_ref).sum(axis=0, dtype=np.float64)
        self._shape = ref.shape[-2:]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(s_ref > 0, s_pred / s_ref, np.nan)
        columns = {"noise_sigma_ratio": ratio, "noise_sigma_pred": s_pred, "noise_sigma_ref": s_ref}
        return columns, {"sigma_pred": s_pred, "sigma_ref": s_ref, "ps_pred": ps_pred, "ps_ref": ps_ref}

    def result(self):
        if not self.n_images:
            return MetricResult()
        s_pred = self._concat("sigma_pred")
        s_ref = self._concat("sigma_ref")
        k, p_pred = radial_average(self._sum("ps_pred") / self.n_images, self._shape)
        _, p_ref = radial_average(self._sum("ps_ref") / self.n_images, self._shape)
        distance = log_ratio_distance(p_pred, p_ref, axis=-1, skip_zero=False)
        values = {}
        for i, band in enumerate(self.bands):
            ks = ks_2samp(s_pred[:, i], s_ref[:, i])
            d = float(distance[i])
            values[band] = {
                "ks_statistic": ks["statistic"],
                "ks_pvalue": ks["pvalue"],
                "ps_distance": d if np.isfinite(d) else None,
            }
        return MetricResult(
            values=values,
            arrays={"k": k, "ps_pred": p_pred, "ps_ref": p_ref, "sigma_pred": s_pred, "sigma_ref": s_ref},
            notes={"k_unit": "cycles per pixel", "power_unit": "native flux unit squared"},
        )
