"""Aperture photometry against the noise-free truth.

Needs the noise-free images (``--truth``, as the simulator writes them).  In a circular
aperture (photutils exact overlap, default radius 2 arcsec) the flux of the prediction and
of the reference are compared with the true flux:

* ``dflux_pred = F_pred - F_truth`` and ``dflux_ref = F_ref - F_truth`` per image;
* per set, the bias (median) and scatter (sigma_MAD) of each, and
  ``scatter_ratio = scatter(pred) / scatter(ref)``: 1 means the translation measures fluxes
  as precisely as the real survey does; above 1 it adds error, well below 1 it is missing
  noise (too clean to be a faithful simulation of the survey).

For white noise of per-pixel sigma, ``std(F - F_truth) = sigma sqrt(sum_pix w^2)`` with w
the aperture weights: the known answer checked in ``tests/test_metrics.py``.
"""

from __future__ import annotations

import numpy as np

from survey2survey.metrics.apertures import DEFAULT_APERTURE_ARCSEC, DEFAULT_APERTURE_PX, aperture_sum, photometry_radius
from survey2survey.metrics.base import Metric, MetricResult, Quantity
from survey2survey.metrics.stats import robust_sigma

__all__ = ["DEFAULT_APERTURE_ARCSEC", "DEFAULT_APERTURE_PX", "PhotometryMetric"]  # the defaults live in metrics.apertures


class PhotometryMetric(Metric):
    """Aperture flux bias and scatter of pred and ref relative to the truth."""

    name = "photometry"
    needs_truth = True
    title = "Aperture photometry against the noise-free truth"
    columns = (
        Quantity(
            "rel_dflux_pred", "(F_pred − F_true) / F_true", "", "0",
            "relative aperture flux error of the prediction", headline=True,
        ),
        Quantity(
            "rel_dflux_ref", "(F_ref − F_true) / F_true", "", "0",
            "relative aperture flux error of the real survey image (for comparison)", headline=True,
        ),
        Quantity("dflux_pred", "F_pred − F_true", "{flux}", "0", "aperture flux error of the prediction"),
        Quantity("dflux_ref", "F_ref − F_true", "{flux}", "0", "aperture flux error of the reference"),
        Quantity("flux_truth", "F_true", "{flux}", "", "true aperture flux"),
    )
    set_quantities = (
        Quantity(
            "scatter_ratio", "aperture flux scatter pred/ref", "", "1",
            "sigma_MAD(F_pred - F_true) / sigma_MAD(F_ref - F_true)", headline=True,
        ),
        Quantity("bias_pred", "bias F_pred − F_true", "{flux}", "0", "median aperture flux error of pred"),
        Quantity("bias_ref", "bias F_ref − F_true", "{flux}", "0", "median aperture flux error of ref"),
        Quantity("scatter_pred", "scatter F_pred − F_true", "{flux}", "lower", "sigma_MAD of pred's flux error"),
        Quantity("scatter_ref", "scatter F_ref − F_true", "{flux}", "", "sigma_MAD of ref's flux error"),
        Quantity("aperture_radius_px", "aperture radius", "px", "", "radius of the photometry aperture"),
    )

    @classmethod
    def plot(cls, evaluation, out):
        from survey2survey.plots import plot_photometry

        path = plot_photometry(evaluation, out / "photometry.png")
        return {"photometry": path} if path is not None else {}

    def __init__(self, context):
        super().__init__(context)
        self.radius = photometry_radius(context)

    def measure(self, pred, ref, truth):
        f_true = aperture_sum(truth, self.radius)
        d_pred = aperture_sum(pred, self.radius) - f_true
        d_ref = aperture_sum(ref, self.radius) - f_true
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_pred = np.where(f_true > 0, d_pred / f_true, np.nan)
            rel_ref = np.where(f_true > 0, d_ref / f_true, np.nan)
        columns = {
            "rel_dflux_pred": rel_pred,
            "rel_dflux_ref": rel_ref,
            "dflux_pred": d_pred,
            "dflux_ref": d_ref,
            "flux_truth": f_true,
        }
        return columns, {"d_pred": d_pred, "d_ref": d_ref}

    def result(self):
        if not self.n_images:
            return MetricResult()
        d_pred = self._concat("d_pred")
        d_ref = self._concat("d_ref")
        s_pred = robust_sigma(d_pred, axis=0)
        s_ref = robust_sigma(d_ref, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = s_pred / s_ref
        return MetricResult(
            values=self._per_band(
                scatter_ratio=ratio,
                bias_pred=np.nanmedian(d_pred, axis=0),
                bias_ref=np.nanmedian(d_ref, axis=0),
                scatter_pred=s_pred,
                scatter_ref=s_ref,
                aperture_radius_px=np.full(len(self.bands), self.radius),
            ),
            notes={"aperture_radius_px": self.radius},
        )
