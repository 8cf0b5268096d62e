"""PSF homogenisation: the kernel that turns one PSF into a broader one.

Where the target PSF ``P_out`` is broader than what the input shows, the input is
convolved with ``k = P_out (*) (P_in (*) B^n)^-1`` on the input grid, drawn with GalSim as
``Convolve(P_out, Deconvolve(Convolve(P_in, Pixel^n)))`` sampled at the pixel centres
(``method="no_pixel"``).  ``B^n`` are the n pixel boxes of the input grid: one for the pixel
the input was integrated over, and one or two that the resampling interpolant adds
(:mod:`survey2survey.physics.resample`); the target's own pixel comes from integrating over
the output pixels.  The result, resampled, is the sky through ``P_out`` integrated over the
target's pixels: what the target survey would have recorded.  The target is never made
sharper (no deconvolution of the image itself).

Convolution runs through real FFTs on images padded by mirror reflection (half-sample
symmetric): with a symmetric kernel the operator has unit column sums, so the total flux
is conserved exactly and the edges neither darken nor brighten.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from survey2survey.physics.psf import make_psf

__all__ = ["matching_kernel", "convolve", "convolve_stack"]

#: The kernel extends to this many target FWHMs from its centre.
_RADIUS_FWHM = 4.0
#: Rounds of clipping the kernel's Fourier gain to 1 (see :func:`_no_gain`).
_CLIP_ITERATIONS = 20


@lru_cache(maxsize=512)
def _kernel(profile_in, fwhm_in, beta_in, profile_out, fwhm_out, beta_out, pixel_scale, n_boxes):
    import galsim

    radius = int(np.ceil(_RADIUS_FWHM * fwhm_out / pixel_scale))
    source = galsim.Convolve([make_psf(profile_in, fwhm_in, beta_in)] + [galsim.Pixel(pixel_scale)] * n_boxes)
    kernel = galsim.Convolve(make_psf(profile_out, fwhm_out, beta_out), galsim.Deconvolve(source))
    image = kernel.drawImage(nx=2 * radius + 1, ny=2 * radius + 1, scale=pixel_scale, method="no_pixel")
    k = _no_gain(image.array.astype(np.float64))
    # mirror symmetric along both axes (round PSFs): with mirror-padded edges the
    # convolution then has unit column sums, i.e. conserves flux exactly
    k = 0.25 * (k + k[::-1] + k[:, ::-1] + k[::-1, ::-1])
    k /= k.sum()
    k.setflags(write=False)
    return k


def _no_gain(k: np.ndarray) -> np.ndarray:
    """The kernel with its Fourier amplitude clipped to <= 1.

    Homogenising to a broader PSF of another profile (a Kolmogorov input, a Moffat target
    of similar FWHM) divides by the input's faster-falling transform: the raw kernel would
    amplify high frequencies (noise) many times.  A smoothing kernel never amplifies any
    frequency, so the amplitude is clipped to 1 there; where the input is already smoother
    than the target the output keeps the input's (slightly sharper) high frequencies.
    """
    n = k.shape[0]
    for _ in range(_CLIP_ITERATIONS):  # cropping back to n x n brings a little gain back: repeat
        padded = np.zeros((2 * n, 2 * n))
        padded[:n, :n] = k
        padded = np.roll(padded, (-(n // 2), -(n // 2)), axis=(0, 1))  # kernel centre at the origin
        ft = np.fft.fft2(padded)
        gain = np.abs(ft)
        if gain.max() <= 1.01:
            break
        ft *= np.minimum(1.0, 1.0 / np.maximum(gain, 1e-300))
        k = np.roll(np.fft.ifft2(ft).real, (n // 2, n // 2), axis=(0, 1))[:n, :n]
    return k


def matching_kernel(
    psf_in: tuple[str, float, float], psf_out: tuple[str, float, float], pixel_scale: float, n_boxes: int
) -> np.ndarray:
    """Kernel (2R+1, 2R+1), unit sum, taking ``psf_in`` (with ``n_boxes`` pixel boxes) to ``psf_out``.

    Parameters
    ----------
    psf_in, psf_out : (profile, fwhm arcsec, Moffat beta)
    pixel_scale : float
        Arcsec per pixel of the grid the kernel is applied on (the input's).
    n_boxes : int
        Input pixel boxes already in the image plus those the resampling adds.
    """
    p_in, f_in, b_in = psf_in
    p_out, f_out, b_out = psf_out
    return _kernel(p_in, round(float(f_in), 4), float(b_in), p_out, round(float(f_out), 4), float(b_out),
                   float(pixel_scale), int(n_boxes))


def convolve_stack(images: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Convolve every image of a stack (..., H, W) with kernel ``k``; float32.

    Mirror-padded by the kernel's radius (flux conserving), real FFTs in float32 (relative
    round-off ~1e-7, far below any noise).
    """
    from scipy import fft

    images = np.asarray(images, dtype=np.float32)
    r = k.shape[0] // 2
    h, w = images.shape[-2:]
    pad = [(0, 0)] * (images.ndim - 2) + [(r, r), (r, r)]
    padded = np.pad(images, pad, mode="symmetric")
    shape = (fft.next_fast_len(padded.shape[-2], real=True), fft.next_fast_len(padded.shape[-1], real=True))
    conv = fft.irfft2(fft.rfft2(padded, shape) * _kernel_ft(k, shape), shape)
    return conv[..., 2 * r : 2 * r + h, 2 * r : 2 * r + w]


def convolve(images: np.ndarray, kernels: list[np.ndarray | None]) -> np.ndarray:
    """Convolve band j of ``images`` (..., B, H, W) with ``kernels[j]`` (None: unchanged); float32."""
    out = np.array(images, dtype=np.float32, copy=True)
    for j, k in enumerate(kernels):
        if k is not None:
            out[..., j, :, :] = convolve_stack(out[..., j, :, :], k)
    return out


#: FFTs of cached kernels, keyed by the kernel object and the FFT shape.
_FT_CACHE: dict = {}


def _kernel_ft(k: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """rfft2 of kernel ``k`` on ``shape`` (kernels come from an lru_cache: same object, same FFT)."""
    from scipy import fft

    cache_key = (id(k), shape)
    hit = _FT_CACHE.get(cache_key)
    if hit is not None and hit[0] is k:
        return hit[1]
    ft = fft.rfft2(k.astype(np.float32), shape)
    if len(_FT_CACHE) > 256:
        _FT_CACHE.clear()
    _FT_CACHE[cache_key] = (k, ft)
    return ft
