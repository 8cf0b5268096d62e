"""Pseudo-flux magnitude within r_max (Survey2Survey Eq. 6).

Survey2Survey defines ``F = 30 - 2.5 log10(sum_{r < r_max} beta)`` on 8-bit RGB values.
Our images are fluxes in native units, so the survey's own zero point replaces the 30 and
the result is an AB magnitude within a circular aperture of radius ``r_max`` (default half
the cutout, Survey2Survey's 75 px on 150 px images), with photutils' exact pixel overlap.

A cutout whose aperture flux is not positive has no magnitude (NaN, counted in the report).
"""

from __future__ import annotations

import numpy as np

from survey2survey.metrics.apertures import aperture_sum, default_r_max
from survey2survey.metrics.base import Metric, MetricResult, Quantity
from survey2survey.metrics.stats import ks_2samp

__all__ = ["magnitude", "aperture_magnitude", "MagnitudeMetric"]


def magnitude(flux: np.ndarray, zero_point: float) -> np.ndarray:
    """``zero_point - 2.5 log10(flux)``; NaN where the flux is not positive.

    Parameters
    ----------
    flux : array_like
        Native flux units.
    zero_point : float
        AB magnitude of one native unit.

    Returns
    -------
    ndarray
        AB magnitudes.
    """
    flux = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, zero_point - 2.5 * np.log10(flux), np.nan)


def aperture_magnitude(images: np.ndarray, zero_point: float, r_max: float | None = None) -> np.ndarray:
    """AB magnitude of the flux within ``r_max`` px of the cutout centre, per image.

    Parameters
    ----------
    images : ndarray, shape (..., H, W)
        Native flux units.
    zero_point : float
    r_max : float, optional
        Pixels; default half the shorter side.
    """
    r = default_r_max(images.shape[-2:]) if r_max is None else r_max
    return magnitude(aperture_sum(images, r), zero_point)


class MagnitudeMetric(Metric):
    """Pseudo-flux magnitudes of pred and ref and their difference."""

    name = "magnitude"
    title = "Pseudo-flux magnitude within r_max (Survey2Survey Eq. 6), survey zero point"
    columns = (
        Quantity(
            "dmag", "Δmag pred − ref", "mag", "0",
            "magnitude difference within r_max (negative: prediction too bright)", headline=True,
        ),
        Quantity("mag_pred", "mag(pred)", "AB mag", "", "AB magnitude of the prediction within r_max"),
        Quantity("mag_ref", "mag(ref)", "AB mag", "", "AB magnitude of the reference within r_max"),
    )
    set_quantities = (
        Quantity(
            "ks_statistic", "KS D mag(pred) vs mag(ref)", "", "0",
            "two-sample Kolmogorov-Smirnov distance between the magnitude distributions",
        ),
        Quantity("ks_pvalue", "KS p-value (mag)", "", "higher", "p-value of the KS test"),
    )

    @classmethod
    def plot(cls, evaluation, out):
        from survey2survey.plots import plot_magnitude

        path = plot_magnitude(evaluation, out / "magnitude.png")
        return {"magnitude": path} if path is not None else {}

    def __init__(self, context):
        super().__init__(context)
        if context.zero_point is None:
            raise ValueError("the magnitude metric needs the survey's zero point")

    def measure(self, pred, ref, truth):
        zp = self.context.zero_point
        m_pred = aperture_magnitude(pred, zp, self.context.r_max)
        m_ref = aperture_magnitude(ref, zp, self.context.r_max)
        columns = {"dmag": m_pred - m_ref, "mag_pred": m_pred, "mag_ref": m_ref}
        return columns, {"mag_pred": m_pred, "mag_ref": m_ref}

    def result(self):
        if not self.n_images:
            return MetricResult()
        m_pred = self._concat("mag_pred")
        m_ref = self._concat("mag_ref")
        ks = [ks_2samp(m_pred[:, i], m_ref[:, i]) for i in range(len(self.bands))]
        return MetricResult(
            values={b: {"ks_statistic": k["statistic"], "ks_pvalue": k["pvalue"]} for b, k in zip(self.bands, ks)},
        )
