"""Which band each image plane holds, from the header keywords that say so.

A cube names its planes in ``BANDS`` (or ``FILTERS``): comma- or space-separated, or
single letters run together (``'zirgu'``, ``'ugriz'``); or in ``BAND1..n`` or
``FILTER1..n``.  A 2-D image names its band in ``FILTER``, ``BAND``, ``FILTNAM``,
``BANDS`` or ``EXTNAME``.  Every source present is read; one that cannot be read (wrong
number of names, a name that is no band of the survey) is passed over for the next, and
readable sources that disagree are an error.  Only a header with no band keyword at all
is taken in the survey's order (by the reader, with a warning): band keywords that exist
but cannot be read are an error, never a guess.
"""

from __future__ import annotations

import re
from pathlib import Path

from astropy.io import fits

from survey2survey.errors import CutoutError
from survey2survey.surveys import Survey

__all__ = ["cube_band_names", "image_band_name", "normalise_band"]

#: Keywords that name the band of a 2-D image, in the order they are trusted.
IMAGE_BAND_KEYS = ("FILTER", "BAND", "FILTNAM", "BANDS", "EXTNAME")


def normalise_band(name: str, survey: Survey) -> str | None:
    """The survey band a header value such as 'r', 'R', 'r.MP9601' or "SDSS r'" names, or None."""
    name = name.strip()
    candidates = [name, name.strip("'")]
    # MegaCam filter names ('r.MP9601', 'i.MP9702') and primed SDSS names ("r'")
    candidates += [re.split(r"[.\s_]", name.strip("'"))[0].rstrip("'")]
    candidates += [name.split()[-1].strip("'")] if " " in name else []
    for c in candidates:
        try:
            return survey.bands[survey.band_index(c)]
        except Exception:
            continue
    return None


def _split_names(value: str, n: int) -> list[str]:
    names = [b for b in re.split(r"[,;\s]+", value.strip()) if b]
    if len(names) == 1 and n > 1 and len(names[0]) == n and names[0].isalpha():
        return list(names[0])  # 'ugriz', 'zirgu': one letter per plane
    return names


def _cube_sources(header: fits.Header, n: int) -> list[tuple[str, object]]:
    """(label, names or the raw value) of every band keyword set in a cube's header."""
    sources: list[tuple[str, object]] = []
    for key in ("BANDS", "FILTERS"):
        if key in header:
            value = header[key]
            label = f"{key}={value!r}"
            sources.append((label, _split_names(value, n) if isinstance(value, str) else value))
    for prefix in ("BAND", "FILTER"):
        present = [f"{prefix}{i}" for i in range(1, n + 1) if f"{prefix}{i}" in header]
        if present:
            values = [header.get(f"{prefix}{i}") for i in range(1, n + 1)]
            sources.append((f"{prefix}1..{n}", values))
    if n == 1:  # a one-plane cube may name its band like an image
        for key in ("FILTER", "BAND"):
            if key in header:
                sources.append((f"{key}={header[key]!r}", [header[key]]))
    return sources


def _problem(label: str, names: object, n: int, survey: Survey | None) -> str | None:
    """Why ``names`` cannot name ``n`` planes (None when it can)."""
    if not isinstance(names, list) or not all(isinstance(v, str) and v.strip() for v in names):
        return f"band keyword {label} cannot be read as {n} band names"
    if len(names) != n:
        return f"band keyword {label} names {len(names)} band(s) for {n} image planes"
    if survey is None:
        return None
    for v in names:
        if normalise_band(v, survey) is None:
            return f"band {v.strip()!r} is not a band of survey {survey.name} ({','.join(survey.bands)})"
    mapped = [normalise_band(v, survey) for v in names]
    if len(set(mapped)) != len(mapped):
        return f"duplicate bands {mapped}"
    return None


def cube_band_names(header: fits.Header, n: int, survey: Survey | None, path: Path) -> list[str] | None:
    """Band of each of a cube's ``n`` planes (survey band names when ``survey`` is given).

    Returns None when the header has no band keyword at all.

    Raises
    ------
    CutoutError
        Band keywords exist but none can be read (the first one's problem), or readable
        ones disagree.
    """
    sources = _cube_sources(header, n)
    if not sources:
        return None
    readable: list[tuple[str, list[str]]] = []
    problems: list[str] = []
    for label, names in sources:
        problem = _problem(label, names, n, survey)
        if problem is not None:
            problems.append(problem)
            continue
        stripped = [v.strip() for v in names]
        readable.append((label, [normalise_band(v, survey) for v in stripped] if survey else stripped))
    if not readable:
        raise CutoutError(path, problems[0])
    label, names = readable[0]
    for other, other_names in readable[1:]:
        if other_names != names:
            raise CutoutError(
                path, f"band keywords disagree: {label} says {','.join(names)}, {other} says {','.join(other_names)}"
            )
    return names


def image_band_name(header: fits.Header, survey: Survey | None, path: Path) -> str | None:
    """The band of a 2-D image HDU (a survey band name when ``survey`` is given), or None without band keywords.

    Raises
    ------
    CutoutError
        Band keywords exist but none names a band of ``survey``.
    """
    values = [header.get(key) for key in IMAGE_BAND_KEYS]
    values = [v.strip() for v in values if isinstance(v, str) and v.strip()]
    if not values:
        return None
    if survey is None:
        return values[0]
    for v in values:
        band = normalise_band(v, survey)
        if band is not None:
            return band
    raise CutoutError(path, f"band {values[0]!r} is not a band of survey {survey.name} ({','.join(survey.bands)})")
