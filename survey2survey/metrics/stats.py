"""Robust summaries of metric distributions.

A translation is judged on distributions over thousands of galaxies, which always hold a
few outliers (a bright star in the cutout, a failed translation).  The summary of a metric
is therefore its median and a robust spread, ``sigma_MAD = 1.4826 x median|x - median|``,
which equals the standard deviation for a Gaussian distribution and ignores outliers.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MAD_TO_SIGMA", "robust_sigma", "summarize", "ks_2samp"]

#: 1 / Phi^-1(3/4): turns a median absolute deviation into a Gaussian sigma.
MAD_TO_SIGMA = 1.482602218505602


def robust_sigma(values: np.ndarray, axis=None) -> np.ndarray:
    """``1.4826 x median(|x - median(x)|)`` along ``axis`` (NaNs ignored).

    Parameters
    ----------
    values : array_like
    axis : int or tuple of int, optional

    Returns
    -------
    ndarray or float
        Same units as ``values``.
    """
    values = np.asarray(values, dtype=np.float64)
    med = np.nanmedian(values, axis=axis, keepdims=True)
    return MAD_TO_SIGMA * np.nanmedian(np.abs(values - med), axis=axis)


def summarize(values: np.ndarray) -> dict[str, float | int | None]:
    """Median, robust spread and percentiles of one metric over a set of images.

    Parameters
    ----------
    values : array_like, shape (N,)
        One value per image; NaN marks an image where the metric is undefined (for example
        the magnitude of a negative flux) and is left out, but counted.

    Returns
    -------
    dict
        ``median``, ``spread`` (sigma_MAD), ``mean``, ``p16``, ``p84``, ``n`` (finite values),
        ``n_undefined``.  Statistics are None when no value is finite (JSON ``null``).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    out: dict[str, float | int | None] = {"n": int(finite.size), "n_undefined": int(values.size - finite.size)}
    if finite.size == 0:
        out.update(median=None, spread=None, mean=None, p16=None, p84=None)
        return out
    p16, med, p84 = np.percentile(finite, [15.865525393145708, 50.0, 84.13447460685429])
    out.update(
        median=float(med),
        spread=float(robust_sigma(finite)),
        mean=float(finite.mean()),
        p16=float(p16),
        p84=float(p84),
    )
    return out


def ks_2samp(a: np.ndarray, b: np.ndarray) -> dict[str, float | None]:
    """Two-sample Kolmogorov-Smirnov test of two distributions (NaNs left out).

    Parameters
    ----------
    a, b : array_like
        Samples, for example the per-image noise sigma of the predictions and of the
        reference images.

    Returns
    -------
    dict
        ``statistic`` D (0: same empirical distribution, 1: disjoint) and ``pvalue``
        (small: the two samples are unlikely to come from one distribution); None if a
        sample is empty.
    """
    from scipy import stats

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return {"statistic": None, "pvalue": None}
    res = stats.ks_2samp(a, b)
    p = float(res.pvalue)
    return {"statistic": float(res.statistic), "pvalue": p if math.isfinite(p) else None}
