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

Speed: ``s2s translate`` reads and writes thousands of cutouts a second, and astropy's
general machinery (HDU objects, headers checked and re-parsed several times) cost about
10 ms a cutout.  The common cases take shorter routes to the same result -- a plain
one-image file is read in one read and one header parse, its WCS in one wcslib parse,
the output's bytes are joined from astropy's card images with the checksums computed
here, an intact output of a previous run is recognised from its checksums -- and
everything else goes through astropy as before.  ``tests/test_fits_io.py`` checks that
both routes agree.

Bad pixels: non-finite pixels are replaced by 0 (the sky-subtracted background level) and
flagged in :attr:`Cutout.mask` and the ``NBADPIX`` keyword; a band with more than
``max_bad_fraction`` of them (default 5 %) makes the cutout unusable.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import glob
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Sequence

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, WCSHDO_P14, WCSHDO_safe, FITSFixedWarning, Wcsprm

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
    "wcs_cards",
    "write_hdul_atomic",
]

#: File name endings recognised as FITS.
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.fz")

#: Default largest fraction of non-finite pixels per band that is filled rather than refused.
MAX_BAD_FRACTION = 0.05

#: The card that ends a FITS header.
_END_CARD = "END" + " " * 77

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


#: Largest file :func:`_read_plain` reads in one go (cutouts are well below a megabyte).
_PLAIN_MAX_BYTES = 64 * 2**20
_BITPIX_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


@dataclass
class _PlainHDU:
    """The one image of a plain FITS file, read by :func:`_read_plain` (stands in for a PrimaryHDU)."""

    header: fits.Header
    data: np.ndarray  # big-endian, as in the file
    text: str  # the header as read, END card and padding included
    name: str = "PRIMARY"


class _PlainFile(list):
    """A one-element list holding a :class:`_PlainHDU`; a context manager like an HDUList."""

    def __enter__(self) -> _PlainFile:
        return self

    def __exit__(self, *exc) -> None:
        return None


def _read_plain(path: Path, size: int) -> _PlainHDU | None:
    """Read a file holding one primary image and nothing else, in one read and one header parse.

    ``fits.open`` builds HDU objects around the header and parses it twice (about 0.7 ms
    for a cutout, then 0.13 ms to copy the header); the header here is parsed as astropy
    parses it (``Header.fromstring`` of the same text) and the data is the same bytes.
    Returns None for anything else (compressed, extensions, scaling keywords, damage,
    bytes after the data): astropy then reads the file and says what is wrong.
    """
    if size > _PLAIN_MAX_BYTES:
        return None
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if not raw.startswith(b"SIMPLE  =                    T"):
            return None
        end = raw.find(_END_CARD.encode("ascii"))
        while end != -1 and end % 80:  # the END card starts a card
            end = raw.find(_END_CARD.encode("ascii"), end + 1)
        if end == -1:
            return None
        header_size = -(-(end + 80) // 2880) * 2880
        block = raw[:header_size]
        if not block.isascii():
            return None
        text = block.decode("ascii")
        header = fits.Header.fromstring(text)
        if any(key in header for key in ("BSCALE", "BZERO", "BLANK", "GROUPS", "EXTNAME", "XTENSION", "END")):
            return None
        bitpix, naxis = header.get("BITPIX"), header.get("NAXIS")
        if type(bitpix) is not int or bitpix not in _BITPIX_DTYPES or type(naxis) is not int or naxis not in (2, 3):
            return None
        shape = tuple(header.get(f"NAXIS{i}") for i in range(naxis, 0, -1))
        if not all(type(n) is int and n > 0 for n in shape):
            return None
        count = int(np.prod(shape))
        data_size = count * abs(bitpix) // 8
        if len(raw) != header_size + -(-data_size // 2880) * 2880:
            return None
        data = np.frombuffer(raw, dtype=_BITPIX_DTYPES[bitpix], count=count, offset=header_size).reshape(shape)
    except Exception:
        return None
    return _PlainHDU(header, data, text)


def _open(path: Path) -> fits.HDUList | _PlainFile:
    """The file's HDUs: an HDUList, or for a plain one-image file a :class:`_PlainFile`."""
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        plain = _read_plain(path, st.st_size)
    if plain is not None:
        return _PlainFile([plain])
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
        if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU, _PlainHDU)):
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
    # (a _PlainHDU's data was sized against the file when it was read)
    if not isinstance(hdu, (fits.CompImageHDU, _PlainHDU)) and _is_plain_fits(path):
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


