"""Pixel units: ``BUNIT`` and the calibration keywords, converted to a survey's native unit.

Every survey of the registry has a native unit (``flux_unit``) and a factor to nanomaggies
(``flux_factor``).  A cutout's pixel values are converted to the survey's native unit
through nanomaggies (AB zero point 22.5; 1 nanomaggy = 3.631 uJy) when its ``BUNIT`` is

* a flux density: ``nanomaggy``/``nmgy``, ``maggy``, ``Jy``, ``mJy``, ``uJy``, ``nJy``;
* counts (``ADU``, ``DN``, ``counts``) with a calibration: SDSS's ``NMGY`` keyword
  (nanomaggies per count), a zero-point keyword (:data:`ZERO_POINT_KEYS`: counts of
  1 are magnitude ZP) or the HSC/LSST pipelines' ``FLUXMAG0`` (counts of magnitude 0: ZP =
  2.5 log10 FLUXMAG0), or written as ``s2s`` writes it, ``ADU (ZP 30)``.

Counts without a calibration are taken as the survey's native counts when the survey's
unit is counts; anything else that is not the survey's unit is refused (one line).  A
file without ``BUNIT`` is taken in native units, unless it has a zero point that differs
from the survey's.  The factor per ``/pixel`` unit is the same (a cutout is per pixel).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from astropy.io import fits

from survey2survey.errors import CutoutError
from survey2survey.surveys import COMMON_ZERO_POINT, Survey

__all__ = ["ZERO_POINT_KEYS", "native_factor"]

#: Keywords read as the AB zero point of one count, in this order.
ZERO_POINT_KEYS = ("MAGZP", "MAGZERO", "PHOTZP", "ZP", "ZEROPT", "MAGZPT")

_NMGY_PER_JY = 1e9 / 3631.0  # AB: 3631 Jy is magnitude 0, a nanomaggy is magnitude 22.5

#: nanomaggies per unit, by BUNIT as written (case matters: mJy is not MJy).
_FLUX_UNITS = {
    "nanomaggy": 1.0, "nanomaggies": 1.0, "nmgy": 1.0, "nmgys": 1.0, "nanomaggys": 1.0,
    "maggy": 1e9, "maggies": 1e9,
    "Jy": _NMGY_PER_JY, "mJy": _NMGY_PER_JY * 1e-3, "uJy": _NMGY_PER_JY * 1e-6, "\u00b5Jy": _NMGY_PER_JY * 1e-6,
    "\u03bcJy": _NMGY_PER_JY * 1e-6, "microJy": _NMGY_PER_JY * 1e-6, "nJy": _NMGY_PER_JY * 1e-9,
}
_LOWER_FLUX_UNITS = {k.lower(): v for k, v in _FLUX_UNITS.items() if k.lower() != "mjy"}
_COUNTS = re.compile(r"(adu|adus|dn|counts?|data ?numbers?)", re.I)
_COUNTS_ZP = re.compile(r"(adu|dn|counts?)\s*\(\s*zp\s*=?\s*([-+0-9.eE]+)\s*\)", re.I)
_PER_PIXEL = re.compile(r"\s*(/|per)\s*(pixel|pix|px)$", re.I)
_UNSET = {"", "unknown", "none", "n/a"}


def _number(header: fits.Header, keys, fallback: fits.Header | None = None) -> tuple[str, float] | None:
    for h in (header, fallback):
        if h is None:
            continue
        for key in keys:
            value = h.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                return key, float(value)
    return None


def _zero_point(header: fits.Header, fallback: fits.Header | None) -> tuple[str, float] | None:
    """(keyword, AB zero point of one count) from :data:`ZERO_POINT_KEYS`, else from a positive ``FLUXMAG0``."""
    zp = _number(header, ZERO_POINT_KEYS, fallback)
    if zp is None:
        flux0 = _number(header, ("FLUXMAG0",), fallback)
        if flux0 is not None and flux0[1] > 0:
            zp = flux0[0], 2.5 * math.log10(flux0[1])
    return zp


def _is_counts(unit: str) -> bool:
    return _COUNTS.fullmatch(unit.strip()) is not None or _COUNTS_ZP.fullmatch(unit.strip()) is not None


def _nmgy_per_unit(unit: str, header: fits.Header, fallback: fits.Header | None) -> tuple[float, str] | None:
    """(nanomaggies per unit, how it was known) for a BUNIT, or None when it cannot be converted."""
    if unit in _FLUX_UNITS:
        return _FLUX_UNITS[unit], ""
    if unit.lower() in _LOWER_FLUX_UNITS:
        return _LOWER_FLUX_UNITS[unit.lower()], ""
    with_zp = _COUNTS_ZP.fullmatch(unit)
    if with_zp:
        return 10 ** ((COMMON_ZERO_POINT - float(with_zp.group(2))) / 2.5), ""
    if _COUNTS.fullmatch(unit):
        cal = _number(header, ("NMGY",), fallback)
        if cal is not None and cal[1] > 0:
            return cal[1], f" with NMGY={cal[1]:g}"
        zp = _zero_point(header, fallback)
        if zp is not None:
            return 10 ** ((COMMON_ZERO_POINT - zp[1]) / 2.5), f" with {zp[0]}={zp[1]:g}"
    return None


def native_factor(
    header: fits.Header, survey: Survey, path: Path, fallback: fits.Header | None = None
) -> tuple[float, str | None]:
    """The factor that brings an image's pixel values to ``survey``'s native unit, and a note when it is not 1.

    Parameters
    ----------
    header : Header
        The image HDU's header.
    survey : Survey
    path : Path
        Named in the error.
    fallback : Header, optional
        The primary header, for an image in an extension (keywords it does not set).

    Raises
    ------
    CutoutError
        ``BUNIT`` is not a unit that can be converted and is not the survey's.
    """
    raw = header.get("BUNIT", fallback.get("BUNIT") if fallback is not None else None)
    unit = _PER_PIXEL.sub("", raw.strip()) if isinstance(raw, str) else ""
    native = (survey.flux_unit or "").strip()
    if unit.lower() in _UNSET:
        zp = _zero_point(header, fallback)
        if zp is None or abs(zp[1] - survey.zero_point) < 1e-6:
            return 1.0, None
        per_unit, how = 10 ** ((COMMON_ZERO_POINT - zp[1]) / 2.5), f"no BUNIT, {zp[0]}={zp[1]:g}"
    elif unit.lower() == native.lower():
        return 1.0, None
    else:
        known = _nmgy_per_unit(unit, header, fallback)
        if known is None:
            if _is_counts(unit) and _is_counts(native):
                return 1.0, None  # the survey's own counts, its zero point assumed
            what = "counts without a calibration keyword (NMGY, MAGZP, ZP, PHOTZP, FLUXMAG0)" if _is_counts(unit) else \
                "a unit s2s cannot convert (nanomaggy, Jy, mJy, uJy, nJy, counts with a zero point)"
            raise CutoutError(
                path, f"BUNIT {raw.strip()!r} is {what}; {survey.name} cutouts are in {native or 'native units'}"
            )
        per_unit, how = known[0], f"BUNIT {raw.strip()!r}{known[1]}"
    factor = per_unit / survey.flux_factor
    if abs(factor - 1.0) < 1e-6:
        return 1.0, None
    return factor, f"pixel values converted from {how} to {survey.name} {native or 'native units'} (x {factor:.6g})"
