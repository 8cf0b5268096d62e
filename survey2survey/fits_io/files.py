"""Finding cutout files and opening them: every check before astropy reads a byte.

A directory is scanned recursively for the FITS names of :data:`FITS_SUFFIXES`
(compressed ones included: astropy reads gzip, bzip2 and tile-compressed files); files
named ``<object>-<band>.fits`` are grouped by object.  :func:`open_fits` refuses what
must not be opened (FIFOs, directories, empty or unreadable files) and turns astropy's
complaints about a damaged file into one line naming it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from survey2survey.errors import CutoutError, S2SError, UsageError
from survey2survey.surveys import Survey, get_survey, list_surveys

__all__ = ["FITS_SUFFIXES", "CutoutSource", "find_cutouts", "open_fits", "file_problems", "one_line", "strip_suffix"]

#: File name endings recognised as FITS (astropy reads gzip, bzip2 and tile-compressed ``.fz``).
FITS_SUFFIXES = (
    ".fits", ".fit", ".fts",
    ".fits.gz", ".fit.gz", ".fts.gz",
    ".fits.bz2", ".fit.bz2", ".fts.bz2",
    ".fits.fz", ".fz",
)

_PER_BAND = re.compile(
    r"^(?P<object>.+?)[-_](?P<band>[A-Za-z])(?P<suffix>\.(?:fits?|fts)(?:\.gz|\.bz2|\.fz)?)$", re.I
)


def strip_suffix(name: str) -> str:
    """``name`` without its FITS ending (``obj.fits.bz2`` -> ``obj``)."""
    lower = name.lower()
    for suffix in sorted(FITS_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def one_line(exc: BaseException) -> str:
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
            for match in sorted(glob.glob(text, recursive=True)):
                mp = Path(match)
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

    Files named ``<object>-<band>.fits`` or ``<object>_<band>.fits`` (any ending of
    :data:`FITS_SUFFIXES`), where ``band`` is a band of ``survey`` (or of any registered
    survey when none is given), are grouped by object when at least two bands of the same
    object are present; every other FITS file is one object.

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
    for (_, obj), by_band in groups.items():
        if len(by_band) < 2:  # a lone "gal_r.fits" is more likely a cube named so
            singles += list(by_band.values())
            continue
        bands = tuple(by_band)
        sources.append(CutoutSource(obj, tuple(by_band[b] for b in bands), bands))
    sources += [CutoutSource(strip_suffix(f.name), (f,)) for f in singles]
    sources.sort(key=lambda s: (str(s.path.parent), s.object_id))
    return sources


@contextlib.contextmanager
def file_problems(path: Path) -> Iterator[None]:
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
        raise CutoutError(path, f"unreadable FITS file ({one_line(exc)})") from None


def open_fits(path: Path) -> fits.HDUList:
    """``fits.open(path)`` (not memory-mapped: cutouts are small) after checking that it may be opened.

    Raises
    ------
    CutoutError
        Missing, not a regular file (a FIFO would block), empty, unreadable, or not FITS.
    """
    try:
        st = path.stat()
    except OSError as exc:
        raise CutoutError(path, f"cannot read file ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO, socket or device"
        raise CutoutError(path, f"not a regular file ({kind})")
    if st.st_size == 0:
        raise CutoutError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise CutoutError(path, "permission denied")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            return fits.open(path, memmap=False, lazy_load_hdus=False)
    except OSError as exc:
        msg = " ".join(str(exc).split())
        if "Empty or corrupt FITS file" in msg or "No SIMPLE card" in msg:
            raise CutoutError(path, "not a FITS file") from None
        raise CutoutError(path, f"unreadable FITS file ({msg})") from None
    except Exception as exc:  # astropy raises assorted types on garbage headers
        raise CutoutError(path, f"unreadable FITS file ({one_line(exc)})") from None