#: Keyword prefixes that ``WCS(header)`` handles in Python before wcslib sees the header:
#: SIP (``A_``, ``B_``, ``AP_``, ``BP_``), distortion-paper lookup tables and SCAMP's ``PVi_j``.
_WCS_PYTHON_PREFIXES = (
    "A_", "B_", "AP_", "BP_", "CPDIS", "CQDIS", "CPERR", "CQERR", "DP", "DQ", "D2IM", "AXISCORR", "PV"
)


#: Card images astropy's card check leaves as they are (it fixes non-standard ones).
_CHECKED_CARDS: set[str] = set()


def _checked_text(header: fits.Header, text: str) -> str | None:
    """``header.tostring()`` of a header just parsed from ``text``, without checking each card again.

    ``tostring`` checks every card the first time (10 us each), and most cards of a
    survey's cutouts (units, bands, projection) repeat from file to file: an image
    checked once is remembered.  None when a card is new and the check would change it,
    or when the header has long-string (CONTINUE) cards.
    """
    n = len(header)
    if text[80 * n : 80 * n + 80] != _END_CARD:  # not one card per 80 characters
        return None
    for i in range(0, 80 * n, 80):
        card = text[i : i + 80]
        if card not in _CHECKED_CARDS:
            if fits.Card.fromstring(card).image != card:
                return None
            if len(_CHECKED_CARDS) >= 8192:  # per-file values (positions, ids) must not pile up
                _CHECKED_CARDS.clear()
            _CHECKED_CARDS.add(card)
    body = text[: 80 * n]
    return body + _END_CARD + " " * (-(len(body) + 80) % 2880)


def _plain_wcs(header: fits.Header, text: str | None = None) -> WCS | None:
    """``WCS(header, naxis=2)`` for a header without distortions, in one wcslib parse.

    ``WCS(header)`` turns the header into text and parses it back three times (about
    1.5 ms for a 40-card header); for a header with no SIP, distortion-table or ``PVi_j``
    keywords all that work changes nothing, and what remains is wcslib's own parse, the
    ``fix`` and ``set`` steps and the image size from ``NAXISn``, done here the same way.
    ``text``, the header as read from the file when known, spares checking its cards
    again (and leaves ``header`` unchecked, as it was read).

    Returns None when the header has such keywords or anything goes wrong: the caller
    then builds the WCS as usual, which raises the usual error.  ``tests/test_fits_io.py``
    compares both on WCS flavours from CD matrices to 3-axis cubes.
    """
    keys = header.keys()
    if any(key.startswith(_WCS_PYTHON_PREFIXES) for key in keys):
        return None
    try:
        # the same text WCS() hands to wcslib (its checked cards, END left out); a copy
        # is checked when ``header`` is to stay as read
        if text is None:
            full = header.tostring()
        else:
            full = _checked_text(header, text) or header.copy().tostring()
        wcs = WCS(naxis=2)
        wcs.wcs = Wcsprm(header=full.replace(_END_CARD, "").encode("ascii"), key=" ", relax=True, keysel=-1).sub(2)
        wcs.fix()
        wcs.wcs.set()
    except Exception:
        return None
    # WCS() records every NAXISn of the header (a cube's 3 for its 2-axis WCS)
    naxis = []
    while f"NAXIS{len(naxis) + 1}" in header:
        naxis.append(header[f"NAXIS{len(naxis) + 1}"])
    wcs._naxis = naxis or [0, 0]
    return wcs


