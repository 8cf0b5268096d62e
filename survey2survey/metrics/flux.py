"""Global shape reconstruction: summed absolute flux difference (Lin & Fouchez 2021, Fig. 5).

Each band of a cutout is a 2-D flux distribution; the metric is the sum over pixels of
``|pred - ref|``, plotted (log-log) against the reference's summed absolute flux.  Even a
perfect translation cannot reach zero, because of noise.  With ``sigma_sum`` the summed
noise amplitude ``sum_pix |n|`` of a reference image:

* a perfect *noise-free* prediction leaves only the reference's noise: ``sum|pred - ref| =
  sigma_sum`` (the paper's dashed line, "without noise reconstruction");
* a perfect prediction *with its own, independent noise* of the same level leaves the
  difference of two noise draws, whose sigma is ``sqrt(2)`` larger: ``sqrt(2) sigma_sum``
  (the dotted line, "with noise reconstruction").

For Gaussian noise of per-pixel sigma, ``E sum_pix |n| = N_pix sigma sqrt(2 / pi)``.  The
paper takes sigma from its Noise Emulators; here it is measured (``std(ref - truth)`` given
the noise-free images, else the robust background sigma of the reference), see
:mod:`survey2survey.metrics.background`.
"""

from __future__ import annotations

import math

import numpy as np

from survey2survey.metrics.background import (
    BACKGROUND_METHOD,
    TRUTH_METHOD,
    background_sigma,
    sigma_from_truth,
)
from survey2survey.metrics.base import Metric, MetricResult, Quantity

__all__ = ["FluxMetric", "summed_abs_difference", "summed_noise_amplitude"]


def summed_abs_difference(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``sum_pix |pred - ref|`` per image and band.

    Parameters
    ----------
    pred, ref : ndarray, shape (..., H, W)
        Native flux units.

    Returns
    -------
    ndarray, shape (...), float64
        Native flux units.
    """
    return np.abs(np.subtract(pred, ref, dtype=np.float32)).sum(axis=(-2, -1), dtype=np.float64)


def summed_noise_amplitude(sigma: np.ndarray, n_pix: int) -> np.ndarray:
    """Expected ``sum_pix |n|`` of Gaussian noise of per-pixel ``sigma`` over ``n_pix`` pixels.

    ``E|n| = sigma sqrt(2 / pi)`` for one pixel of N(0, sigma^2).

    Parameters
    ----------
    sigma : array_like
        Per-pixel noise sigma, native flux units.
    n_pix : int

    Returns
    -------
    ndarray
        Native flux units.
    """
    return np.asarray(sigma, dtype=np.float64) * n_pix * math.sqrt(2.0 / math.pi)


class FluxMetric(Metric):
    """Summed absolute difference against the noise floor (Lin & Fouchez Fig. 5)."""

    name = "flux"
    title = "Global shape: summed |pred - ref| (Lin & Fouchez 2021, Fig. 5)"
    evaluation_notes = ("noise_sigma",)
    columns = (
        Quantity(
            "flux_absdiff_norm", "Σ|pred−ref| / σΣ", "", "1.41*",
            "summed absolute difference in units of the reference's summed noise amplitude: "
            "1 = perfect noise-free prediction, sqrt(2) = perfect prediction with its own noise; "
            "higher = worse global shape",
            headline=True,
        ),
        Quantity("flux_absdiff", "Σ|pred−ref|", "{flux}", "lower", "sum over pixels of |pred - ref|"),
        Quantity(
            "flux_total_diff", "Σpred − Σref", "{flux}", "0",
            "total flux difference over the cutout (signed; noise included)",
        ),
        Quantity("ref_flux", "Σref", "{flux}", "", "summed flux of the reference"),
        Quantity("ref_absflux", "Σ|ref|", "{flux}", "", "summed absolute flux of the reference (x axis of Fig. 5)"),
        Quantity("noise_sigma_ref", "σ(ref)", "{flux}", "", "per-pixel noise sigma of the reference"),
        Quantity(
            "noise_sum_ref", "σΣ", "{flux}", "",
            "summed noise amplitude of the reference, sum|ref - truth| or N_pix sigma sqrt(2/pi)",
        ),
    )
    set_quantities = (
        Quantity("sigma_line", "σΣ line", "{flux}", "", "median summed noise amplitude (noise-free ideal)"),
        Quantity("sqrt2_sigma_line", "√2 σΣ line", "{flux}", "", "sqrt(2) x sigma line (ideal with noise)"),
    )

    def __init__(self, context):
        super().__init__(context)
        self.noise_method: str | None = None

    def measure(self, pred, ref, truth):
        n_pix = ref.shape[-1] * ref.shape[-2]
        absdiff = summed_abs_difference(pred, ref)
        if truth is not None:
            sigma = sigma_from_truth(ref, truth)
            # the summed noise amplitude itself, no Gaussian assumption needed
            noise_sum = summed_abs_difference(ref, truth)
            self.noise_method = TRUTH_METHOD
        else:
            sigma = background_sigma(ref)
            noise_sum = summed_noise_amplitude(sigma, n_pix)
            self.noise_method = BACKGROUND_METHOD
        with np.errstate(divide="ignore", invalid="ignore"):
            norm = np.where(noise_sum > 0, absdiff / noise_sum, np.nan)
        ref_sum = ref.sum(axis=(-2, -1), dtype=np.float64)
        columns = {
            "flux_absdiff_norm": norm,
            "flux_absdiff": absdiff,
            "flux_total_diff": pred.sum(axis=(-2, -1), dtype=np.float64) - ref_sum,
            "ref_flux": ref_sum,
            "ref_absflux": np.abs(ref).sum(axis=(-2, -1), dtype=np.float64),
            "noise_sigma_ref": sigma,
            "noise_sum_ref": noise_sum,
        }
        return columns, {"noise_sum": noise_sum}

    @classmethod
    def table_notes(cls, notes):
        lines = ["* Σ|pred−ref|/σΣ: 1.41 (√2) = perfect translation with its own noise; "
                 "1 = noise-free copy of the truth; higher = worse global shape."]
        if notes.get("noise_sigma"):
            lines.append(f"noise level σΣ: {notes['noise_sigma']}.")
        return lines

    @classmethod
    def plot(cls, evaluation, out):
        from survey2survey.plots import plot_flux

        return {"flux": plot_flux(evaluation, out / "flux.png")}

    def result(self):
        if not self.n_images:
            return MetricResult()
        noise_sum = self._concat("noise_sum")  # (N, C)
        line = np.nanmedian(noise_sum, axis=0)
        return MetricResult(
            values=self._per_band(sigma_line=line, sqrt2_sigma_line=math.sqrt(2.0) * line),
            notes={"noise_sigma": self.noise_method},
        )
