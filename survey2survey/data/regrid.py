"""Flux-conserving regridding of a cutout onto another survey's pixel grid.

Methods (g) CycleGAN and (h) Augmented CycleGAN of Lin & Fouchez (2021) work on CFHT
cutouts brought to SDSS's 64 x 64 grid.  The paper used bilinear interpolation; here the
resampling is :func:`reproject.reproject_adaptive` (DeForest 2004) with
``conserve_flux=True``: it anti-aliases while shrinking the pixel count 4.5x and keeps the
total flux of each band (to ~0.1 % for a galaxy inside the footprint), so a regridded
CFHT galaxy has the flux an SDSS pixel sum of it would have.

Pixel values are fluxes per pixel (not surface brightness): the sum over a cutout is the
same before and after, up to the flux that falls outside the new footprint.
"""

from __future__ import annotations

import warnings

import numpy as np

from survey2survey.surveys import Survey, get_survey

__all__ = ["regrid", "regrid_to_survey", "KERNEL"]

#: reproject_adaptive's kernel: Hann is ~2.5x faster than the Gaussian and conserves
#: flux as well (measured: 0.06 % vs 0.02 % loss for a 2" galaxy, CFHT -> SDSS).
KERNEL = "hann"


def regrid(data: np.ndarray, wcs_in, wcs_out, shape_out: tuple[int, int]) -> np.ndarray:
    """Resample pixel fluxes from one celestial grid onto another, conserving flux.

    Parameters
    ----------
    data : ndarray, shape (bands, H, W) or (H, W)
        Flux per input pixel (any linear unit; the output has the same unit).
    wcs_in, wcs_out : astropy.wcs.WCS
        2-D celestial WCS of the input and the output grids.
    shape_out : (int, int)
        Output (H, W).

    Returns
    -------
    ndarray, shape (bands, H_out, W_out) or (H_out, W_out), float32
        Flux per output pixel; output pixels outside the input footprint are 0.
    """
    from astropy.utils.exceptions import AstropyWarning
    from reproject import reproject_adaptive

    data = np.asarray(data, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN kernels at the very edge
        out = reproject_adaptive(
            (data, wcs_in),
            wcs_out,
            shape_out=tuple(shape_out),
            conserve_flux=True,
            kernel=KERNEL,
            boundary_mode="ignore",
            return_footprint=False,
        )
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def regrid_to_survey(
    data: np.ndarray, source: Survey | str, target: Survey | str, wcs=None, return_wcs: bool = False
):
    """A ``source`` cutout on ``target``'s nominal grid, centred on the same sky position.

    The output grid is ``target.cutout_size`` square pixels of ``target.pixel_scale``,
    north up, centred where the input cutout is centred.  Values stay in ``source``'s native
    unit, per output pixel: multiply by ``source.flux_factor`` for nanomaggies.

    Parameters
    ----------
    data : ndarray, shape (bands, H, W)
        The cutout in ``source``'s native units.
    source, target : Survey or str
    wcs : astropy.wcs.WCS, optional
        Celestial WCS of ``data``; without one the cutout is taken as a north-up grid of
        ``source.pixel_scale`` (its position does not matter then).
    return_wcs : bool
        Also return the WCS of the output grid.

    Returns
    -------
    ndarray, shape (bands, target.cutout_size, target.cutout_size), float32
        And the output grid's WCS with ``return_wcs``.
    """
    from survey2survey.fits_io import make_wcs

    source, target = get_survey(source), get_survey(target)
    h, w = data.shape[-2:]
    if wcs is None:
        wcs = make_wcs(0.0, 0.0, source.pixel_scale, (h, w))
    ra, dec = wcs.all_pix2world([[(w - 1) / 2.0, (h - 1) / 2.0]], 0)[0]
    size = target.cutout_size
    wcs_out = make_wcs(float(ra), float(dec), target.pixel_scale, (size, size))
    out = regrid(data, wcs, wcs_out, (size, size))
    return (out, wcs_out) if return_wcs else out