def _celestial_wcs(hdu, path: Path, warn: list[str]) -> WCS | None:
    header = hdu.header
    if not any(k in header for k in ("CTYPE1", "CRVAL1", "CD1_1", "PC1_1")):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            warnings.simplefilter("ignore", AstropyWarning)
            # the image plane only: one construction instead of WCS(header).celestial's two
            plain = isinstance(hdu, _PlainHDU)
            wcs = _plain_wcs(header, hdu.text if plain else None)
            if wcs is None:
                # WCS() checks (and fixes) the cards of the header it gets; a plain file's
                # header is the cutout's own, not a copy as an HDU's: leave it as read
                wcs = WCS(header.copy() if plain else header, naxis=2)
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
                # a plain file's header belongs to nobody else: no copy needed
                header = images[0].header if isinstance(images[0], _PlainHDU) else images[0].header.copy()
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
                    wcs = _celestial_wcs(images[0], file_path, warn)
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
                wcs = _celestial_wcs(first, file_path, warn)
                if mask_hdus and mask_hdus[0].data is not None and mask_hdus[0].data.shape == cube.shape:
                    file_mask = np.asarray(mask_hdus[0].data) != 0
            elif all(h.header.get("NAXIS") == 2 for h in images):
                for h in images:
                    planes.append(_load_data(h, file_path))
                    names.append(_band_from_header(h.header))
                wcs = _celestial_wcs(first, file_path, warn)
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


def _write_atomic(path: Path, overwrite: bool, fsync: bool, write: Callable[[BinaryIO], None]) -> None:
    """Run ``write(fh)`` on a temporary file that then becomes ``path`` (:func:`atomic_write`).

    Creates the directory if needed; raises :class:`OutputExistsError` if ``path`` exists
    and not ``overwrite``, :class:`CutoutError` for file-system errors.
    """
    directory = path.parent
    if not directory.exists():
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CutoutError(path, f"cannot create output directory ({exc.strerror or exc})") from None
    try:
        with atomic_write(path, overwrite=overwrite, fsync=fsync) as fh:
            write(fh)
    except FileExistsError:
        raise OutputExistsError(path) from None
    except OSError as exc:
        raise CutoutError(path, f"cannot write output ({exc.strerror or exc})") from None


def write_hdul_atomic(hdul: fits.HDUList, path: Path, overwrite: bool = False, fsync: bool = True) -> None:
    """Write an HDUList with CHECKSUM/DATASUM via a temporary file and a rename.

    Raises :class:`OutputExistsError` if ``path`` exists and not ``overwrite``; never
    leaves a partial file under ``path``.
    """
    _write_atomic(Path(path), overwrite, fsync, lambda fh: hdul.writeto(fh, checksum=True, output_verify="exception"))


# --- writing without building astropy headers --------------------------------------------
#
# astropy spends about 6 ms writing one cutout: every card is formatted and checked
# several times (when set, when the HDU copies the header, at verification, for each of
# the two checksum passes, when written).  write_cutout instead formats each card once,
# with astropy's own Card (memoised across files: most cards repeat in a batch), joins
# the card images and computes CHECKSUM/DATASUM itself.  The bytes are those astropy
# writes (tests/test_fits_io.py compares both paths byte for byte); whatever this path
# does not cover (repeated or non-standard keywords, other HDU types) goes through astropy.

#: Keywords that only astropy may place (structure, checksums, commentary).
_RESERVED_KEYWORDS = frozenset(
    {"SIMPLE", "XTENSION", "BITPIX", "EXTEND", "PCOUNT", "GCOUNT", "GROUPS", "BSCALE", "BZERO", "BLANK",
     "EXTNAME", "EXTVER", "CHECKSUM", "DATASUM", "END", "HISTORY", "COMMENT", "CONTINUE", "HIERARCH", ""}
)
_PLAIN_KEYWORD = re.compile(r"[A-Z0-9_-]{1,8}")
#: Card images already formatted, by (keyword, value type, repr(value), comment).
_CARD_IMAGES: dict[tuple, str] = {}
#: Data types astropy writes as they are (no BZERO shift, no scaling).
_PLAIN_DTYPES = frozenset(np.dtype(t) for t in ("uint8", "int16", "int32", "int64", "float32", "float64"))
#: Characters the checksum encoding steps over (punctuation between digits and letters).
_CHECKSUM_EXCLUDE = (0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F, 0x40, 0x5B, 0x5C, 0x5D, 0x5E, 0x5F, 0x60)


