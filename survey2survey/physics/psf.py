"""Point-spread functions of the registry: GalSim profiles, their sizes, seeing from headers.

A survey's PSF in one band is a round Kolmogorov or Moffat profile of a given FWHM
(``psf_profile``, ``psf_beta``, ``psf_fwhm`` in ``surveys.toml``).  Per-object seeing is
read from header keywords (``Survey.seeing_keyword_names``) when a file has them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["make_psf", "noise_equivalent_area", "effective_fwhm", "header_fwhm", "fwhm_of_image"]

#: FWHMs are rounded to this many decimals (arcsec) before a cached computation.
_FWHM_DECIMALS = 4


def make_psf(profile: str, fwhm: float, beta: float = 3.0):
    """A unit-flux GalSim PSF: ``"kolmogorov"`` or ``"moffat"`` (index ``beta``) of ``fwhm`` arcsec."""
    import galsim

    if profile == "moffat":
        return galsim.Moffat(beta=beta, fwhm=fwhm)
    if profile == "kolmogorov":
        return galsim.Kolmogorov(fwhm=fwhm)
    raise ValueError(f"unknown PSF profile {profile!r} (kolmogorov or moffat)")


@lru_cache(maxsize=256)
def _nea(profile: str, fwhm: float, pixel_scale: float, beta: float) -> float:
    psf = make_psf(profile, fwhm, beta)
    n = int(np.ceil(12 * fwhm / pixel_scale)) | 1
    image = psf.drawImage(nx=n, ny=n, scale=pixel_scale).array.astype(np.float64)  # pixel-integrated
    return float(1.0 / np.sum(image**2))


def noise_equivalent_area(profile: str, fwhm: float, pixel_scale: float, beta: float = 3.0) -> float:
    """Noise-equivalent area ``1 / sum p_i**2`` (pixels) of the PSF drawn on the pixel grid.

    A point source of flux F measured with the optimal (PSF-weighted) filter on white noise
    of per-pixel sigma s has S/N ``F / (s sqrt(NEA))``; a 5-sigma depth gives s.
    """
    return _nea(profile, round(float(fwhm), _FWHM_DECIMALS), float(pixel_scale), float(beta))


@lru_cache(maxsize=256)
def _effective_fwhm(profile: str, fwhm: float, beta: float, pixel_scale: float, n_boxes: int) -> float:
    import galsim

    parts = [make_psf(profile, fwhm, beta)] + [galsim.Pixel(pixel_scale)] * n_boxes
    obj = galsim.Convolve(parts) if n_boxes else parts[0]
    n = int(np.ceil(8 * fwhm / (pixel_scale / 8))) | 1
    image = obj.drawImage(nx=n, ny=n, scale=pixel_scale / 8, method="no_pixel")
    return float(image.calculateFWHM())


def effective_fwhm(profile: str, fwhm: float, pixel_scale: float, n_boxes: int, beta: float = 3.0) -> float:
    """FWHM (arcsec) of the PSF convolved with ``n_boxes`` pixel boxes of ``pixel_scale``.

    What a pixelised image resampled with a box (1) or linear (2) interpolant shows of
    a point source, before the pixels of the target grid.
    """
    return _effective_fwhm(profile, round(float(fwhm), _FWHM_DECIMALS), float(beta), float(pixel_scale), int(n_boxes))


def header_fwhm(header, names) -> tuple[float | None, str | None]:
    """The first of ``names`` present in ``header`` with a plausible FWHM (0.05-10 arcsec).

    Returns
    -------
    (float or None, str or None)
        FWHM in arcsec and the keyword it came from, or (None, None).
    """
    if header is None:
        return None, None
    for key in names:
        try:
            value = header.get(key)
        except Exception:  # a damaged card: not a seeing
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if 0.05 <= float(value) <= 10.0:
            return float(value), key
    return None, None


def fwhm_of_image(image: np.ndarray, pixel_scale: float) -> float:
    """FWHM (arcsec) of a centred source in a noise-free image (GalSim's radial profile)."""
    import galsim

    img = galsim.ImageD(np.ascontiguousarray(image, dtype=np.float64), scale=pixel_scale)
    return float(img.calculateFWHM())
