"""FITS cutouts in and out: the I/O layer every command shares, on ``astropy.io.fits``.

* :mod:`~survey2survey.fits_io.files` -- finding cutouts (directories, globs, compressed
  files, one file per band) and opening them safely;
* :mod:`~survey2survey.fits_io.read` -- :func:`read_cutout`: any layout (cube,
  multi-extension, one file per band, SDSS frames) as (bands, H, W) in the survey's band
  order and native unit;
* :mod:`~survey2survey.fits_io.bands` -- which band each plane is, from the header;
* :mod:`~survey2survey.fits_io.units` -- ``BUNIT`` and calibration keywords;
* :mod:`~survey2survey.fits_io.wcs` -- the celestial WCS as ``astropy.wcs.WCS`` reads it,
  rescaled to an output grid, the pixel scale, the survey guess;
* :mod:`~survey2survey.fits_io.write` -- :func:`write_cutout` with provenance and
  checksums, written atomically; :func:`verify_fits` and :func:`is_s2s_output`.

``docs/fits-headers.md`` describes the keywords read and written.
"""

from survey2survey.fits_io.files import FITS_SUFFIXES, CutoutSource, find_cutouts
from survey2survey.fits_io.read import MAX_BAD_FRACTION, Cutout, flat_planes, read_cutout
from survey2survey.fits_io.units import native_factor
from survey2survey.fits_io.wcs import (
    SCALE_TOLERANCE,
    detect_survey,
    make_wcs,
    pixel_scale_arcsec,
    rescale_wcs,
    wcs_cards,
)
from survey2survey.fits_io.write import (
    Provenance,
    commit_outputs,
    header_text,
    is_s2s_output,
    verify_fits,
    write_cutout,
    write_hdul_atomic,
)

__all__ = [
    "Cutout",
    "CutoutSource",
    "Provenance",
    "FITS_SUFFIXES",
    "MAX_BAD_FRACTION",
    "SCALE_TOLERANCE",
    "find_cutouts",
    "read_cutout",
    "flat_planes",
    "write_cutout",
    "rescale_wcs",
    "make_wcs",
    "detect_survey",
    "pixel_scale_arcsec",
    "native_factor",
    "verify_fits",
    "is_s2s_output",
    "header_text",
    "wcs_cards",
    "write_hdul_atomic",
    "commit_outputs",
]