def _card_image(key: str, value: object = None, comment: str | None = None) -> str:
    """The text astropy writes for the card ``(key, value, comment)``: ``Card(...).image``.

    Memoised, since formatting and checking one card costs astropy about 20 us; ``repr``
    keeps apart values that compare equal but print differently (``1``, ``1.0``, ``True``,
    ``-0.0``).  Invalid values raise astropy's error, and are not remembered.
    """
    cache_key = (key, type(value), repr(value), comment)
    image = _CARD_IMAGES.get(cache_key)
    if image is None:
        image = fits.Card(key, value, comment).image
        if len(_CARD_IMAGES) >= 4096:  # per-file values (object ids, dates) must not pile up
            _CARD_IMAGES.clear()
        _CARD_IMAGES[cache_key] = image
    return image


def _commentary_images(key: str, value: object) -> list[str]:
    """The cards of one ``HISTORY`` or ``COMMENT`` entry: astropy cuts long text every 72 characters."""
    text = str(value)
    if len(text) <= 72:
        return [_card_image(key, value)]
    return [_card_image(key, text[i : i + 72]) for i in range(0, len(text), 72)]


def _keyword(image: str) -> str:
    return image[:8].rstrip()


def _plain_keywords(keys: Sequence[str]) -> bool:
    """True when every keyword is a distinct standard keyword that astropy would just append."""
    return len(set(keys)) == len(keys) and all(
        _PLAIN_KEYWORD.fullmatch(k) is not None and k not in _RESERVED_KEYWORDS and not k.startswith("NAXIS")
        for k in keys
    )


@functools.lru_cache(maxsize=64)
def _structural_cards(extname: str | None, shape: tuple[int, ...], dtype: str, extend: bool = False) -> tuple[str, ...]:
    """The cards astropy starts an image HDU with (SIMPLE or XTENSION ... EXTNAME), from astropy, once per shape."""
    data = np.zeros(shape, dtype)
    if extname is None:
        hdul = fits.HDUList([fits.PrimaryHDU(data=data, header=fits.Header())] + ([fits.ImageHDU()] if extend else []))
        hdul.update_extend()
        header = hdul[0].header
    else:
        header = fits.ImageHDU(data=data, name=extname).header
    return tuple(card.image for card in header.cards)


