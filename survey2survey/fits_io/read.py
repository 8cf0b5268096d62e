"""Reading one object's cutout, whatever layout it comes in, as (bands, H, W) in native units.

Layouts:

* **cube** -- one image HDU (primary or an extension) with NAXIS3 = bands, the bands
  named by its keywords (:mod:`survey2survey.fits_io.bands`); HDUs after the cube (``s2s``'s
  ``MASK`` and ``SAMPLEn``) are not taken for bands;
* **multi-extension** -- one 2-D image HDU per band (an SDSS ``frame-*.fits`` is one: its
  1-D calibration HDU and its tables are left aside);
* **one file per band** -- grouped by :func:`~survey2survey.fits_io.files.find_cutouts`.

Whatever the file order, the returned array is in the survey's band order.  Pixel values
are converted to the survey's native unit (:mod:`survey2survey.fits_io.units`).  A file
that names no bands at all is taken in the survey's order, with a warning.  With
``partial=True`` the bands present are returned (in survey order) instead of refusing a
cutout that lacks some.

Bad pixels: non-finite pixels are replaced by 0 (the sky-subtracted background level) and
flagged in :attr:`Cutout.mask`; a band with more than ``max_bad_fraction`` of them
(default 5 %) makes the cutout unusable.  A band that is all zero or constant is read,
with a warning: it is padding, not an image.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS

from survey2survey.errors import CutoutError
from survey2survey.fits_io.bands import cube_band_names, image_band_name, normalise_band
from survey2survey.fits_io.files import CutoutSource, file_problems, one_line, open_fits, strip_suffix
from survey2survey.fits_io.units import native_factor
from survey2survey.fits_io.wcs import celestial_wcs, detect_survey, pixel_scale_arcsec
from survey2survey.surveys import Survey, get_survey

__all__ = ["Cutout", "read_cutout", "MAX_BAD_FRACTION"]

#: Default largest fraction of non-finite pixels per band that is filled rather than refused.
MAX_BAD_FRACTION = 0.05

_BITPIX = (8, 16, 32, 64, -32, -64)
#: Primary-header keywords an image in an extension takes when it does not set them.
_INHERITED = ("SURVEY", "TELESCOP", "INSTRUME", "OBJECT", "RA", "DEC")


@dataclass
class Cutout:
    """One object's multi-band cutout in native units.

    Attributes
    ----------
    data : ndarray, shape (bands, H, W), float32
        Pixel values in the survey's native units, bands in the survey's order.
    bands : tuple of str
        The band of each plane (all the survey's bands, unless read with ``partial=True``).
    wcs : astropy.wcs.WCS or None
        2-D celestial WCS of the image plane, if the file had a usable one.
    header : astropy.io.fits.Header
        The header of the (first) image HDU, as read.
    path : Path
    object_id : str
    survey : Survey or None
    mask : ndarray of bool, shape (bands, H, W), or None
        True where a pixel was not finite and was filled with 0.
    warnings : list of str
    unit : str or None
        ``BUNIT`` of the (first) image as read (the data are converted to the survey's unit).
    """

    data: np.ndarray
    bands: tuple[str, ...]
    wcs: WCS | None
    header: fits.Header
    path: Path
    object_id: str
    survey: Survey | None = None
    mask: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    unit: str | None = None

    @property
    def n_bad_pixels(self) -> int:
        return 0 if self.mask is None else int(self.mask.sum())

    @property
    def pixel_scale(self) -> float | None:
        """Pixel scale of the WCS in arcsec (:func:`pixel_scale_arcsec`), or None without a WCS."""
        return None if self.wcs is None else pixel_scale_arcsec(self.wcs)

    def center_radec(self) -> tuple[float, float] | None:
        """Sky position (deg) of the cutout centre, or None without a WCS."""
        if self.wcs is None:
            return None
        h, w = self.data.shape[-2:]
        ra, dec = self.wcs.all_pix2world([[(w - 1) / 2.0, (h - 1) / 2.0]], 0)[0]
        return float(ra), float(dec)


@dataclass
class _Planes:
    """What the files of one object hold, before bands and units are resolved."""

    data: list[np.ndarray] = field(default_factory=list)  # (H, W) each
    headers: list[fits.Header] = field(default_factory=list)  # the header of each plane's HDU
    names: list[str | None] = field(default_factory=list)  # band per plane, when known
    cube_header: fits.Header | None = None  # a cube's header: names resolved with the survey
    primary: fits.Header | None = None  # primary header of an image in an extension
    header: fits.Header | None = None  # the first image's header
    wcs: WCS | None = None
    mask: np.ndarray | None = None  # from a MASK extension, file plane order


def _image_hdus(hdul: fits.HDUList, path: Path) -> tuple[list, list]:
    """(images of 2 or 3 axes, MASK extensions); 1-D HDUs (SDSS calibration vectors) are left aside."""
    images, masks, others = [], [], []
    for hdu in hdul:
        if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
            continue
        naxis = hdu.header.get("NAXIS", 0)
        if not naxis:
            continue
        if hdu.name == "MASK":
            masks.append(hdu)
        elif naxis in (2, 3):
            images.append(hdu)
        else:
            others.append(hdu)
    if any(h.header.get("NAXIS") != 1 for h in others) or (others and not images):
        shapes = ", ".join(str(h.data.shape if h.data is not None else None) for h in (images + others)[:3])
        raise CutoutError(
            path, f"wrong number of axes: expected a (bands, H, W) cube or one 2-D image per band, found {shapes}"
        )
    if not images:
        raise CutoutError(path, "no image data in any HDU")
    return images, masks


def _load_data(hdu, path: Path) -> np.ndarray:
    bitpix = hdu.header.get("BITPIX")
    if bitpix not in _BITPIX:
        raise CutoutError(path, f"invalid BITPIX {bitpix!r} (not a FITS data type)")
    if not isinstance(hdu, fits.CompImageHDU) and _is_plain_fits(path):
        # checked before reading: a damaged NAXISn would otherwise allocate the declared size
        declared = abs(bitpix) // 8
        for i in range(1, hdu.header.get("NAXIS", 0) + 1):
            declared *= int(hdu.header.get(f"NAXIS{i}", 0))
        size = path.stat().st_size
        if declared > size:
            raise CutoutError(path, f"truncated image data (header declares {declared:,} bytes, the file has {size:,})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            data = hdu.data
    except (OSError, ValueError, TypeError, KeyError, MemoryError) as exc:
        raise CutoutError(path, f"truncated or corrupt image data ({one_line(exc)})") from None
    if data is None:
        raise CutoutError(path, "image HDU has no data")
    expected = 1
    for i in range(1, hdu.header.get("NAXIS", 0) + 1):
        expected *= hdu.header.get(f"NAXIS{i}", 0)
    if data.size != expected:
        raise CutoutError(path, "truncated image data")
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, a bad pixel (masked) like NaN
        return np.asarray(data, dtype=np.float32)


def _is_plain_fits(path: Path) -> bool:
    """True for an uncompressed FITS file (not gzip/bzip2/zip), whose size bounds its data."""
    with open(path, "rb") as fh:
        return fh.read(6) == b"SIMPLE"


def _read_file(path: Path, band: str | None, planes: _Planes, warn: list[str]) -> None:
    """Add the image planes of one file to ``planes`` (``band``: the band of a per-band file)."""
    with file_problems(path), open_fits(path) as hdul:
        images, masks = _image_hdus(hdul, path)
        first = images[0]
        primary = hdul[0].header if first is not hdul[0] and isinstance(hdul[0], fits.PrimaryHDU) else None
        if planes.header is None:
            planes.header, planes.primary = first.header, primary
            if primary is not None:  # keep the primary header's survey keywords for an image in an extension
                for key in _INHERITED:
                    if key in primary and key not in first.header:
                        first.header[key] = primary[key]
            planes.wcs = celestial_wcs(first.header, warn)
        if band is not None:
            if len(images) != 1 or images[0].header.get("NAXIS") != 2:
                raise CutoutError(path, "per-band file must hold exactly one 2-D image")
            planes.data.append(_load_data(first, path))
            planes.headers.append(first.header)
            planes.names.append(band)
        elif first.header.get("NAXIS") == 3:
            # the first cube is the cutout; further HDUs (extra noise samples) are not read
            cube = _load_data(first, path)
            planes.data += list(cube)
            planes.headers += [first.header] * cube.shape[0]
            planes.cube_header = first.header
            if masks and masks[0].data is not None and masks[0].data.shape == cube.shape:
                planes.mask = np.asarray(masks[0].data) != 0
        elif all(h.header.get("NAXIS") == 2 for h in images):
            for h in images:
                planes.data.append(_load_data(h, path))
                planes.headers.append(h.header)
                planes.names.append(None)
        else:
            shapes = ", ".join(str(h.data.shape) for h in images[:3])
            raise CutoutError(
                path, f"wrong number of axes: expected a (bands, H, W) cube or one 2-D image per band, found {shapes}"
            )


def _band_names(planes: _Planes, source: CutoutSource, survey: Survey | None) -> list[str | None]:
    """Band of each plane (survey names when the survey is known), None for unnamed planes."""
    path = source.path
    if planes.cube_header is not None:
        names = cube_band_names(planes.cube_header, len(planes.data), survey, path)
        return list(names) if names is not None else [None] * len(planes.data)
    if source.per_band:
        names = list(planes.names)
        if survey is not None:
            mapped = [normalise_band(n, survey) for n in names]
            for n, m in zip(names, mapped):
                if m is None:
                    known = ",".join(survey.bands)
                    raise CutoutError(path, f"band {n!r} is not a band of survey {survey.name} ({known})")
            names = mapped
        return names
    return [image_band_name(h, survey, path) for h in planes.headers]


def _order(names: list[str | None], survey: Survey, path: Path, partial: bool, warn: list[str]) -> list[int]:
    """Plane index of each band returned, in survey order."""
    if all(n is None for n in names):
        if len(names) != survey.n_bands:
            raise CutoutError(path, f"{len(names)} bands without names, survey {survey.name} has {survey.n_bands}")
        warn.append(f"no band keywords: bands taken in {survey.name} order ({','.join(survey.bands)})")
        return list(range(len(names)))
    if any(n is None for n in names):
        raise CutoutError(path, "some image HDUs name their band and some do not")
    if len(set(names)) != len(names):
        raise CutoutError(path, f"duplicate bands {names}")
    missing = [b for b in survey.bands if b not in names]
    if missing and not partial:
        raise CutoutError(path, f"missing band(s) {','.join(missing)} for survey {survey.name}")
    return [names.index(b) for b in survey.bands if b in names]


def _convert_units(planes: _Planes, survey: Survey, path: Path, warn: list[str]) -> None:
    """Scale each plane to ``survey``'s native unit (in place), one note per distinct conversion."""
    notes: list[str] = []
    factors: dict[int, tuple[float, str | None]] = {}
    for k, header in enumerate(planes.headers):
        if id(header) not in factors:
            factors[id(header)] = native_factor(header, survey, path, planes.primary)
        factor, note = factors[id(header)]
        if factor != 1.0:
            planes.data[k] = planes.data[k] * np.float32(factor)
        if note is not None and note not in notes:
            notes.append(note)
    warn.extend(notes)


def _fill_bad(data: np.ndarray, path: Path, max_bad_fraction: float, bands: Sequence[str]):
    bad = ~np.isfinite(data)
    if not bad.any():
        return data, None
    per_band = bad.reshape(bad.shape[0], -1).mean(axis=1)
    worst = int(np.argmax(per_band))
    if per_band[worst] > max_bad_fraction:
        raise CutoutError(
            path,
            f"{per_band[worst]:.1%} of band {bands[worst]} pixels are NaN/inf "
            f"(more than {max_bad_fraction:.0%}; cutout skipped)",
        )
    return np.where(bad, np.float32(0.0), data), bad


def flat_planes(data: np.ndarray) -> np.ndarray:
    """(C,) True where a plane of ``data`` (C, H, W) is all zero or constant: padding, not an image."""
    flat = data.reshape(data.shape[0], -1)
    return flat.min(axis=1) == flat.max(axis=1)


def _flat_bands(data: np.ndarray, bands: Sequence[str]) -> str | None:
    """A warning naming bands that are all zero or constant (padding, not an image), or None."""
    hi = data.reshape(data.shape[0], -1).max(axis=1)
    said = []
    for k in np.flatnonzero(flat_planes(data)):
        said.append(f"{bands[k]} all zero" if hi[k] == 0 else f"{bands[k]} constant ({hi[k]:g})")
    if not said:
        return None
    return f"band(s) {', '.join(said)}: no image there (a padded or missing band?)"


#: Bands whose pixel grids lie further apart than this (pixels, by their WCSs) are moved onto the
#: first image's grid; further than :data:`MAX_BAND_SHIFT_PX`, or rotated or scaled against it by
#: more than :data:`MAX_BAND_GRID_MISFIT_PX` at a corner, the cutout is refused.
BAND_SHIFT_PX = 0.05
MAX_BAND_SHIFT_PX = 2.0
MAX_BAND_GRID_MISFIT_PX = 0.25


def _register_bands(data: np.ndarray, mask, headers: list, planes: _Planes, bands, path: Path, warn: list[str]):
    """Per-band files or extensions, each with its own WCS: the bands on the first image's grid.

    A band a fraction of a pixel off (each band of a survey cut at the nearest pixel of the same
    sky position) is shifted onto it by a Fourier shift (:func:`~survey2survey.evaluation.align.shift_image`,
    which keeps the noise's spectrum; a band with masked pixels by a cubic spline, its mask moved
    and grown), with a warning; one further off, or on a rotated or rescaled grid, is refused:
    stacked as it is, its colours would be measured between different parts of the galaxy.
    """
    h, w = data.shape[1:]
    xs = np.array([(w - 1) / 2, 0, w - 1, 0, w - 1], dtype=float)  # the centre, then the corners
    ys = np.array([(h - 1) / 2, 0, 0, h - 1, h - 1], dtype=float)
    moved = []
    for k, header in enumerate(headers):
        if header is planes.header:
            continue
        band_wcs = celestial_wcs(header, [])
        if band_wcs is None:
            continue  # nothing says where this band lies: taken on the first image's grid
        px, py = planes.wcs.world_to_pixel_values(*band_wcs.pixel_to_world_values(xs, ys))
        dx, dy = px - xs, py - ys  # where band k's pixels lie on the first image's grid
        misfit = float(np.max(np.hypot(dx[1:] - dx[0], dy[1:] - dy[0])))
        if not np.isfinite(misfit) or misfit > MAX_BAND_GRID_MISFIT_PX:
            raise CutoutError(path, f"band {bands[k]}'s pixel grid is rotated or scaled against the first image's "
                                    f"({misfit:.2f} px apart at a corner, by their WCSs): resample the bands onto one grid first")
        off = float(np.hypot(dx[0], dy[0]))
        if off > MAX_BAND_SHIFT_PX:
            raise CutoutError(path, f"band {bands[k]}'s image is {off:.1f} px off the first image's (by their WCSs): "
                                    "cut every band at the same sky position")
        if off > BAND_SHIFT_PX:
            from survey2survey.evaluation.align import shift_image, shift_masked

            if mask is not None and mask[k].any():
                data[k], mask[k] = shift_masked(data[k], mask[k], -dy[0], -dx[0])
            else:
                data[k] = shift_image(data[k], -dy[0], -dx[0])
            moved.append(f"{bands[k]} {off:.2f}")
    if moved:
        warn.append(f"band(s) moved onto the first image's pixel grid (px, by their WCSs): {', '.join(moved)}")
    return data, mask


#: A band whose outer frame's median is further from zero than this many sky sigmas is said to
#: carry a sky (or an object filling the cutout).
PEDESTAL_SIGMAS = 5.0


def _sky_pedestal(data: np.ndarray, survey: Survey, bands) -> str | None:
    """A warning naming the bands whose border (outer 4 pixels) sits far from zero, or None.

    Every translation takes its input as sky-subtracted, as survey cutouts are: a sky left in
    is carried as flux (and moves a network's photometry: +11 % in g for 0.5 nmgy in SDSS).
    Sigma: the border's own (MAD), at least the survey's typical sky sigma (a noise-free
    image's is 0).
    """
    try:
        floors = np.array([survey.typical_sky_sigma(b) for b in bands])
    except Exception:  # noqa: BLE001 - a survey without noise in the registry: the border's own sigma
        floors = np.zeros(len(bands))
    parts = (data[:, :4], data[:, -4:], data[:, 4:-4, :4], data[:, 4:-4, -4:])
    if (floors > 0).all():
        # the common case, cheaply: the border's mean, clipped at twice the threshold (a star on the
        # border cannot hide a pedestal), far from one; else its median, below
        limit = (2 * PEDESTAL_SIGMAS * floors)[:, None, None]
        n = sum(p[0].size for p in parts)
        means = sum(np.clip(p, -limit, limit).sum(axis=(1, 2), dtype=np.float64) for p in parts) / n
        if (np.abs(means) < 0.5 * PEDESTAL_SIGMAS * floors).all():
            return None
    border = np.concatenate([p.reshape(p.shape[0], -1) for p in parts], axis=1)
    levels = np.median(border, axis=1)
    sigmas = np.maximum(1.4826 * np.median(np.abs(border - levels[:, None]), axis=1), floors)
    said = [f"{band} {level / sigma:+.0f}" for band, level, sigma in zip(bands, levels, sigmas)
            if sigma > 0 and abs(level) > PEDESTAL_SIGMAS * sigma]
    if not said:
        return None
    return (f"border median far from zero (sky sigmas): {', '.join(said)}: is the sky subtracted? "
            "(translations take it as subtracted: a sky left in is carried as flux)")


def read_cutout(
    source: CutoutSource | str | os.PathLike,
    survey: Survey | str | None = None,
    *,
    expected_size: int | tuple[int, int] | None = None,
    max_bad_fraction: float = MAX_BAD_FRACTION,
    partial: bool = False,
) -> Cutout:
    """Read one object's cutout as float32 (bands, H, W), native units, in the survey's band order.

    Parameters
    ----------
    source : CutoutSource or path
        From :func:`find_cutouts`, or a path to one file.
    survey : Survey or str, optional
        The survey the cutout comes from.  When None it is detected from the header
        (``SURVEY``, ``TELESCOP``, pixel scale); if that fails the file must name its
        bands, which are then kept in file order and units are not converted.
    expected_size : int or (H, W), optional
        Refuse cutouts of another size.
    max_bad_fraction : float
        Largest fraction of NaN/inf pixels in a band that is filled (with 0) and masked.
    partial : bool
        Return the survey bands the file has (in survey order; ``Cutout.bands`` says
        which) instead of refusing a cutout that lacks some (a translator that works band
        by band).  Unnamed planes are still refused unless they are all the survey's.

    Raises
    ------
    CutoutError
        Unreadable, not FITS, truncated, wrong dimensions, missing, unknown or unreadable
        band keywords, a unit that cannot be converted, too many bad pixels.
    """
    if not isinstance(source, CutoutSource):
        p = Path(source)
        source = CutoutSource(strip_suffix(p.name), (p,))
    path = source.path
    warn: list[str] = []
    planes = _Planes()
    for i, file_path in enumerate(source.paths):
        _read_file(file_path, source.bands[i] if source.per_band else None, planes, warn)
    assert planes.header is not None
    with file_problems(path):
        survey_obj = get_survey(survey) if survey is not None else detect_survey(planes.header, planes.wcs)
        names = _band_names(planes, source, survey_obj)
    shapes = {p.shape for p in planes.data}
    if len(shapes) != 1:
        if source.per_band and len(source.paths) == len(planes.data):  # name the odd files, not the first
            each = [p.shape for p in planes.data]
            common = max(shapes, key=each.count)
            odd = [(f, s) for f, s in zip(source.paths, each) if s != common]
            sizes = ", ".join(f"{f.name} is {s[1]}x{s[0]} px" for f, s in odd)
            raise CutoutError(odd[0][0], f"bands have different image sizes: {sizes}, the others {common[1]}x{common[0]} px")
        raise CutoutError(path, f"bands have different image sizes {sorted(shapes)}")
    shape = shapes.pop()
    if min(shape) < 4:
        raise CutoutError(path, f"wrong image shape {shape}")

    if survey_obj is not None:
        order = _order(names, survey_obj, path, partial, warn)
        bands = tuple(survey_obj.bands) if all(n is None for n in names) else tuple(names[i] for i in order)
        with file_problems(path):
            _convert_units(planes, survey_obj, path, warn)
    else:
        if any(n is None for n in names):
            raise CutoutError(path, "cannot tell the survey or the bands: give the survey (--from / --survey)")
        order, bands = list(range(len(names))), tuple(str(n) for n in names)
    data = np.stack([planes.data[i] for i in order])
    if expected_size is not None:
        exp = (expected_size, expected_size) if isinstance(expected_size, int) else tuple(expected_size)
        if data.shape[1:] != exp:
            raise CutoutError(path, f"wrong size {data.shape[2]}x{data.shape[1]} px, expected {exp[1]}x{exp[0]}")

    data, mask = _fill_bad(np.ascontiguousarray(data, dtype=np.float32), path, max_bad_fraction, bands)
    if mask is not None:
        warn.append(f"{int(mask.sum())} NaN/inf pixel(s) filled with 0 and masked")
    if planes.mask is not None and planes.mask[order].any():
        mask = planes.mask[order] if mask is None else (mask | planes.mask[order])
    if planes.cube_header is None and planes.wcs is not None and len(planes.headers) > 1:
        data, mask = _register_bands(data, mask, [planes.headers[i] for i in order], planes, bands, path, warn)
    flat = _flat_bands(data, bands)
    if flat is not None:
        warn.append(flat)
    elif survey_obj is not None:
        pedestal = _sky_pedestal(data, survey_obj, bands)
        if pedestal is not None:
            warn.append(pedestal)
    if planes.wcs is None:
        warn.append("no WCS: sky positions unknown")
    unit = planes.header.get("BUNIT", planes.primary.get("BUNIT") if planes.primary is not None else None)
    return Cutout(
        data=data, bands=bands, wcs=planes.wcs, header=planes.header, path=path, object_id=source.object_id,
        survey=survey_obj, mask=mask, warnings=warn, unit=unit if isinstance(unit, str) else None,
    )
