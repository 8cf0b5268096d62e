"""The celestial WCS of a cutout: read as ``astropy.wcs.WCS`` reads it, rescaled to a new grid.

Every header is interpreted by ``WCS(header)`` itself (wcslib), so a header with both a
``CD`` and a ``PC`` matrix, ``CROTA``, or ``CDELT`` alone means here what it means to
astropy and ds9.  The one exception is a plain two-axis header (:func:`_plain_wcs`: no
distortion, no third axis, one matrix), whose few keywords are handed to wcslib one by
one, the same ``Wcsprm`` at a tenth of the cost of parsing the header.  Rescaling starts from the matrix wcslib really uses
(``WCS.pixel_scale_matrix``), never from one of the header's representations, and writes
a single one (``PC`` with ``CDELT = 1``).  SIP distortion is carried over, its
coefficients rescaled to the new pixel size; distortion lookup tables are dropped.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, WCSHDO_safe, FITSFixedWarning, Sip
from astropy.wcs.wcs import WCSHDO_SIP

from survey2survey.fits_io.files import one_line
from survey2survey.surveys import Survey, get_survey, list_surveys

__all__ = ["make_wcs", "rescale_wcs", "wcs_cards", "pixel_scale_arcsec", "celestial_wcs", "detect_survey"]

#: Largest relative difference between a WCS pixel scale and a survey's for :func:`detect_survey`.
SCALE_TOLERANCE = 0.03


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


def pixel_scale_arcsec(wcs: WCS) -> float:
    """Pixel scale of a celestial WCS in arcsec: the square root of the pixel's area on the sky.

    Taken from the matrix wcslib uses (``pixel_scale_matrix``), so ``CD``, ``PC`` +
    ``CDELT`` and ``CROTA`` headers agree; for square pixels it is the side of a pixel.
    A learned model compares it with its survey's ``pixel_scale``.
    """
    matrix = np.asarray(wcs.celestial.pixel_scale_matrix, dtype=float)
    return float(np.sqrt(abs(np.linalg.det(matrix)))) * 3600.0  # deg -> arcsec


def _sip_ctype(ctypes, with_sip: bool) -> list[str]:
    """CTYPEs with ``-SIP`` exactly when the WCS carries SIP coefficients."""
    bare = [c[:-4] if c.endswith("-SIP") else c for c in ctypes]
    return [c + "-SIP" if with_sip and c else c for c in bare] if with_sip else bare


def _rescaled_sip(sip: Sip, scale: np.ndarray, crpix: np.ndarray) -> Sip:
    """SIP coefficients for pixels ``scale`` = (sx, sy) times smaller (u_in = sx u_out, v_in = sy v_out).

    With the linear matrix scaled by diag(sx, sy), ``u + f(u, v)`` keeps its meaning when
    ``A_pq`` becomes ``A_pq sx^(p-1) sy^q`` and ``B_pq`` becomes ``B_pq sx^p sy^(q-1)``
    (the same for the inverse ``AP``/``BP``).
    """
    sx, sy = scale

    def scaled(coeffs, axis):
        if coeffs is None:
            return None
        p, q = np.indices(coeffs.shape)  # coeffs[p, q] multiplies u^p v^q
        return coeffs * sx ** (p - (axis == 0)) * sy ** (q - (axis == 1))

    return Sip(scaled(sip.a, 0), scaled(sip.b, 1), scaled(sip.ap, 0), scaled(sip.bp, 1), crpix)


def rescale_wcs(wcs: WCS, in_shape: tuple[int, int], out_shape: tuple[int, int], scale=None) -> WCS:
    """WCS for the same footprint sampled on an ``out_shape`` grid instead of ``in_shape``.

    The outer pixel edges stay where they were on the sky, so the centre and the corners of
    the footprint agree; the pixel scale changes by ``in/out`` per axis.  In FITS 1-based
    pixel coordinates with edges at 0.5, ``p_in - 0.5 = s (p_out - 0.5)`` with
    ``s = in/out``.  The linear part is the matrix wcslib applies to the input
    (``pixel_scale_matrix``, whatever mix of ``CD``/``PC``/``CDELT``/``CROTA`` the header
    had) times ``diag(s)``, written as ``PC`` with ``CDELT = 1``; SIP coefficients are
    rescaled with it (:func:`_rescaled_sip`); distortion lookup tables are dropped.

    With ``scale`` given, the output pixels are that many input pixels per axis (whatever the
    shapes) and the two grids share their centre instead: a translator whose output pixel
    scale is fixed (the target survey's) rather than the input's footprint.

    Parameters
    ----------
    wcs : WCS
        Celestial 2-D WCS of the input image.
    in_shape, out_shape : (H, W)
    scale : float or (float, float), optional
        Input pixels per output pixel, (x, y); default ``in/out`` per axis.
    """
    if scale is None:
        scale = (in_shape[1] / out_shape[1], in_shape[0] / out_shape[0])
    scale = np.broadcast_to(np.asarray(scale, dtype=float), (2,)).copy()  # (x, y)
    matrix = np.asarray(wcs.pixel_scale_matrix, dtype=float) @ np.diag(scale)
    new = wcs.deepcopy()
    new.cpdis1 = new.cpdis2 = new.det2im1 = new.det2im2 = None
    w = new.wcs
    centre_in = (np.array([in_shape[1], in_shape[0]], dtype=float) + 1) / 2  # FITS 1-based (x, y)
    centre_out = (np.array([out_shape[1], out_shape[0]], dtype=float) + 1) / 2
    crpix = centre_out + (np.asarray(w.crpix, dtype=float) - centre_in) / scale
    if w.has_cd():
        del w.cd
    if w.has_crota():
        del w.crota
    w.pc = matrix
    w.cdelt = [1.0, 1.0]
    w.crpix = crpix
    new.sip = None if wcs.sip is None else _rescaled_sip(wcs.sip, scale, crpix)
    w.ctype = _sip_ctype(list(w.ctype), new.sip is not None)
    new.pixel_shape = (out_shape[1], out_shape[0])
    w.set()
    return new


def wcs_cards(wcs: WCS) -> str:
    """The WCS header cards :func:`write_cutout` writes for ``wcs``, as one string of 80-character cards.

    ``wcs.to_header`` with wcslib's safe keywords at 14 significant digits, SIP
    coefficients included when the WCS has them (and ``-SIP`` in ``CTYPE`` only then).
    Cheaper than a WCS to pass between processes; :func:`write_cutout` takes either.
    """
    if wcs.sip is None and any(str(c).endswith("-SIP") for c in wcs.wcs.ctype):
        wcs = wcs.deepcopy()
        wcs.wcs.ctype = _sip_ctype(list(wcs.wcs.ctype), False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        header = wcs.to_header(relax=WCSHDO_safe | WCSHDO_SIP)
    return header.tostring(endcard=False, padding=False)


#: Keywords whose presence means the header tries to describe a WCS.
_WCS_KEYS = ("CTYPE1", "CRVAL1", "CD1_1", "PC1_1", "CDELT1")
#: Keywords (and prefixes) that no WCS convention reads (FITS WCS papers I-IV, SIP, TPV, distortion
#: tables): left out of the header handed to ``WCS()``, whose cost grows with every card it checks
#: (and which "fixes" a damaged card it formats: a damaged band or unit card stays one, and is refused).
_NOT_WCS_KEYS = frozenset({"", "HISTORY", "COMMENT", "SIMPLE", "BITPIX", "EXTEND", "BUNIT", "SURVEY", "MAGZP",
                           "FLUXFAC", "PIXSCALE", "NBADPIX", "CHECKSUM", "DATASUM", "BANDS", "FILTERS"})
_NOT_WCS_PREFIXES = ("S2S", "BAND", "FILTER")


#: The keywords of a plain celestial WCS (:func:`_plain_wcs`).
_PLAIN_KEYS = frozenset({"CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "CUNIT1",
                         "CUNIT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2", "CD1_1", "CD1_2", "CD2_1", "CD2_2",
                         "LONPOLE", "LATPOLE", "RADESYS", "EQUINOX", "WCSAXES", "MJDREF"})
#: Any keyword wcslib might read for the primary description (WCS Papers I-VII, SIP, distortion tables,
#: old AIPS forms), alternate descriptions included: one outside the plain set sends the header to ``WCS()``.
_MAYBE_WCS = re.compile(
    r"^(WCS|C[A-Z]{3,5}\d|CD\d|PC\d|P[VS]\d|CROTA|LONPOLE|LATPOLE|REST|EQUINOX|EPOCH|RADE|SPECSYS|SSYS|VEL"
    r"|VSOURCE|ZSOURCE|OBSGEO|MJD|DATE-|DATEREF|[JB]EPOCH|TSTART|TSTOP|XPOSURE|TELAPSE|TIME|TREF|PLEPHEM|TIMS"
    r"|TIMR|CZPHS|CPERI|OBSORBIT|[AB]P?_|DP\d|DQ\d|D2IM|AXISCORR)"
)
_PLAIN_CTYPE = re.compile(r"^RA---([A-Z]{3})$"), re.compile(r"^DEC--([A-Z]{3})$")


def _plain_wcs(header: fits.Header) -> WCS | None:
    """The header's WCS built keyword by keyword when it is plain, else None (left to ``WCS()``).

    Plain: only the keywords of :data:`_PLAIN_KEYS` among those a WCS reads,
    ``RA---xxx``/``DEC--xxx`` with one projection and no distortion suffix (``-SIP``),
    ``WCSAXES`` 2 or absent, one matrix (``CD``, or ``PC``/``CDELT``), finite numbers,
    units ``deg``, frame ``ICRS`` or ``FK5``, no keyword twice.  Then this is the ``Wcsprm``
    ``WCS(header, naxis=2)`` makes, including astropy's ``fix()``
    (tests/test_fits_io.py compares the two over many headers).
    """
    keys = set()
    for key in header.keys():
        if key in _PLAIN_KEYS:
            if key in keys:  # a keyword twice: wcslib takes the last card, header.get the first
                return None
            keys.add(key)
        elif _MAYBE_WCS.match(key):
            return None
    if not {"CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2"} <= keys or header.get("WCSAXES", 2) != 2:
        return None
    has_cd, has_pc = bool(keys & {"CD1_1", "CD1_2", "CD2_1", "CD2_2"}), bool(keys & {"PC1_1", "PC1_2", "PC2_1", "PC2_2"})
    if has_cd and (has_pc or keys & {"CDELT1", "CDELT2"}):
        return None
    ctype = [header["CTYPE1"], header["CTYPE2"]]
    numbers = [header.get(k) for k in keys - {"CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "RADESYS"}]
    if not all(isinstance(c, str) for c in ctype):
        return None
    projection = [pattern.match(c) for pattern, c in zip(_PLAIN_CTYPE, ctype)]
    if not (all(projection) and projection[0].group(1) == projection[1].group(1) != "TPV"
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in numbers)):
        return None
    if header.get("MJDREF", 0.0) != 0.0:  # astropy writes MJDREF = 0.0, which is also wcslib's default
        return None
    for key, allowed in (("CUNIT1", ("deg",)), ("CUNIT2", ("deg",)), ("RADESYS", ("ICRS", "FK5"))):
        if key in keys and not (isinstance(header[key], str) and header[key].strip() in allowed):
            return None
    if has_cd:
        matrix = np.array([[float(header.get(f"CD{i}_{j}", 0.0)) for j in (1, 2)] for i in (1, 2)])
    else:
        matrix = np.array([[float(header.get(f"PC{i}_{j}", 1.0 if i == j else 0.0)) for j in (1, 2)] for i in (1, 2)])
        cdelt = [float(header.get("CDELT1", 1.0)), float(header.get("CDELT2", 1.0))]
        if 0.0 in cdelt:
            return None
    size = float(np.abs(matrix).max())
    if size == 0.0 or abs(np.linalg.det(matrix)) <= 1e-10 * size**2:  # singular: WCS() and its message
        return None
    wcs = WCS(naxis=2)
    c = wcs.wcs
    c.ctype = ctype
    c.crval = [float(header["CRVAL1"]), float(header["CRVAL2"])]
    c.crpix = [float(header.get("CRPIX1", 0.0)), float(header.get("CRPIX2", 0.0))]
    if has_cd:
        c.cd = matrix
    else:
        c.pc, c.cdelt = matrix, cdelt
    c.cunit = [header.get("CUNIT1", ""), header.get("CUNIT2", "")]
    for key, attr in (("LONPOLE", "lonpole"), ("LATPOLE", "latpole"), ("EQUINOX", "equinox")):
        if key in keys:
            setattr(c, attr, float(header[key]))
    if "RADESYS" in keys:
        c.radesys = header["RADESYS"].strip()
    wcs.fix()
    return wcs


def celestial_wcs(header: fits.Header, warn: list[str]) -> WCS | None:
    """``WCS(header, naxis=2)`` of an image HDU, or None (with a warning when it is unusable).

    The header is handed over without the cards no WCS convention reads (commentary,
    ``s2s``'s own keywords, band names): the same WCS, fewer cards for astropy to check.

    A WCS that wcslib refuses, or whose matrix is singular (``CD``/``PC`` rows that are
    zero or proportional, not only ``CDELT = 0``: the sky-to-pixel direction is then
    undefined), is ignored with one warning line; the cutout is read without a WCS.
    """
    if not any(key in header for key in _WCS_KEYS):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            warnings.simplefilter("ignore", AstropyWarning)
            wcs = _plain_wcs(header)
            if wcs is None:
                cards = [c for c in header.cards if c.keyword not in _NOT_WCS_KEYS
                         and not c.keyword.startswith(_NOT_WCS_PREFIXES)]
                wcs = WCS(fits.Header(cards), naxis=2)
            wcs.wcs.set()
    except Exception as exc:
        warn.append(f"unusable WCS ignored ({one_line(exc)})")
        return None
    if not wcs.is_celestial:
        return None
    matrix = np.asarray(wcs.pixel_scale_matrix, dtype=float)
    size = float(np.abs(matrix).max()) if np.isfinite(matrix).all() else 0.0
    if size == 0.0 or abs(np.linalg.det(matrix)) <= 1e-10 * size**2:
        text = " ".join(f"{v:.6g}" for v in matrix.ravel())
        warn.append(f"unusable WCS ignored (singular CD/PC matrix [{text}]: no pixel scale or orientation)")
        return None
    return wcs


def detect_survey(header: fits.Header, wcs: WCS | None = None) -> Survey | None:
    """Guess the survey from ``SURVEY``/``S2STGTSV``/``TELESCOP``/``INSTRUME`` or the pixel scale.

    By pixel scale only a survey within :data:`SCALE_TOLERANCE` (3 %) of the WCS's is
    taken, the nearest one when several are; a cutout far from every survey's scale is
    not guessed at (None).
    """
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
    if wcs is None:
        return None
    scale = pixel_scale_arcsec(wcs)
    off = {s.name: abs(s.pixel_scale - scale) / s.pixel_scale for s in list_surveys()}
    near = [s for s in list_surveys() if off[s.name] <= SCALE_TOLERANCE]
    return min(near, key=lambda s: off[s.name]) if near else None
