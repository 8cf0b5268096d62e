"""Radial luminosity profile in 1-px annuli (Survey2Survey Eq. 8).

``dF/dS (r) = F_Ann(r) / (2 pi r dr)``: the flux in an annulus of central radius r and
width dr = 1 px over its area, i.e. the azimuthally averaged surface brightness, in native
flux units per pixel (plots convert to per arcsec^2).  Annulus k spans radii [k, k + 1) px
about the cutout centre, out to ``r_max`` (default half the cutout); the area is the
photutils exact overlap area, which is ``2 pi r dr`` for an annulus inside the image.

The profile of every image is one matrix product with the annulus weights;
``tests/test_metrics.py`` checks it against :class:`photutils.profiles.RadialProfile`.

Per image, ``profile_dev`` compares the two profiles with an area-weighted relative L2
distance, ``sqrt(sum_k A_k (P_pred - P_ref)^2 / sum_k A_k P_ref^2)``: 0 for identical
profiles, 0.1 for a 10 % mismatch in the light distribution.
"""

from __future__ import annotations

import numpy as np

from survey2survey.metrics.apertures import annulus_weights, default_r_max, weighted_sums
from survey2survey.metrics.base import Metric, MetricResult, Quantity

__all__ = ["profile_edges", "radial_profile", "ProfileMetric"]


def profile_edges(shape: tuple[int, int], r_max: float | None = None) -> np.ndarray:
    """Annulus edges 0, 1, 2, ... px up to ``r_max`` (floored to whole pixels)."""
    r = default_r_max(shape) if r_max is None else r_max
    n = max(int(np.floor(r)), 1)
    return np.arange(n + 1, dtype=np.float64)


def radial_profile(images: np.ndarray, r_max: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthally averaged flux per pixel in 1-px annuli about the centre, per image.

    Parameters
    ----------
    images : ndarray, shape (..., H, W)
        Native flux units.
    r_max : float, optional
        Outer radius in pixels; default half the shorter side.

    Returns
    -------
    radii : ndarray, shape (K,)
        Central radius of each annulus, px.
    profile : ndarray, shape (..., K)
        Mean flux per pixel in each annulus, native flux units per pixel.
    """
    edges = profile_edges(images.shape[-2:], r_max)
    weights = annulus_weights(images.shape[-2:], edges)
    area = weights.sum(axis=(-2, -1))
    return 0.5 * (edges[:-1] + edges[1:]), weighted_sums(images, weights) / area


class ProfileMetric(Metric):
    """Radial luminosity profiles of pred and ref."""

    name = "profile"
    title = "Radial luminosity profile in 1-px annuli (Survey2Survey Eq. 8)"
    columns = (
        Quantity(
            "profile_dev", "profile deviation", "", "0",
            "area-weighted relative L2 distance between the radial profiles of pred and ref",
            headline=True,
        ),
    )

    @classmethod
    def plot(cls, evaluation, out):
        from survey2survey.plots import plot_profile

        path = plot_profile(evaluation, out / "profile.png")
        return {"profile": path} if path is not None else {}

    def __init__(self, context):
        super().__init__(context)
        self._radii = None

    def measure(self, pred, ref, truth):
        radii, p_pred = radial_profile(pred, self.context.r_max)
        _, p_ref = radial_profile(ref, self.context.r_max)
        self._radii = radii
        edges = profile_edges(ref.shape[-2:], self.context.r_max)
        a = annulus_weights(ref.shape[-2:], edges).sum(axis=(-2, -1))  # annulus areas, px^2
        num = np.sqrt(np.sum(a * (p_pred - p_ref) ** 2, axis=-1))
        den = np.sqrt(np.sum(a * p_ref**2, axis=-1))
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = np.where(den > 0, num / den, np.nan)
        partial = {"pred": p_pred.astype(np.float32), "ref": p_ref.astype(np.float32)}
        return {"profile_dev": dev}, partial

    def result(self):
        if not self.n_images:
            return MetricResult()
        p_pred = self._concat("pred")  # (N, C, K)
        p_ref = self._concat("ref")
        arrays = {"radius_px": self._radii}
        for name, p in (("pred", p_pred), ("ref", p_ref)):
            lo, med, hi = np.nanpercentile(p, [15.865525393145708, 50.0, 84.13447460685429], axis=0)
            arrays[f"median_{name}"] = med  # (C, K)
            arrays[f"p16_{name}"] = lo
            arrays[f"p84_{name}"] = hi
            arrays[f"mean_{name}"] = np.nanmean(p, axis=0)
        return MetricResult(arrays=arrays, notes={"annuli": "1-px annuli [k, k+1) about the cutout centre"})
