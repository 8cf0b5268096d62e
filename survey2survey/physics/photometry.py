"""Aperture photometry of the target's sky from a physics translation: a linear estimate.

The physics translation P keeps the source's PSF where the target's is sharper (it never
deconvolves the image), so its aperture fluxes miss what the sharper PSF would have put
inside.  Aperture photometry is linear, and a circle's flux in the target's PSF is a
low-frequency quantity: with both PSFs known it is estimated from P with a weight map that
corrects the PSF only where the circle's transform is large,

    F_est = sum_xy w(x, y) P(x, y),   w = A (*) h,   h = F^-1[ PSF_target(k) / PSF_P(k) ],

``A`` the circle (photutils' exact overlap), ``PSF_P`` what a point source looks like after
the physics (the source's PSF and pixels through the linear operator), and the ratio's
amplitude clipped to ``max_gain`` so that the noise it lets through stays bounded.  F_est is
linear in the input, so its error is the input's noise, symmetric about its expectation;
that expectation is the target's flux for sources the clip leaves resolved, observed with
the PSFs assumed (the registry's typical ones).  Compact sources, whose transform reaches
past the clip, and other seeing shift it (docs/methods.md measures both).

:class:`survey2survey.nets.anchor.PhotometryAnchor` holds a generator's aperture flux to
this estimate.
"""

from __future__ import annotations

import numpy as np

__all__ = ["point_source_images", "aperture_estimators", "blurred_discs", "source_noise_gain", "MAX_GAIN"]

#: Largest amplification of any spatial frequency in the PSF correction of the estimators.
MAX_GAIN = 8.0


def point_source_images(survey, bands, shape: tuple[int, int]) -> np.ndarray:
    """``(bands, H, W)`` unit-flux images of ``survey``'s typical PSF per band, pixel-integrated,
    centred on the geometric centre of the ``shape`` grid (GalSim)."""
    from survey2survey.physics.psf import make_psf

    h, w = shape
    return np.array([make_psf(survey.psf_profile, survey.typical_fwhm(b), survey.psf_beta)
                     .drawImage(nx=w, ny=h, scale=survey.pixel_scale).array for b in bands], dtype=np.float64)


def _padded_ft(images: np.ndarray, n: int) -> np.ndarray:
    pad = np.zeros(images.shape[:-2] + (n, n))
    pad[..., : images.shape[-2], : images.shape[-1]] = images
    return np.fft.rfft2(pad)


def aperture_estimators(psf_physics: np.ndarray, psf_target: np.ndarray, radii_px, max_gain: float = MAX_GAIN) -> np.ndarray:
    """Weight maps ``(bands, radii, H, W)``: ``sum(w * P)`` estimates the flux that the target's PSF
    would put in each centred circle of ``radii_px``.

    Parameters
    ----------
    psf_physics : ndarray, shape (bands, H, W)
        A centred point source after the physics translation, on the target grid.
    psf_target : ndarray, shape (bands, H, W)
        The target's PSF, centred on the same point, pixel-integrated, unit flux.
    radii_px : sequence of float
        Aperture radii in target pixels.
    max_gain : float
        Clip of the PSF ratio's amplitude (``inf``: no clip, and noise without bound).

    Returns
    -------
    ndarray, shape (bands, len(radii_px), H, W)
        The weights, on the target grid.
    """
    bands, h, w = psf_physics.shape
    n = 2 * max(h, w)  # zero padding: the circle's correlation with h does not wrap
    physics, target = _padded_ft(psf_physics, n), _padded_ft(psf_target, n)
    # both centred alike, so the ratio has no phase; where P passes nothing there is nothing to correct
    passes = np.abs(physics) > 1e-9 * np.abs(physics).max(axis=(-2, -1), keepdims=True)
    ratio = np.where(passes, target / np.where(passes, physics, 1.0), 0.0)
    amplitude = np.abs(ratio)
    ratio = np.where(amplitude > max_gain, ratio * max_gain / np.maximum(amplitude, 1e-300), ratio).real
    return _circles_through(ratio, radii_px, (h, w), n)  # the PSFs are symmetric: no flip


def _circles_through(transfer: np.ndarray, radii_px, shape: tuple[int, int], n: int) -> np.ndarray:
    """``(bands, radii, H, W)``: centred circles of ``radii_px`` convolved with the centred kernels
    whose transforms on the ``n`` x ``n`` padded grid are ``transfer`` (bands, n, n // 2 + 1)."""
    from survey2survey.metrics.apertures import circular_weights

    h, w = shape
    out = np.zeros((transfer.shape[0], len(radii_px), h, w))
    for i, radius in enumerate(radii_px):
        circle = _padded_ft(circular_weights((h, w), float(radius)), n)
        out[:, i] = np.fft.irfft2(circle[None] * transfer, s=(n, n))[:, :h, :w]
    return out


def blurred_discs(psf_target: np.ndarray, radii_px) -> np.ndarray:
    """Centred discs of ``radii_px`` seen through the target's PSF, ``(bands, radii, H, W)``: 1 well
    inside, 0 well outside, as smooth between as the target's PSF allows, centred where the
    circles are (the PSF's transform taken without its centre's phase: it is symmetric)."""
    h, w = psf_target.shape[-2:]
    n = 2 * max(h, w)
    return _circles_through(np.abs(_padded_ft(psf_target, n)), radii_px, (h, w), n)  # the centred PSF's transform


def source_noise_gain(estimators: np.ndarray, my: np.ndarray, mx: np.ndarray, correlation: float = 0.0) -> np.ndarray:
    """``(bands, radii)``: the noise of each estimate in units of the source's per-pixel sky sigma.

    The physics operator is ``P = sum_r My[b, r] X Mx[b, r]^T`` (:class:`~survey2survey.nets.residual.PhysicsOperator`),
    so an estimate ``sum(w * P)`` weighs the source pixels with ``v = sum_r My^T w Mx``.  The
    source's noise is white noise through the registry's separable ``[c, 1, c]`` kernel
    (``correlation`` c): by Parseval the estimate's variance per unit pixel variance is ``v``'s
    power weighted by that noise's spectrum (:func:`~survey2survey.physics.spectra.kernel_spectrum`,
    mean 1; 1 everywhere for white noise), as the registry's noise-equivalent areas are.
    """
    from survey2survey.physics.spectra import kernel_spectrum

    weights = np.einsum("brih,bjiw,brwx->bjhx", my, estimators, mx, optimize=True)
    power = np.abs(np.fft.fft2(weights)) ** 2
    shape = weights.shape[-2:]
    return np.sqrt((power * kernel_spectrum(shape, correlation)).sum(axis=(-2, -1)) / (shape[0] * shape[1]))
