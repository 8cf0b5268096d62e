"""Aperture colours of adjacent bands: does a translation keep the galaxy's SED?

Cross-band flux ratios carry a galaxy's redshift and stellar population (Lin et al. 2025,
A&A 701, A82, show that generative translation can lose them).  In a circular aperture
(photutils exact overlap, default radius 2 arcsec, as :mod:`.photometry`) the colour of
each adjacent band pair is

    c_j = -2.5 log10(F_j / F_{j+1})        (bands j and j + 1 in the evaluated order)

for the prediction and for the comparison images: the noise-free truth when it is given,
else the reference.  The colour of pair (j, j + 1) is reported under band j (``g`` holds
g - r); the last band has no pair (NaN).  A colour needs positive flux in both apertures.
Per set: the bias (median of ``c_pred - c_cmp``) and the scatter (sigma_MAD).

Known answer (``tests/test_physics_metrics.py``): images whose band fluxes are in known
ratios give exactly those colours.
"""

from __future__ import annotations

import warnings

import numpy as np

from survey2survey.metrics.apertures import aperture_sum, photometry_radius
from survey2survey.metrics.base import Metric, MetricResult, Quantity
from survey2survey.metrics.stats import robust_sigma

__all__ = ["ColourMetric", "aperture_colours"]


def aperture_colours(images: np.ndarray, radius: float) -> np.ndarray:
    """Colours ``-2.5 log10(F_j / F_{j+1})`` of adjacent bands in a centred aperture.

    Parameters
    ----------
    images : ndarray, shape (n, C, H, W)
        Native flux units (all bands of one survey share the zero point).
    radius : float
        Aperture radius in pixels.

    Returns
    -------
    ndarray, shape (n, C), float64
        Magnitudes; column C - 1 and pairs without positive flux in both bands are NaN.
    """
    flux = aperture_sum(images, radius)  # (n, C)
    out = np.full(flux.shape, np.nan)
    a, b = flux[:, :-1], flux[:, 1:]
    ok = (a > 0) & (b > 0)
    out[:, :-1][ok] = -2.5 * np.log10(a[ok] / b[ok])
    return out


class ColourMetric(Metric):
    """Aperture colours of adjacent bands, prediction vs truth (else vs reference)."""

    name = "colour"
    title = "Aperture colours of adjacent bands (vs the truth, else the reference)"
    columns = (
        Quantity(
            "dcolour", "Δ colour (pred − cmp)", "mag", "0",
            "aperture colour of this band minus the next, prediction minus truth (or reference)", headline=True,
        ),
        Quantity("colour_pred", "colour pred", "mag", "", "aperture colour of the prediction (this band - next)"),
        Quantity("colour_cmp", "colour truth/ref", "mag", "", "aperture colour of the truth, else of the reference"),
    )
    set_quantities = (
        Quantity("colour_bias", "colour bias", "mag", "0", "median colour difference pred - truth (or ref)",
                 headline=True),
        Quantity("colour_scatter", "colour scatter", "mag", "lower", "sigma_MAD of the colour difference"),
        Quantity("colour_valid", "pairs measured", "", "", "images with positive flux in both bands"),
    )

    def __init__(self, context):
        super().__init__(context)
        self.radius = photometry_radius(context)
        self.against = None

    def measure(self, pred, ref, truth):
        cmp = truth if truth is not None else ref
        self.against = "truth" if truth is not None else "reference"
        c_pred = aperture_colours(pred, self.radius)
        c_cmp = aperture_colours(cmp, self.radius)
        diff = c_pred - c_cmp
        return {"dcolour": diff, "colour_pred": c_pred, "colour_cmp": c_cmp}, {"diff": diff}

    def result(self):
        if not self.n_images:
            return MetricResult()
        diff = self._concat("diff")  # (N, C)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the last band has no pair: all NaN
            bias = np.nanmedian(diff, axis=0)
            scatter = robust_sigma(diff, axis=0)
        return MetricResult(
            values=self._per_band(colour_bias=bias, colour_scatter=scatter,
                                  colour_valid=np.isfinite(diff).sum(axis=0).astype(float)),
            notes={"aperture_radius_px": self.radius, "against": self.against,
                   "pairs": [f"{a}-{b}" for a, b in zip(self.bands[:-1], self.bands[1:])]},
        )
