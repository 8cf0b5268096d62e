"""Mean signal-to-noise ratio within r_max (Survey2Survey Eq. 7).

``S/N = mean / std`` of the pixels whose centre lies within ``r_max`` of the cutout centre
(default half the cutout).  It is a property of one image: brighter or less noisy images
have a higher S/N.  A translation into a survey should give the S/N of that survey, so the
prediction is compared with its reference through ``(S/N_pred - S/N_ref) / S/N_ref``.
"""

from __future__ import annotations

import numpy as np

from survey2survey.metrics.apertures import circular_weights, default_r_max, weighted_sums
from survey2survey.metrics.base import Metric, MetricResult, Quantity
from survey2survey.metrics.stats import ks_2samp

__all__ = ["mean_snr", "SNRMetric"]


def mean_snr(images: np.ndarray, r_max: float | None = None) -> np.ndarray:
    """Mean over standard deviation of the pixels within ``r_max`` px, per image.

    Parameters
    ----------
    images : ndarray, shape (..., H, W)
        Native flux units.
    r_max : float, optional
        Pixels; default half the shorter side.

    Returns
    -------
    ndarray, shape (...)
        Dimensionless; NaN where the pixels are constant.
    """
    images = np.asarray(images)
    shape = images.shape[-2:]
    r = default_r_max(shape) if r_max is None else r_max
    inside = circular_weights(shape, r, method="center")  # 0/1 per pixel
    n = inside.sum()
    # first and second moments as matrix products over the stack; the images are first
    # centred on their overall mean so that the variance suffers no cancellation
    offset = images.mean(axis=(-2, -1), keepdims=True, dtype=np.float64).astype(images.dtype)
    centred = images - offset
    m1 = weighted_sums(centred, inside) / n
    m2 = weighted_sums(centred * centred, inside) / n
    mean = m1 + offset[..., 0, 0]
    std = np.sqrt(np.maximum(m2 - m1 * m1, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, mean / std, np.nan)


class SNRMetric(Metric):
    """Mean S/N of pred and ref within r_max and their relative difference."""

    name = "snr"
    title = "Mean S/N within r_max (Survey2Survey Eq. 7)"
    columns = (
        Quantity(
            "snr_rel_diff", "(S/N pred − ref) / ref", "", "0",
            "relative S/N difference (positive: prediction cleaner or brighter than the survey)",
            headline=True,
        ),
        Quantity("snr_pred", "S/N(pred)", "", "", "mean / std of the prediction's pixels within r_max"),
        Quantity("snr_ref", "S/N(ref)", "", "", "mean / std of the reference's pixels within r_max"),
    )
    set_quantities = (
        Quantity("ks_statistic", "KS D S/N(pred) vs S/N(ref)", "", "0", "KS distance between the S/N distributions"),
        Quantity("ks_pvalue", "KS p-value (S/N)", "", "higher", "p-value of the KS test"),
    )

    @classmethod
    def plot(cls, evaluation, out):
        from survey2survey.plots import plot_snr

        path = plot_snr(evaluation, out / "snr.png")
        return {"snr": path} if path is not None else {}

    def measure(self, pred, ref, truth):
        s_pred = mean_snr(pred, self.context.r_max)
        s_ref = mean_snr(ref, self.context.r_max)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(s_ref != 0, (s_pred - s_ref) / np.abs(s_ref), np.nan)
        columns = {"snr_rel_diff": rel, "snr_pred": s_pred, "snr_ref": s_ref}
        return columns, {"snr_pred": s_pred, "snr_ref": s_ref}

    def result(self):
        if not self.n_images:
            return MetricResult()
        s_pred = self._concat("snr_pred")
        s_ref = self._concat("snr_ref")
        ks = [ks_2samp(s_pred[:, i], s_ref[:, i]) for i in range(len(self.bands))]
        return MetricResult(
            values={b: {"ks_statistic": k["statistic"], "ks_pvalue": k["pvalue"]} for b, k in zip(self.bands, ks)},
        )