def _ones_complement_sum(data, start: int = 0) -> int:
    """32-bit ones' complement sum of the big-endian words of ``data`` (zero-padded), plus ``start``."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size % 4:
        raw = np.concatenate([raw, np.zeros(4 - raw.size % 4, np.uint8)])
    total = int(raw.view(">u4").sum(dtype=np.uint64)) + start
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def _encode_checksum(value: int) -> str:
    """The 16 characters of a ``CHECKSUM`` value (FITS checksum convention, as astropy encodes it)."""
    chars = [0] * 16
    for i in range(4):
        byte = (value >> (24 - 8 * i)) & 0xFF
        quotient = byte // 4 + ord("0")
        ch = [quotient + byte % 4, quotient, quotient, quotient]
        changed = True
        while changed:  # step over punctuation, in pairs that keep the sum
            changed = False
            for x in _CHECKSUM_EXCLUDE:
                for j in (0, 2):
                    if ch[j] == x or ch[j + 1] == x:
                        ch[j] += 1
                        ch[j + 1] -= 1
                        changed = True
        for j in range(4):
            chars[4 * j + i] = ch[j]
    return bytes(chars[(i + 15) % 16] for i in range(16)).decode("ascii")


def _hdu_bytes(cards: Sequence[str], data: np.ndarray) -> list:
    """One image HDU as ``HDUList.writeto(checksum=True)`` writes it: header, data, padding.

    Parameters
    ----------
    cards : sequence of str
        The card images in header order, without CHECKSUM, DATASUM and END.  Like astropy,
        CHECKSUM and DATASUM go after the last keyword card, before trailing commentary.
    data : ndarray
        In its FITS data type (written big-endian).
    """
    data = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder(">"))
    datasum = _ones_complement_sum(data)
    split = len(cards)
    while split and _keyword(cards[split - 1]) in ("", "COMMENT", "HISTORY"):
        split -= 1
    head, tail = "".join(cards[:split]), "".join(cards[split:]) + _END_CARD
    when = _dt.datetime.now().isoformat()[:19]  # local time, as astropy stamps these comments
    datasum_card = fits.Card("DATASUM", str(datasum), f"data unit checksum updated {when}").image
    comment = f"HDU checksum updated {when}"

    def header(checksum_card: str) -> bytes:
        text = head + checksum_card + datasum_card + tail
        return (text + " " * (-len(text) % 2880)).encode("ascii")

    # the checksum is computed with CHECKSUM = '0000000000000000', then encoded so that
    # the whole HDU sums to -0; its 16 characters take the place of the zeros
    zeros = _card_image("CHECKSUM", "0" * 16, comment)
    checksum = _encode_checksum(~_ones_complement_sum(header(zeros), datasum) & 0xFFFFFFFF)
    return [header(zeros.replace("0" * 16, checksum, 1)), data, bytes(-data.nbytes % 2880)]


def _extension_cards(hdu) -> list[str] | None:
    """The cards of an extra ImageHDU as astropy would write them, or None when only astropy can write it."""
    if type(hdu) is not fits.ImageHDU or not isinstance(hdu.data, np.ndarray) or hdu.data.dtype not in _PLAIN_DTYPES:
        return None
    header = hdu.header
    if any(key in header for key in ("BSCALE", "BZERO", "BLANK", "CHECKSUM", "DATASUM")):
        return None
    hdu.update_header()  # as writeto does
    hdu.verify("exception")
    return [card.image for card in header.cards]


def wcs_cards(wcs: WCS) -> str:
    """The header cards :func:`write_cutout` writes for ``wcs``, as one string of 80-character cards.

    The text of ``wcs.to_header(relax=False)`` (wcslib's keywords, 14 significant digits),
    taken from wcslib directly when there is no SIP for astropy to add: about 15 times
    faster than through an astropy Header.  Pass it to :func:`write_cutout` as ``wcs``.
    """
    if wcs.sip is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            return wcs.to_header(relax=False).tostring(endcard=False, padding=False)
    # the flags to_header(relax=False) passes; it also drops wcslib's blank and COMMENT cards
    text = wcs.wcs.to_header(WCSHDO_P14 | WCSHDO_safe)
    cards = (text[i : i + 80] for i in range(0, len(text), 80))
    return "".join(card for card in cards if _keyword(card) not in ("", "COMMENT"))


def write_cutout(
    path: str | os.PathLike,
    data: np.ndarray,
    survey: Survey | str,
    *,
    wcs: WCS | str | None = None,
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
    wcs : WCS or str, optional
        2-D celestial WCS of the image plane (already on this grid: see :func:`rescale_wcs`),
        or its header cards from :func:`wcs_cards` (cheaper to pass between processes).
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
    cards: list[tuple[str, object, str]] = [
        ("BUNIT", survey.flux_unit or "unknown", "native pixel unit"),
        ("MAGZP", survey.zero_point, "AB mag of one pixel unit"),
        ("FLUXFAC", survey.flux_factor, "x pixel value = nanomaggies"),
        ("PIXSCALE", survey.pixel_scale, "nominal survey pixel scale (arcsec)"),
        ("SURVEY", survey.name, "survey this image represents"),
        ("BANDS", ",".join(survey.bands), "band of each plane, NAXIS3 order"),
    ]
    cards += [(f"BAND{i}", band, f"band of plane {i}") for i, band in enumerate(survey.bands, start=1)]
    if mask is not None:
        mask = np.asarray(mask, dtype=np.uint8)
        cards.append(("NBADPIX", int(np.count_nonzero(mask)), "pixels filled (not finite in the input)"))
    cards += provenance.cards() if provenance else []
    cards += header_cards
    with warnings.catch_warnings():
        # long values (file names, hashes) leave no room for the comment: keep the value
        warnings.filterwarnings("ignore", message="Card is too long, comment will be truncated")
        hdus = _cutout_hdus(data, survey, wcs, cards, history, mask, extra_hdus)
        if hdus is not None:
            _write_atomic(path, overwrite, fsync, lambda fh: fh.writelines(part for hdu in hdus for part in hdu))
        else:
            write_hdul_atomic(_cutout_hdulist(data, wcs, cards, history, mask, extra_hdus), path, overwrite, fsync)
    return path


def _cutout_hdus(data, survey, wcs, cards, history, mask, extra_hdus) -> list[list] | None:
    """The bytes of each HDU of :func:`write_cutout`'s file, or None when only astropy can write it."""
    if wcs is None:
        wcs_images = []
    else:
        text = wcs if isinstance(wcs, str) else wcs_cards(wcs)
        if len(text) % 80:
            return None
        wcs_images = [text[i : i + 80] for i in range(0, len(text), 80) if text[i : i + 80] != _END_CARD]
    keys = [_keyword(image) for image in wcs_images]
    if wcs is not None:
        if "WCSAXES" not in keys:
            wcs_images.append(_card_image("WCSAXES", 2))  # as header["WCSAXES"] = 2 appends it
            keys.append("WCSAXES")
        elif not wcs_images[keys.index("WCSAXES")].startswith("WCSAXES =                    2 "):
            return None  # not (plainly) 2: header["WCSAXES"] = 2 would rewrite the card
    if not _plain_keywords(keys + [key.upper() for key, _, _ in cards]):
        return None
    extensions = []
    if mask is not None:
        comment = _commentary_images("COMMENT", "1 where the input pixel was NaN/inf and was filled")
        extensions.append((list(_structural_cards("MASK", mask.shape, "uint8")) + comment, mask))
    for hdu in extra_hdus:
        ext = _extension_cards(hdu)
        if ext is None:
            return None
        extensions.append((ext, hdu.data))
    primary = list(_structural_cards(None, data.shape, "float32", bool(extensions))) + wcs_images
    primary += [_card_image(key, value, comment) for key, value, comment in cards]
    for line in history:
        primary += _commentary_images("HISTORY", line)
    return [_hdu_bytes(primary, data)] + [_hdu_bytes(ext, ext_data) for ext, ext_data in extensions]


def _cutout_hdulist(data, wcs, cards, history, mask, extra_hdus) -> fits.HDUList:
    """:func:`write_cutout`'s file built with astropy (what the byte-level path reproduces)."""
    header = fits.Header()
    if wcs is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            wcs_header = fits.Header.fromstring(wcs) if isinstance(wcs, str) else wcs.to_header(relax=False)
            header.extend(wcs_header, update=True)
        header["WCSAXES"] = 2
    for key, value, comment in cards:
        header[key] = (value, comment)
    for line in history:
        header.add_history(line)
    hdus: list = [fits.PrimaryHDU(data=data, header=header)]
    if mask is not None:
        mask_hdu = fits.ImageHDU(data=mask, name="MASK")
        mask_hdu.header["COMMENT"] = "1 where the input pixel was NaN/inf and was filled"
        hdus.append(mask_hdu)
    hdus += list(extra_hdus)
    return fits.HDUList(hdus)


_INT_VALUE = re.compile(rb" *(-?[0-9]+) *(?:/.*)?")
_STRING_VALUE = re.compile(rb"'([^']*)' *(?:/.*)?")
_NOT_PRINTABLE = re.compile(rb"[^\x20-\x7e]")


def _intact_hdu(raw: bytes, start: int, primary: bool) -> tuple[int, dict[bytes, bytes]] | None:
    """End offset and cards (keyword -> first card) of the image HDU at ``start``, if its checksums hold.

    None when the HDU is not laid out as :func:`write_cutout` writes one, or when its
    DATASUM or CHECKSUM does not match the bytes (computed as astropy computes them).
    """
    cards: dict[bytes, bytes] = {}
    offsets: dict[bytes, int] = {}
    pos = start
    while (card := raw[pos : pos + 80]) != _END_CARD.encode("ascii"):
        if len(card) < 80:
            return None
        key = card[:8].rstrip()
        if key not in cards:
            cards[key], offsets[key] = card, pos - start
        pos += 80
    header_end = start + -(-(pos + 80 - start) // 2880) * 2880
    header = raw[start:header_end]
    first = b"SIMPLE  =                    T" if primary else b"XTENSION= 'IMAGE   '"
    if not header.startswith(first) or header[80:88] != b"BITPIX  " or header[160:168] != b"NAXIS   ":
        return None
    if _NOT_PRINTABLE.search(header) or any(key in cards for key in (b"BSCALE", b"BZERO", b"BLANK", b"GROUPS")):
        return None

    def value(key: bytes, pattern: re.Pattern) -> bytes:
        card = cards.get(key, b"")
        match = pattern.fullmatch(card, 10) if card[8:10] == b"= " else None
        if match is None:
            raise ValueError(key)
        return match.group(1)

    try:
        if not primary and (value(b"PCOUNT", _INT_VALUE) != b"0" or value(b"GCOUNT", _INT_VALUE) != b"1"):
            return None
        bitpix, naxis = int(value(b"BITPIX", _INT_VALUE)), int(value(b"NAXIS", _INT_VALUE))
        size = abs(bitpix) // 8 if naxis else 0
        for i in range(1, naxis + 1):
            size *= int(value(b"NAXIS%d" % i, _INT_VALUE))
        checksum, datasum = value(b"CHECKSUM", _STRING_VALUE), int(value(b"DATASUM", _STRING_VALUE))
    except ValueError:
        return None
    end = header_end + -(-size // 2880) * 2880
    if bitpix not in _BITPIX_DTYPES or len(checksum) != 16 or end > len(raw):
        return None
    if _ones_complement_sum(memoryview(raw)[header_end : header_end + size]) != datasum:
        return None
    # the checksum is that of the header with CHECKSUM = '0000000000000000'
    at = offsets[b"CHECKSUM"] + 11
    zeroed = header[:at] + b"0" * 16 + header[at + 16 :]
    if _encode_checksum(~_ones_complement_sum(zeroed, datasum) & 0xFFFFFFFF).encode("ascii") != checksum:
        return None
    return end, cards


def _intact_s2s_output(path: Path) -> bool:
    """True when ``path`` is a file ``s2s`` wrote and every HDU's CHECKSUM and DATASUM hold.

    The quick path of :func:`verify_fits` for re-runs over existing outputs: the checksums
    are recomputed on the raw bytes, as astropy computes them, for a file whose primary
    header has ``S2SVER`` and whose HDUs are images laid out as :func:`write_cutout`
    writes them (with astropy's cards: such a file also passes astropy's checks).  About
    15 times cheaper than opening it with astropy; False for anything else, which
    :func:`verify_fits` then checks with astropy, and explains.
    """
    try:
        raw = path.read_bytes()
    except OSError:
        return False
    pos, headers = 0, []
    while pos < len(raw):
        found = _intact_hdu(raw, pos, primary=not headers)
        if found is None:
            return False
        pos, cards = found
        headers.append(cards)
    if not headers or b"S2SVER" not in headers[0]:
        return False
    # with extensions the primary header says EXTEND = T, as astropy's check requires
    return len(headers) == 1 or headers[0].get(b"EXTEND", b"")[:30] == b"EXTEND  =                    T"


def verify_fits(path: str | os.PathLike) -> None:
    """Raise :class:`CutoutError` unless the file passes FITS verification and its checksums.

    An intact output of ``s2s`` passes at once (:func:`_intact_s2s_output`); any other
    file is opened and checked by astropy, whose complaint becomes the message.
    """
    path = Path(path)
    if _intact_s2s_output(path):
        return
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
