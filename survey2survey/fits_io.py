"""FITS cutouts in and out: the I/O layer every command shares.

Reading accepts the layouts survey cutouts come in:

* **cube** -- one image HDU (primary or first extension) with NAXIS3 = bands and the band
  names in ``BANDS`` (comma-separated), ``BANDn`` or ``FILTERn``;
* **multi-extension** -- one 2-D image HDU per band, the band from ``FILTER``, ``BAND`` or
  ``EXTNAME``;
* **one file per band** -- ``<object>-<band>.fits`` or ``<object>_<band>.fits``, grouped by
  object by :func:`find_cutouts`.

Whatever the file order, the returned array is in the survey's band order.  A file that
names no bands is taken in the survey's order, with a warning.

Writing produces one cube per object (float32, ``BUNIT``, ``MAGZP``, ``BANDS``, the WCS
rescaled to the output grid, provenance keywords, ``HISTORY``, ``CHECKSUM``/``DATASUM``),
atomically: a temporary file in the same directory, then a rename.  An existing file is
kept unless ``overwrite=True``.

Bad pixels: non-finite pixels are replaced by 0 (the sky-subtracted background level) and
flagged in :attr:`Cutout.mask` and the ``NBADPIX`` keyword; a band with more than
``max_bad_fraction`` of them (default 5 %) makes the cutout unusable.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning

from survey2survey import __version__
from survey2survey.atomic import atomic_write
from survey2survey.errors import CutoutError, OutputExistsError, S2SError, UsageError
from survey2survey.surveys import Survey, get_survey, list_surveys

__all__ = [
    "Cutout",
    "CutoutSource",
    "Provenance",
    "FITS_SUFFIXES",
    "find_cutouts",
    "read_cutout",
    "write_cutout",
    "rescale_wcs",
    "make_wcs",
    "detect_survey",
    "verify_fits",
    "write_hdul_atomic",
]

#: File name endings recognised as FITS.
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.fz")

#: Default largest fraction of non-finite pixels per band that is filled rather than refused.
MAX_BAD_FRACTION = 0.05

_PER_BAND = re.compile(r"^(?P<object>.+?)[-_](?P<band>[A-Za-z])(?P<suffix>\.(?:fits?|fts)(?:\.gz|\.fz)?)$", re.I)


def _strip_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in sorted(FITS_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception on one line (astropy and wcslib messages span several)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_fits_name(name: str) -> bool:
    return name.lower().endswith(FITS_SUFFIXES) and not name.startswith(".")


@dataclass(frozen=True)
class CutoutSource:
    """Where one object's cutout lives: one file, or one file per band.

    Attributes
    ----------
    object_id : str
        The object's name, from the file name (without band or suffix).
    paths : tuple of Path
        One path (cube or multi-extension) or one per band.
    bands : tuple of str
        For per-band files, the band of each path; empty otherwise.
    """

    object_id: str
    paths: tuple[Path, ...]
    bands: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        """The file that names this object in messages (the first one)."""
        return self.paths[0]

    @property
    def per_band(self) -> bool:
        return bool(self.bands)


@dataclass
class Cutout:
    """One object's multi-band cutout in native units.

    Attributes
    ----------
    data : ndarray, shape (bands, H, W), float32
        Pixel values in the survey's native units, bands in the survey's order.
    bands : tuple of str
    wcs : astropy.wcs.WCS or None
        2-D celestial WCS of the image plane, if the file had one.
    header : astropy.io.fits.Header
        The header of the (first) image HDU.
    path : Path
    object_id : str
    survey : Survey or None
    mask : ndarray of bool, shape (bands, H, W), or None
        True where a pixel was not finite and was filled with 0.
    warnings : list of str
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

    @property
    def n_bad_pixels(self) -> int:
        return 0 if self.mask is None else int(self.mask.sum())

    def center_radec(self) -> tuple[float, float] | None:
        """Sky position (deg) of the cutout centre, or None without a WCS."""
        if self.wcs is None:
            return None
        h, w = self.data.shape[-2:]
        ra, dec = self.wcs.all_pix2world([[(w - 1) / 2.0, (h - 1) / 2.0]], 0)[0]
        return float(ra), float(dec)


