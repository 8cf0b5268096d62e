"""Writing cutouts with their provenance, and telling an intact output of ``s2s`` from anything else.

One cube per object (float32, ``BUNIT``, ``MAGZP``, ``BANDS``, the WCS on the output grid,
provenance keywords, ``HISTORY``), built with ``astropy.io.fits`` and written by
``HDUList.writeto(checksum=True)`` into a temporary file that is renamed into place
(:mod:`survey2survey.atomic`).  Header text is ASCII: characters a FITS header cannot hold
(a non-ASCII letter in a path, a control character) are written as Python escapes
(``caf\\xe9.fits``), so that no input name can make a write fail.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS

from survey2survey import __version__
from survey2survey.atomic import AtomicGroup, atomic_write
from survey2survey.errors import CutoutError, OutputExistsError, UsageError, os_error_in
from survey2survey.fits_io.files import one_line
from survey2survey.fits_io.wcs import wcs_cards
from survey2survey.surveys import Survey, get_survey

__all__ = ["Provenance", "write_cutout", "write_hdul_atomic", "commit_outputs", "verify_fits", "is_s2s_output",
           "header_text"]

_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")


def header_text(value: str) -> str:
    """``value`` as printable ASCII for a FITS header: other characters become ``\\xe9``, ``\\u2013``... escapes."""
    if not _NOT_PRINTABLE.search(value):
        return value
    return _NOT_PRINTABLE.sub(lambda m: ascii(m.group())[1:-1], value)


def _safe(value: object) -> object:
    return header_text(value) if isinstance(value, str) else value


@dataclass
class Provenance:
    """Where a written cutout came from; becomes ``S2S*`` header keywords.

    Every field is optional; the date and package version are filled in when writing.
    Paths and names are written with :func:`header_text` (ASCII with escapes).
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
                out.append((key, _safe(value), comment))
        for key, (value, comment) in self.extra.items():
            out.append((key.upper(), _safe(value), comment))
        return out


