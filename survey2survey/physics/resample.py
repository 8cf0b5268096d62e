"""Flux-conserving, separable resampling onto another pixel grid with the same centre.

The input image is read as a surface brightness built from its pixels with an interpolant
(a basis function per pixel, of unit integral), and each output pixel receives the
integral of that surface over its area: an exact, linear, flux-conserving map.  For
axis-aligned grids it factorises: ``out = Wy @ image @ Wx.T`` with one small weight matrix
per axis, ``W[m, i]`` = integral of pixel i's basis over output pixel m.

Interpolants (``basis``):

* ``"box"``: each input pixel is a uniform square (area-weighted "drizzle" with pixfrac 1);
  the right choice when output pixels are larger than input ones: it adds the blur of one
  input pixel box;
* ``"linear"``: each input pixel is a tent of half-width one pixel (bilinear interpolation,
  integrated): no blocky steps when output pixels are smaller; it adds the blur of two
  input pixel boxes.

The PSF matching kernel (:mod:`survey2survey.physics.kernel`) accounts for that blur.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["BASIS_BOXES", "axis_weights", "resample"]

#: Number of input pixel boxes each interpolant convolves the image with.
BASIS_BOXES = {"box": 1, "linear": 2}


def _box_cdf(x: np.ndarray) -> np.ndarray:
    return np.clip(x + 0.5, 0.0, 1.0)


def _tent_cdf(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, -1.0, 1.0)
    return np.where(x < 0, 0.5 * (x + 1.0) ** 2, 1.0 - 0.5 * (1.0 - x) ** 2)


@lru_cache(maxsize=64)
def axis_weights(n_in: int, n_out: int, ratio: float, basis: str = "box") -> np.ndarray:
    """Weights ``W`` (n_out, n_in) of one axis; centres of the two grids coincide.

    Parameters
    ----------
    n_in, n_out : int
        Pixels along the axis.
    ratio : float
        Output pixel size in input pixels (``p_out / p_in``).
    basis : {"box", "linear"}

    Returns
    -------
    ndarray, float64, read-only
        Row sums are 1 wherever the output pixel lies within the input (an output pixel
        over the border reads the mirrored image); column i sums to the fraction of input
        pixel i's flux that lands in the output: 1 when the two footprints agree.
    """
    cdf = {"box": _box_cdf, "linear": _tent_cdf}[basis]
    c_in, c_out = (n_in - 1) / 2.0, (n_out - 1) / 2.0
    m = np.arange(n_out)
    lo = c_in + (m - c_out - 0.5) * ratio  # output pixel edges in input pixel coordinates
    hi = lo + ratio
    # The image is mirrored about its edges (virtual pixels -k-1 = k and n_in+k = n_in-1-k):
    # the part of an edge pixel's interpolant that falls outside the image comes back
    # inside, and an output pixel over the border (the footprint is rounded to whole
    # target pixels) sees the edge's surface brightness: a flat sky stays flat to the
    # last pixel instead of darkening into a frame.
    pad = int(np.ceil(max(0.0, -lo[0], hi[-1] - (n_in - 1)))) + 1
    i = np.arange(-pad, n_in + pad)
    w_ext = cdf(hi[:, None] - i[None, :]) - cdf(lo[:, None] - i[None, :])
    source = np.abs(i + 0.5) - 0.5  # reflect about -0.5 ...
    period = 2 * n_in
    source = np.mod(source, period)
    source = np.where(source >= n_in, period - 1 - source, source).astype(int)  # ... and about n_in - 0.5
    w = np.zeros((n_out, n_in))
    np.add.at(w.T, source, w_ext.T)
    w.setflags(write=False)
    return w


#: Sparse (CSR) copies of weight matrices (which come from the lru_cache of :func:`axis_weights`).
_SPARSE: dict[int, tuple] = {}


def _sparse(w: np.ndarray):
    hit = _SPARSE.get(id(w))
    if hit is not None and hit[0] is w:
        return hit[1]
    from scipy import sparse

    csr = sparse.csr_array(w)
    if len(_SPARSE) > 256:
        _SPARSE.clear()
    _SPARSE[id(w)] = (w, csr)
    return csr


def resample(images: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """``wy @ image @ wx.T`` for every image of a stack (..., H, W) -> (..., Ho, Wo), float64.

    Each output pixel takes a handful of input pixels (the interpolant's support), so the
    two products run with sparse weights, one image at a time (small arrays that stay in
    the CPU cache; single-threaded, no BLAS threads contending for shared cores).
    """
    images = np.asarray(images, dtype=np.float64)
    lead, (h, w) = images.shape[:-2], images.shape[-2:]
    flat = images.reshape(-1, h, w)
    sy, sx = _sparse(wy), _sparse(wx)
    out = np.empty((len(flat), wy.shape[0], wx.shape[0]))
    for i, image in enumerate(flat):
        out[i] = (sx @ (sy @ image).T).T  # (Ho, W) then (Ho, Wo)
    return out.reshape(lead + out.shape[1:])
