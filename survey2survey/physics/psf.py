"""Point-spread functions of the registry: GalSim profiles, their sizes, seeing from headers.

A survey's PSF in one band is a round Kolmogorov or Moffat profile of a given FWHM
(``psf_profile``, ``psf_beta``, ``psf_fwhm`` in ``surveys.toml``).  Per-object seeing is
read from header keywords (``Survey.seeing_keyword_names``) when a file has them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from survey2survey.physics.spectra import kernel_spectrum

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
def _nea(profile: str, fwhm: float, pixel_scale: float, beta: float, correlation: float) -> float:
    psf = make_psf(profile, fwhm, beta)
    n = int(np.ceil(12 * fwhm / pixel_scale)) | 1
    image = psf.drawImage(nx=n, ny=n, scale=pixel_scale).array.astype(np.float64)  # pixel-integrated
    nea = 1.0 / np.sum(image**2)
    if correlation:
        # p^T rho p / p^T p by Parseval: the PSF's power weighted by the noise spectrum (mean 1)
        power = np.abs(np.fft.fft2(image)) ** 2
        nea *= float(np.sum(power * kernel_spectrum(image.shape, correlation)) / np.sum(power))
    return float(nea)


def noise_equivalent_area(profile: str, fwhm: float, pixel_scale: float, beta: float = 3.0,
                          correlation: float = 0.0) -> float:
    """Noise-equivalent area (pixels) of the PSF drawn on the pixel grid.

    ``1 / sum p_i**2`` for white noise: a point source of flux F measured with the
    PSF-weighted filter on noise of per-pixel sigma s has S/N ``F / (s sqrt(NEA))``, so a
    5-sigma depth gives s.  With correlated noise (the registry's ``noise_correlation``
    c, correlation matrix rho) the flux variance is ``s**2 p^T rho p / (p^T p)**2``: the
    returned area is ``p^T rho p / (p^T p)**2``, larger than the white one (about
    ``(1 + 2c)**4 / (1 + 2c**2)**2`` times for a PSF much wider than a pixel), so the same
    depth gives a smaller per-pixel sigma.
    """
    return _nea(profile, round(float(fwhm), _FWHM_DECIMALS), float(pixel_scale), float(beta), float(correlation))


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
