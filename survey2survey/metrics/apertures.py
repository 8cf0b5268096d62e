"""Circular apertures and annuli as pixel-weight maps, applied to whole stacks at once.

photutils computes the exact overlap of a circle with each pixel, but calling
``aperture_photometry`` once per image is far too slow for thousands of cutouts.  Every
cutout of a set shares one grid and one centre, so the weights are computed once with
photutils (:class:`~photutils.aperture.CircularAperture`,
:class:`~photutils.aperture.CircularAnnulus`) and the photometry of the whole stack is a
single matrix product (``tests/test_metrics.py`` checks it against photutils itself).

Pixel coordinates follow photutils: the centre of the first pixel is (0, 0), so the
geometric centre of an (H, W) cutout is ((W - 1) / 2, (H - 1) / 2).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "DEFAULT_APERTURE_ARCSEC",
    "DEFAULT_APERTURE_PX",
    "photometry_radius",
    "cutout_center",
    "default_r_max",
    "circular_weights",
    "annulus_weights",
    "aperture_sum",
    "weighted_sums",
]


#: Default photometry aperture radius when the pixel scale is known (arcsec).
DEFAULT_APERTURE_ARCSEC = 2.0
#: Default photometry aperture radius without a pixel scale (px).
DEFAULT_APERTURE_PX = 5.0


def photometry_radius(context) -> float:
    """Aperture radius in pixels for the photometry-type metrics (photometry, colour).

    ``context.aperture_radius`` (px) when given, else :data:`DEFAULT_APERTURE_ARCSEC` at
    ``context.pixel_scale``, else :data:`DEFAULT_APERTURE_PX`.
    """
    if context.aperture_radius is not None:
        return float(context.aperture_radius)
    if context.pixel_scale:
        return DEFAULT_APERTURE_ARCSEC / context.pixel_scale
    return DEFAULT_APERTURE_PX


def cutout_center(shape: tuple[int, int]) -> tuple[float, float]:
    """Geometric centre ``(x, y)`` in pixels of an image of ``shape`` = (H, W)."""
    h, w = shape
    return ((w - 1) / 2.0, (h - 1) / 2.0)


def default_r_max(shape: tuple[int, int]) -> float:
    """Radius in pixels of the largest circle inside the cutout (half the shorter side).

    Survey2Survey uses ``r_max = 75`` px on 150 px cutouts, which is this rule.
    """
    return min(shape) / 2.0


def _check(shape, center):
    shape = (int(shape[0]), int(shape[1]))
    if center is None:
        center = cutout_center(shape)
    return shape, (float(center[0]), float(center[1]))


@lru_cache(maxsize=32)
def _circular(shape, radius, center, method):
    from photutils.aperture import CircularAperture

    aperture = CircularAperture(center, r=radius)
    weights = aperture.to_mask(method=method).to_image(shape)
    if weights is None:  # the aperture lies outside the image
        weights = np.zeros(shape)
    weights = np.asarray(weights, dtype=np.float64)
    weights.setflags(write=False)
    return weights


def circular_weights(
    shape: tuple[int, int], radius: float, center: tuple[float, float] | None = None, method: str = "exact"
) -> np.ndarray:
    """Weight of each pixel in a circle of ``radius`` px (photutils overlap ``method``).

    Parameters
    ----------
    shape : (H, W)
    radius : float
        Pixels.
    center : (x, y), optional
        Pixels; default the cutout centre.
    method : {'exact', 'center', 'subpixel'}
        'exact': fractional overlap in [0, 1]; 'center': 1 where the pixel centre is inside.

    Returns
    -------
    ndarray, shape (H, W), float64, read-only
    """
    if not radius > 0:
        raise ValueError(f"aperture radius must be positive, got {radius}")
    shape, center = _check(shape, center)
    return _circular(shape, float(radius), center, method)


@lru_cache(maxsize=16)
def _annuli(shape, edges, center, method):
    from photutils.aperture import CircularAnnulus, CircularAperture

    out = np.zeros((len(edges) - 1,) + shape)
    for k, (r_in, r_out) in enumerate(zip(edges[:-1], edges[1:])):
        if r_in == 0:
            aperture = CircularAperture(center, r=r_out)
        else:
            aperture = CircularAnnulus(center, r_in=r_in, r_out=r_out)
        image = aperture.to_mask(method=method).to_image(shape)
        if image is not None:
            out[k] = image
    out.setflags(write=False)
    return out


def annulus_weights(
    shape: tuple[int, int], edges, center: tuple[float, float] | None = None, method: str = "exact"
) -> np.ndarray:
    """Weights of concentric annuli with the given radius ``edges`` (px).

    Parameters
    ----------
    shape : (H, W)
    edges : sequence of float
        Strictly increasing radii in pixels, the first >= 0; annulus k spans
        ``[edges[k], edges[k+1])`` (a disc when ``edges[0] == 0``).
    center : (x, y), optional
    method : str
        photutils overlap method.

    Returns
    -------
    ndarray, shape (K, H, W), float64, read-only
        K = len(edges) - 1.
    """
    edges = tuple(float(e) for e in edges)
    if len(edges) < 2 or edges[0] < 0 or any(b <= a for a, b in zip(edges[:-1], edges[1:])):
        raise ValueError("annulus edges must be >= 0 and strictly increasing")
    shape, center = _check(shape, center)
    return _annuli(shape, edges, center, method)


def weighted_sums(images: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_pix images * weights_k`` for every image of a stack and every weight map.

    Parameters
    ----------
    images : ndarray, shape (..., H, W)
    weights : ndarray, shape (K, H, W) or (H, W)

    Returns
    -------
    ndarray, shape (..., K) or (...), float64
        In the units of ``images`` (times pixels).

    Notes
    -----
    One BLAS matrix product over the whole stack.  Float32 input is summed in float32
    (BLAS accumulates in blocks, relative error ~1e-6 of ``sum |x w|``, far below the
    noise of any cutout) to avoid a float64 copy of the stack; float64 input stays float64.
    """
    images = np.asarray(images)
    h, w = images.shape[-2:]
    lead = images.shape[:-2]
    dtype = np.float64 if images.dtype == np.float64 else np.float32
    flat = images.reshape(-1, h * w).astype(dtype, copy=False)
    if weights.ndim == 2:
        out = flat @ weights.reshape(h * w).astype(dtype)
        return out.astype(np.float64).reshape(lead)
    k = weights.shape[0]
    out = flat @ weights.reshape(k, h * w).T.astype(dtype)  # (M, K)
    return out.astype(np.float64).reshape(lead + (k,))


def aperture_sum(images: np.ndarray, radius: float, center=None, method: str = "exact") -> np.ndarray:
    """Flux in a circular aperture for every image of a stack.

    Parameters
    ----------
    images : ndarray, shape (..., H, W)
        Native flux units per pixel.
    radius : float
        Pixels.

    Returns
    -------
    ndarray, shape (...)
        Summed flux, native units.
    """
    weights = circular_weights(images.shape[-2:], radius, center, method)
    return weighted_sums(images, weights)