def _write_atomic(
    path: Path, overwrite: bool, fsync: bool, write: Callable[[BinaryIO], None], group: AtomicGroup | None = None
) -> None:
    """Run ``write(fh)`` on a temporary file that then becomes ``path`` (:func:`atomic_write`;
    with ``group``, when the group is committed: :func:`commit_outputs`).

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
        with atomic_write(path, overwrite=overwrite, fsync=fsync, group=group) as fh:
            write(fh)
    except FileExistsError:
        raise OutputExistsError(path) from None
    except (OSError, AttributeError, TypeError) as exc:  # astropy's free-space check may fail in turn
        cause = os_error_in(exc)
        if cause is None and not isinstance(exc, OSError):
            raise
        raise _write_error(path, cause or exc) from None


def _write_error(path: Path, exc: OSError) -> OutputExistsError | CutoutError:
    if isinstance(exc, FileExistsError):
        return OutputExistsError(path)
    return CutoutError(path, f"cannot write output ({exc.strerror or exc})")


def commit_outputs(group: AtomicGroup) -> dict[Path, OutputExistsError | CutoutError]:
    """Make the outputs written with ``group=`` durable and give them their names (:meth:`AtomicGroup.commit`).

    Returns
    -------
    dict of Path to OutputExistsError or CutoutError
        The outputs not written, with the error their write would have raised alone:
        :class:`OutputExistsError` when another writer took the name meanwhile.
    """
    return {path: _write_error(path, exc) for path, exc in group.commit().items()}


def write_hdul_atomic(
    hdul: fits.HDUList, path: Path, overwrite: bool = False, fsync: bool = True, output_verify: str = "exception",
    group: AtomicGroup | None = None,
) -> None:
    """Write an HDUList with CHECKSUM/DATASUM via a temporary file and a rename.

    ``output_verify`` is astropy's: ``"exception"`` checks every card before writing;
    :func:`write_cutout` passes ``"ignore"`` for the headers it builds card by card (each
    card is checked when it is made), which saves most of the cost of writing a cutout.
    With ``group`` the file gets its name when the group is committed (:func:`commit_outputs`).

    Raises :class:`OutputExistsError` if ``path`` exists and not ``overwrite``; never
    leaves a partial file under ``path``.
    """
    _write_atomic(Path(path), overwrite, fsync, lambda fh: hdul.writeto(fh, checksum=True, output_verify=output_verify),
                  group)


def _survey_cards(survey: Survey, mask: np.ndarray | None) -> list[tuple[str, object, str]]:
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
        cards.append(("NBADPIX", int(np.count_nonzero(mask)), "pixels filled (not finite in the input)"))
    return cards


@lru_cache(maxsize=8192, typed=True)  # typed: 1, 1.0 and True are three cards
def _cached_card(key: str, value: object, comment: str | None) -> fits.Card:
    """astropy's card for (key, value, comment), its image (80-character cards; CONTINUE
    cards for long strings) already formatted.

    Cached: most cards of a batch of outputs repeat (survey, provenance, PSF keywords), and
    formatting a card is most of what writing a small cutout costs.  Checked as it is made
    (ASCII, finite numbers, key length): a bad card raises here.  A card made from its
    value is verified, so writing it does not parse its image again.  Shared by every
    header built from it (:func:`_primary_hdu` puts the card itself in the HDU's header):
    never modified, and no header that holds it is modified after it is built.
    """
    card = fits.Card(key, value, comment)
    card.image  # noqa: B018 -- formatted (and checked) once, here
    return card


@lru_cache(maxsize=8192)
def _parsed_card(image: str) -> fits.Card:
    """The card of one 80-character image (a WCS card from :func:`wcs_cards`), checked once
    (astropy verifies a parsed card when its image is first used); never modified."""
    card = fits.Card.fromstring(image)
    card.image  # noqa: B018
    return card


def _card(key: str, value: object, comment: str | None = None) -> fits.Card:
    try:
        return _cached_card(key, value, comment)
    except TypeError:  # an unhashable value: made without the cache
        return fits.Card(key, value, comment)


#: Keywords astropy derives from the data (``Header.strip()``): never taken from the cards given.
_STRUCTURAL = frozenset({"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "GROUPS", "BSCALE",
                         "BZERO", "TFIELDS"})


def _primary_hdu(data: np.ndarray, wcs: WCS | str | None, cards, history: Sequence[str]) -> fits.PrimaryHDU:
    """The primary HDU of ``data``: the structural cards astropy makes for it, then :func:`_primary_cards`.

    Equal, byte for byte once written, to ``PrimaryHDU(data, header=Header(cards))``, which
    copies every card of the header it is given and merges them one by one into its own (a
    search of the header per card): here the header is made once, whole.
    """
    hdu = fits.PrimaryHDU(data=data)
    structural = [card for card in hdu.header.cards if card.keyword != "EXTEND"]  # as when a header is given
    ours = [card for card in _primary_cards(wcs, cards, history)  # and without them, as Header.strip() leaves it
            if card.keyword not in _STRUCTURAL and not (card.keyword.startswith("NAXIS") and card.keyword[5:].isdigit())]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        hdu.header = fits.Header(structural + ours)
    return hdu


def _primary_cards(wcs: WCS | str | None, cards, history: Sequence[str]) -> list[fits.Card]:
    """The primary header's cards: WCS cards, then ``cards``, then HISTORY.

    Built from card objects in one go, not key by key (a header of ~80 cards assigned one
    at a time costs astropy a search of the header per card), and from cached, verified
    cards (:func:`_cached_card`), which astropy writes without parsing them again.  Later
    duplicates of a key win, as assignment would give.
    """
    listed: dict[str, fits.Card] = {}
    if wcs is not None:
        text = wcs if isinstance(wcs, str) else wcs_cards(wcs)
        for at in range(0, len(text), 80):
            listed[text[at : at + 8].strip()] = _parsed_card(text[at : at + 80])
        listed["WCSAXES"] = _card("WCSAXES", 2)
    commentary: list[fits.Card] = []
    for key, value, comment in cards:
        if key.upper() in ("COMMENT", "HISTORY", ""):
            commentary.append(_card(key.upper(), header_text(str(value))))
        else:
            listed[key.upper()] = _card(key, _safe(value), header_text(comment) if comment else comment)
    commentary += [_card("HISTORY", header_text(str(line))) for line in history]
    return list(listed.values()) + commentary


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
    group: AtomicGroup | None = None,
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
    group : AtomicGroup, optional
        Write the file whole under a temporary name only: it is flushed to disk with the
        group's other files and takes its name when the group is committed
        (:func:`commit_outputs`, which reports a name taken meanwhile).

    Returns
    -------
    Path
        The written path (with ``group``: once the group is committed).

    Raises
    ------
    CutoutError
        A header that cannot be written names the input (``provenance.source_file``) when
        known; file-system errors name the output.
    """
    survey = get_survey(survey)
    path = Path(path)
    # big-endian, as FITS stores it: astropy then checksums and writes it without two byte-swapped copies
    data = np.asarray(data, dtype=">f4")
    if data.ndim != 3 or data.shape[0] != survey.n_bands:
        raise UsageError(
            f"{path}: cannot write data of shape {data.shape} as a {survey.name} cutout ({survey.n_bands} bands)"
        )
    if mask is not None:
        mask = np.asarray(mask, dtype=np.uint8)
    cards = _survey_cards(survey, mask) + (provenance.cards() if provenance else []) + list(header_cards)
    try:
        with warnings.catch_warnings():
            # long values (file names, hashes) leave no room for the comment: keep the value
            warnings.filterwarnings("ignore", message="Card is too long, comment will be truncated")
            hdus: list = [_primary_hdu(data, wcs, cards, history)]
            if mask is not None:
                mask_hdu = fits.ImageHDU(data=mask, name="MASK")
                mask_hdu.header["COMMENT"] = "1 where the input pixel was NaN/inf and was filled"
                hdus.append(mask_hdu)
            # each card is checked as it is made; a failure leaves no file
            write_hdul_atomic(fits.HDUList(hdus + list(extra_hdus)), path, overwrite, fsync,
                              output_verify="exception" if extra_hdus else "ignore", group=group)
    except (ValueError, TypeError, fits.VerifyError) as exc:
        source = provenance.source_file if provenance and provenance.source_file else None
        where = f" for {path.name}" if source else ""
        raise CutoutError(source or path, f"cannot write the FITS header{where} ({one_line(exc)})") from None
    return path


def is_s2s_output(path: str | os.PathLike) -> bool:
    """True when the file's primary header carries ``s2s``'s provenance (``S2SVER``), intact or not.

    Only such a file may be redone without ``--overwrite`` when it is broken: a survey's
    own file (no provenance) is the user's.  A file astropy cannot open (cut short within
    its header) is judged by the cards it still has; False for anything else unreadable.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False) as hdul:
                return "S2SVER" in hdul[0].header
    except Exception:
        pass
    try:
        with open(path, "rb") as fh:
            head = fh.read(2880 * 36)  # the primary header of any output of ours
    except OSError:
        return False
    if not head.startswith(b"SIMPLE  ="):
        return False
    for at in range(0, len(head) - 79, 80):
        card = head[at : at + 80]
        if card.startswith(b"S2SVER  ="):
            return True
        if card.startswith(b"END     ") or card.rstrip() == b"END":
            return False
    return False


def verify_fits(path: str | os.PathLike) -> None:
    """Raise :class:`CutoutError` unless every HDU passes FITS verification and its CHECKSUM/DATASUM.

    An intact output of ``s2s`` is a file that passes this and :func:`is_s2s_output`.
    The check and its complaint are astropy's (``fits.open(checksum=True)``).
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", AstropyWarning)
            with fits.open(path, checksum=True, memmap=False) as hdul:
                hdul.verify("exception")
                for hdu in hdul:
                    if "CHECKSUM" not in hdu.header or "DATASUM" not in hdu.header:
                        raise CutoutError(path, f"HDU {hdu.name} has no CHECKSUM/DATASUM")
                    _ = hdu.data
    except CutoutError:
        raise
    except Exception as exc:
        raise CutoutError(path, f"FITS verification failed ({one_line(exc)})") from None