# --- finding inputs -----------------------------------------------------------------


def _expand(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files += [Path(root) / n for n in sorted(names) if _is_fits_name(n)]
        elif path.exists():
            files.append(path)
        elif glob.has_magic(text):
            matched = sorted(glob.glob(text, recursive=True))
            for m in matched:
                mp = Path(m)
                if mp.is_dir():
                    files += _expand([mp])
                elif _is_fits_name(mp.name):
                    files.append(mp)
        else:
            raise UsageError(f"{text}: no such file or directory")
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def find_cutouts(
    inputs: Iterable[str | os.PathLike], survey: Survey | str | None = None
) -> list[CutoutSource]:
    """Expand files, directories (recursively) and globs into one source per object.

    Files named ``<object>-<band>.fits`` or ``<object>_<band>.fits``, where ``band`` is a
    band of ``survey`` (or of any registered survey when none is given), are grouped by
    object when at least two bands of the same object are present; every other FITS file is
    one object.

    Raises
    ------
    UsageError
        If an input does not exist, or nothing FITS-like was found.
    """
    inputs = list(inputs)
    files = _expand(inputs)
    if not files:
        raise UsageError(f"no FITS cutouts found in {', '.join(map(str, inputs)) or 'the inputs'}")
    if survey is not None:
        known_bands = set(get_survey(survey).bands)
    else:
        known_bands = {b for s in list_surveys() for b in s.bands}

    groups: dict[tuple[Path, str], dict[str, Path]] = {}
    singles: list[Path] = []
    for f in files:
        m = _PER_BAND.match(f.name)
        if m and m.group("band") in known_bands:
            groups.setdefault((f.parent, m.group("object")), {})[m.group("band")] = f
        else:
            singles.append(f)

    sources: list[CutoutSource] = []
    for (parent, obj), by_band in groups.items():
        if len(by_band) < 2:  # a lone "gal_r.fits" is more likely a cube named so
            singles += list(by_band.values())
            continue
        bands = tuple(by_band)
        sources.append(CutoutSource(obj, tuple(by_band[b] for b in bands), bands))
    sources += [CutoutSource(_strip_suffix(f.name), (f,)) for f in singles]
    sources.sort(key=lambda s: (str(s.path.parent), s.object_id))
    return sources


# --- reading -------------------------------------------------------------------------


@contextlib.contextmanager
def _file_problems(path: Path) -> Iterator[None]:
    """Turn whatever astropy raises on a damaged file into this file's :class:`CutoutError`.

    An unparsable header card (``VerifyError``), an invalid ``BITPIX`` (``KeyError``) and
    the like surface only when a keyword or the data is first read; one bad file must
    not stop a batch.
    """
    try:
        yield
    except S2SError:
        raise
    except Exception as exc:
        raise CutoutError(path, f"unreadable FITS file ({_one_line(exc)})") from None


def _open(path: Path) -> fits.HDUList:
    try:
        st = path.stat()
    except OSError as exc:
        raise CutoutError(path, f"cannot read file ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        # a FIFO or device would block or never end; a directory is not a cutout
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO, socket or device"
        raise CutoutError(path, f"not a regular file ({kind})")
    if st.st_size == 0:
        raise CutoutError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise CutoutError(path, "permission denied")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
    except OSError as exc:
        msg = " ".join(str(exc).split())
        if "Empty or corrupt FITS file" in msg or "No SIMPLE card" in msg:
            raise CutoutError(path, "not a FITS file") from None
        raise CutoutError(path, f"unreadable FITS file ({msg})") from None
    except Exception as exc:  # astropy raises assorted types on garbage headers
        raise CutoutError(path, f"unreadable FITS file ({_one_line(exc)})") from None
    return hdul


def _image_hdus(hdul: fits.HDUList, path: Path) -> list[fits.ImageHDU | fits.PrimaryHDU | fits.CompImageHDU]:
    images = []
    for hdu in hdul:
        if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
            continue
        if hdu.header.get("NAXIS", 0) == 0:
            continue
        images.append(hdu)
    return images


def _is_plain_fits(path: Path) -> bool:
    """True for an uncompressed FITS file (not gzip/bzip2/zip), whose size bounds its data."""
    with open(path, "rb") as fh:
        return fh.read(6) == b"SIMPLE"


def _load_data(hdu, path: Path) -> np.ndarray:
    bitpix = hdu.header.get("BITPIX")
    if bitpix not in (8, 16, 32, 64, -32, -64):
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
        raise CutoutError(path, f"truncated or corrupt image data ({_one_line(exc)})") from None
    if data is None:
        raise CutoutError(path, "image HDU has no data")
    expected = 1
    for i in range(1, hdu.header.get("NAXIS", 0) + 1):
        expected *= hdu.header.get(f"NAXIS{i}", 0)
    if data.size != expected:
        raise CutoutError(path, "truncated image data")
    return np.asarray(data, dtype=np.float32)


def _band_from_header(header: fits.Header) -> str | None:
    for key in ("FILTER", "BAND", "FILTNAM", "EXTNAME"):
        value = header.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _cube_bands(header: fits.Header, n: int) -> list[str] | None:
    value = header.get("BANDS") or header.get("FILTERS")
    if isinstance(value, str) and value.strip():
        names = [b.strip() for b in re.split(r"[,\s]+", value) if b.strip()]
        return names if len(names) == n else None
    for prefix in ("BAND", "FILTER"):
        names = [header.get(f"{prefix}{i}") for i in range(1, n + 1)]
        if all(isinstance(v, str) and v.strip() for v in names):
            return [v.strip() for v in names]
    return None


def _normalise_band(name: str, survey: Survey, path: Path) -> str:
    """Map a header value such as 'r', 'R', 'r.MP9601' or "SDSS r'" to a survey band."""
    candidates = [name, name.strip("'")]
    # MegaCam filter names ('r.MP9601', 'i.MP9702') and primed SDSS names ("r'")
    candidates += [re.split(r"[.\s_]", name.strip("'"))[0].rstrip("'")]
    candidates += [name.split()[-1].strip("'")] if " " in name else []
    for c in candidates:
        try:
            return survey.bands[survey.band_index(c)]
        except Exception:
            continue
    raise CutoutError(path, f"band {name!r} is not a band of survey {survey.name} ({','.join(survey.bands)})")


def _celestial_wcs(header: fits.Header, path: Path, warn: list[str]) -> WCS | None:
    if not any(k in header for k in ("CTYPE1", "CRVAL1", "CD1_1", "PC1_1")):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            warnings.simplefilter("ignore", AstropyWarning)
            # the image plane only: one construction instead of WCS(header).celestial's two
            wcs = WCS(header, naxis=2)
    except Exception as exc:
        warn.append(f"unusable WCS ignored ({_one_line(exc)})")
        return None
    if not wcs.is_celestial:
        return None
    return wcs


def detect_survey(header: fits.Header, wcs: WCS | None = None) -> Survey | None:
    """Guess the survey from ``SURVEY``/``S2STGTSV``/``TELESCOP``/``INSTRUME`` or the pixel scale."""
    for key in ("SURVEY", "S2STGTSV"):
        value = header.get(key)
        if isinstance(value, str) and value.strip():
            try:
                return get_survey(value)
            except Exception:
                pass
    for key in ("TELESCOP", "INSTRUME"):
        value = header.get(key)
        if isinstance(value, str) and value.strip():
            v = value.strip().lower()
            for s in list_surveys():
                if any(v == t.lower() for t in s.telescope):
                    return s
    if wcs is not None:
        from astropy.wcs.utils import proj_plane_pixel_scales

        scale = float(np.mean(proj_plane_pixel_scales(wcs))) * 3600.0  # deg -> arcsec
        matches = [s for s in list_surveys() if abs(s.pixel_scale - scale) / s.pixel_scale < 0.02]
        if len(matches) == 1:
            return matches[0]
    return None


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
    data = np.where(bad, np.float32(0.0), data)
    return data, bad


def read_cutout(
    source: CutoutSource | str | os.PathLike,
    survey: Survey | str | None = None,
    *,
    expected_size: int | tuple[int, int] | None = None,
    max_bad_fraction: float = MAX_BAD_FRACTION,
) -> Cutout:
    """Read one object's cutout as float32 (bands, H, W) in the survey's band order.

    Parameters
    ----------
    source : CutoutSource or path
        From :func:`find_cutouts`, or a path to one file.
    survey : Survey or str, optional
        The survey the cutout comes from.  When None it is detected from the header
        (``SURVEY``, ``TELESCOP``, pixel scale); if that fails the file must name its
        bands and they are kept in file order.
    expected_size : int or (H, W), optional
        Refuse cutouts of another size.
    max_bad_fraction : float
        Largest fraction of NaN/inf pixels in a band that is filled (with 0) and masked.

    Raises
    ------
    CutoutError
        Unreadable, not FITS, truncated, wrong dimensions, missing or unknown bands,
        too many bad pixels.
    """
    if not isinstance(source, CutoutSource):
        p = Path(source)
        source = CutoutSource(_strip_suffix(p.name), (p,))
    path = source.path
    warn: list[str] = []
    survey_obj = get_survey(survey) if survey is not None else None

    planes: list[np.ndarray] = []
    names: list[str | None] = []
    file_mask: np.ndarray | None = None  # from a MASK extension, in file band order
    header: fits.Header | None = None
    wcs: WCS | None = None

    for i, file_path in enumerate(source.paths):
        with _file_problems(file_path), _open(file_path) as hdul:
            images = _image_hdus(hdul, file_path)
            if not images:
                raise CutoutError(file_path, "no image data in any HDU")
            if header is None:
                header = images[0].header.copy()
                if images[0] is not hdul[0] and isinstance(hdul[0], fits.PrimaryHDU):
                    # keep the primary header's survey keywords when the image is an extension
                    for key in ("SURVEY", "TELESCOP", "INSTRUME", "OBJECT", "RA", "DEC"):
                        if key in hdul[0].header and key not in header:
                            header[key] = hdul[0].header[key]
            if source.per_band:
                if len(images) != 1 or images[0].header.get("NAXIS") != 2:
                    raise CutoutError(file_path, "per-band file must hold exactly one 2-D image")
                planes.append(_load_data(images[0], file_path))
                names.append(source.bands[i])
                if wcs is None:
                    wcs = _celestial_wcs(images[0].header, file_path, warn)
                continue
            # s2s's own outputs carry a MASK extension (and SAMPLEn realisations) after the cube
            mask_hdus = [h for h in images if h.name == "MASK"]
            images = [h for h in images if h.name != "MASK"]
            if not images:
                raise CutoutError(file_path, "no image data in any HDU")
            first = images[0]
            naxis = first.header.get("NAXIS")
            if naxis == 3:
                # the first cube is the cutout; further HDUs (extra noise samples) are not read
                cube = _load_data(first, file_path)
                planes = list(cube)
                cube_names = _cube_bands(first.header, cube.shape[0])
                names = list(cube_names) if cube_names else [None] * cube.shape[0]
                wcs = _celestial_wcs(first.header, file_path, warn)
                if mask_hdus and mask_hdus[0].data is not None and mask_hdus[0].data.shape == cube.shape:
                    file_mask = np.asarray(mask_hdus[0].data) != 0
            elif all(h.header.get("NAXIS") == 2 for h in images):
                for h in images:
                    planes.append(_load_data(h, file_path))
                    names.append(_band_from_header(h.header))
                wcs = _celestial_wcs(first.header, file_path, warn)
            else:
                shapes = ", ".join(str(h.data.shape if h.data is not None else None) for h in images[:3])
                raise CutoutError(
                    file_path,
                    f"wrong number of axes: expected a (bands, H, W) cube or one 2-D image per band, found {shapes}",
                )

    assert header is not None
    if survey_obj is None:
        with _file_problems(path):
            survey_obj = detect_survey(header, wcs)

    shapes = {p.shape for p in planes}
    if len(shapes) != 1:
        raise CutoutError(path, f"bands have different image sizes {sorted(shapes)}")
    shape = shapes.pop()
    if len(shape) != 2 or min(shape) < 4:
        raise CutoutError(path, f"wrong image shape {shape}")

    if survey_obj is not None:
        n_expected = survey_obj.n_bands
        if all(n is None for n in names):
            if len(planes) != n_expected:
                raise CutoutError(
                    path, f"{len(planes)} bands without names, survey {survey_obj.name} has {n_expected}"
                )
            warn.append(f"no band keywords: bands taken in {survey_obj.name} order ({','.join(survey_obj.bands)})")
            names = list(survey_obj.bands)
        elif any(n is None for n in names):
            raise CutoutError(path, "some image HDUs name their band and some do not")
        mapped = [_normalise_band(str(n), survey_obj, path) for n in names]
        if len(set(mapped)) != len(mapped):
            raise CutoutError(path, f"duplicate bands {mapped}")
        missing = [b for b in survey_obj.bands if b not in mapped]
        if missing:
            raise CutoutError(path, f"missing band(s) {','.join(missing)} for survey {survey_obj.name}")
        order = [mapped.index(b) for b in survey_obj.bands]
        data = np.stack([planes[i] for i in order])
        bands = tuple(survey_obj.bands)
        if file_mask is not None:
            file_mask = file_mask[order]
    else:
        if any(n is None for n in names):
            raise CutoutError(path, "cannot tell the survey or the bands: give the survey (--from / --survey)")
        data = np.stack(planes)
        bands = tuple(str(n) for n in names)

    if expected_size is not None:
        exp = (expected_size, expected_size) if isinstance(expected_size, int) else tuple(expected_size)
        if data.shape[1:] != exp:
            raise CutoutError(path, f"wrong size {data.shape[2]}x{data.shape[1]} px, expected {exp[1]}x{exp[0]}")

    data, mask = _fill_bad(np.ascontiguousarray(data, dtype=np.float32), path, max_bad_fraction, bands)
    if mask is not None:
        warn.append(f"{int(mask.sum())} NaN/inf pixel(s) filled with 0 and masked")
    if file_mask is not None and file_mask.any():
        mask = file_mask if mask is None else (mask | file_mask)
    if wcs is None:
        warn.append("no WCS: sky positions unknown")
    return Cutout(
        data=data,
        bands=bands,
        wcs=wcs,
        header=header,
        path=path,
        object_id=source.object_id,
        survey=survey_obj,
        mask=mask,
        warnings=warn,
    )


# --- WCS ------------------------------------------------------------------------------


def make_wcs(ra: float, dec: float, pixel_scale: float, shape: tuple[int, int]) -> WCS:
    """A TAN WCS centred on (ra, dec) deg, north up, east left, ``pixel_scale`` arcsec/px.

    The sky position falls on the geometric centre of an ``shape`` = (H, W) image
    (pixel ``((W+1)/2, (H+1)/2)`` in FITS 1-based coordinates).
    """
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [float(ra), float(dec)]
    wcs.wcs.crpix = [(shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0]
    wcs.wcs.cd = np.array([[-pixel_scale / 3600.0, 0.0], [0.0, pixel_scale / 3600.0]])
    wcs.pixel_shape = (shape[1], shape[0])
    wcs.wcs.set()
    return wcs


def rescale_wcs(wcs: WCS, in_shape: tuple[int, int], out_shape: tuple[int, int]) -> WCS:
    """WCS for the same footprint sampled on an ``out_shape`` grid instead of ``in_shape``.

    The outer pixel edges stay where they were on the sky, so the centre and the corners of
    the footprint agree; the pixel scale changes by ``in/out`` per axis.  In FITS 1-based
    pixel coordinates with edges at 0.5, ``p_in - 0.5 = s (p_out - 0.5)`` with
    ``s = in/out``; SIP and other distortions are dropped (cutouts are small).

    Parameters
    ----------
    wcs : WCS
        Celestial 2-D WCS of the input image.
    in_shape, out_shape : (H, W)
    """
    new = wcs.deepcopy()
    new.sip = None
    scale = np.array([in_shape[1] / out_shape[1], in_shape[0] / out_shape[0]])  # (x, y)
    w = new.wcs
    w.crpix = (np.asarray(w.crpix) - 0.5) / scale + 0.5
    if w.has_cd():
        w.cd = np.asarray(w.cd) * scale[np.newaxis, :]
    else:
        w.cdelt = np.asarray(w.cdelt) * scale
    new.pixel_shape = (out_shape[1], out_shape[0])
    w.set()
    return new


# --- writing ----------------------------------------------------------------------------


@dataclass
class Provenance:
    """Where a written cutout came from; becomes ``S2S*`` header keywords.

    Every field is optional; the date and package version are filled in when writing.
    """

    model: str | None = None
    model_sha256: str | None = None
    method: str | None = None
    direction: str | None = None
    source_file: str | None = None
    source_survey: str | None = None
    target_survey: str | None = None
    seed: int | None = None
    backend: str | None = None
    noise: str | None = None
    extra: dict[str, tuple[object, str]] = field(default_factory=dict)

    #: keyword, attribute, comment
    KEYWORDS = (
        ("S2SVER", None, "survey2survey version"),
        ("S2SDATE", None, "UTC date this file was written"),
        ("S2SMODEL", "model", "translation model name"),
        ("S2SHASH", "model_sha256", "SHA-256 of the model weights"),
        ("S2SMETH", "method", "training method of the model"),
        ("S2SDIR", "direction", "translation direction"),
        ("S2SSRC", "source_file", "source file name"),
        ("S2SSRCSV", "source_survey", "source survey"),
        ("S2STGTSV", "target_survey", "target survey"),
        ("S2SSEED", "seed", "random seed of the noise draw"),
        ("S2SBACK", "backend", "inference backend and device"),
        ("S2SNOISE", "noise", "noise added by the noise emulator"),
    )

    def cards(self) -> list[tuple[str, object, str]]:
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        out: list[tuple[str, object, str]] = []
        for key, attr, comment in self.KEYWORDS:
            if attr is None:
                value = __version__ if key == "S2SVER" else now
            else:
                value = getattr(self, attr)
            if value is not None:
                out.append((key, value, comment))
        for key, (value, comment) in self.extra.items():
            out.append((key.upper(), value, comment))
        return out


def write_hdul_atomic(hdul: fits.HDUList, path: Path, overwrite: bool = False, fsync: bool = True) -> None:
    """Write an HDUList with CHECKSUM/DATASUM via a temporary file and a rename.

    Raises :class:`OutputExistsError` if ``path`` exists and not ``overwrite``; never
    leaves a partial file under ``path``.
    """
    path = Path(path)
    directory = path.parent
    if not directory.exists():
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CutoutError(path, f"cannot create output directory ({exc.strerror or exc})") from None
    try:
        with atomic_write(path, overwrite=overwrite, fsync=fsync) as fh:
            hdul.writeto(fh, checksum=True, output_verify="exception")
    except FileExistsError:
        raise OutputExistsError(path) from None
    except OSError as exc:
        raise CutoutError(path, f"cannot write output ({exc.strerror or exc})") from None


def write_cutout(
    path: str | os.PathLike,
    data: np.ndarray,
    survey: Survey | str,
    *,
    wcs: WCS | None = None,
    provenance: Provenance | None = None,
    history: Sequence[str] = (),
    overwrite: bool = False,
    extra_hdus: Sequence[fits.ImageHDU] = (),
    mask: np.ndarray | None = None,
    header_cards: Sequence[tuple[str, object, str]] = (),
    fsync: bool = True,
) -> Path:
    """Write one cutout as a float32 cube (bands, H, W) in native units of ``survey``.

    Parameters
    ----------
    path : path
        Output file; its directory is created if needed.
    data : ndarray, shape (bands, H, W)
        Native pixel values, bands in the survey's order.
    survey : Survey or str
    wcs : WCS, optional
        2-D celestial WCS of the image plane (already on this grid: see :func:`rescale_wcs`).
    provenance : Provenance, optional
        Becomes the ``S2S*`` keywords.
    history : sequence of str
        ``HISTORY`` lines.
    overwrite : bool
        Replace an existing file; otherwise :class:`OutputExistsError`.
    extra_hdus : sequence of ImageHDU
        Appended after the primary cube (e.g. extra noise realisations).
    mask : ndarray of bool, optional
        Bad-pixel mask (same shape), written as a ``MASK`` extension (uint8) and counted in
        ``NBADPIX``.
    header_cards : sequence of (key, value, comment)
        Any further keywords.
    fsync : bool
        Flush the file to disk before the rename (crash-safe against power loss, not just
        process death).  Bulk writers of reproducible data may turn it off for speed.

    Returns
    -------
    Path
        The written path.
    """
    survey = get_survey(survey)
    path = Path(path)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 3 or data.shape[0] != survey.n_bands:
        raise UsageError(
            f"{path}: cannot write data of shape {data.shape} as a {survey.name} cutout ({survey.n_bands} bands)"
        )
    header = fits.Header()
    if wcs is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            header.extend(wcs.to_header(relax=False), update=True)
        header["WCSAXES"] = 2
    header["BUNIT"] = (survey.flux_unit or "unknown", "native pixel unit")
    header["MAGZP"] = (survey.zero_point, "AB mag of one pixel unit")
    header["FLUXFAC"] = (survey.flux_factor, "x pixel value = nanomaggies")
    header["PIXSCALE"] = (survey.pixel_scale, "nominal survey pixel scale (arcsec)")
    header["SURVEY"] = (survey.name, "survey this image represents")
    header["BANDS"] = (",".join(survey.bands), "band of each plane, NAXIS3 order")
    for i, band in enumerate(survey.bands, start=1):
        header[f"BAND{i}"] = (band, f"band of plane {i}")
    if mask is not None:
        header["NBADPIX"] = (int(np.count_nonzero(mask)), "pixels filled (not finite in the input)")
    for key, value, comment in (provenance.cards() if provenance else []):
        header[key] = (value, comment)
    for key, value, comment in header_cards:
        header[key] = (value, comment)
    for line in history:
        header.add_history(line)
    hdus: list = [fits.PrimaryHDU(data=data, header=header)]
    if mask is not None:
        mask_hdu = fits.ImageHDU(data=np.asarray(mask, dtype=np.uint8), name="MASK")
        mask_hdu.header["COMMENT"] = "1 where the input pixel was NaN/inf and was filled"
        hdus.append(mask_hdu)
    hdus += list(extra_hdus)
    with warnings.catch_warnings():
        # long values (file names, hashes) leave no room for the comment: keep the value
        warnings.filterwarnings("ignore", message="Card is too long, comment will be truncated")
        write_hdul_atomic(fits.HDUList(hdus), path, overwrite, fsync)
    return path


def verify_fits(path: str | os.PathLike) -> None:
    """Raise :class:`CutoutError` unless the file passes FITS verification and its checksums."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", AstropyWarning)
            with fits.open(path, checksum=True) as hdul:
                hdul.verify("exception")
                for hdu in hdul:
                    if "CHECKSUM" not in hdu.header or "DATASUM" not in hdu.header:
                        raise CutoutError(path, f"HDU {hdu.name} has no CHECKSUM/DATASUM")
                    _ = hdu.data
    except CutoutError:
        raise
    except Exception as exc:
        raise CutoutError(path, f"FITS verification failed ({type(exc).__name__}: {exc})") from None
