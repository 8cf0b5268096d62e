"""Bad inputs for the reliability tests (``tests/test_reliability.py``), one small factory each.

Every way an input can be broken is a function that writes that input into a directory
(under an object id of the caller's choice, so that it can stand in for a real object) and
returns the path the toolkit must name in its one-line message.  The factories work
for any survey of the registry (sizes and bands come from it), so the same broken cutout
can be fed to ``prepare``, ``evaluate``, ``translate`` and ``emulate-noise``.

* :data:`CUTOUT_FAULTS` -- files every reader refuses (``fits_io.read_cutout``), with the
  text their line must contain;
* :data:`PREPARE_ONLY_FAULTS` -- readable files that ``prepare`` refuses (an empty band,
  no sky position);
* :func:`few_nan_cutout` -- the NaN policy's other side: a few bad pixels are filled and
  flagged, the cutout is kept;
* survey TOML, catalog and model-directory factories at the end.

``docs/reliability.md`` lists every case with its expected line, exit code and policy.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from astropy.io import fits

from survey2survey.fits_io import make_wcs, write_cutout
from survey2survey.surveys import Survey, get_survey

__all__ = [
    "Fault",
    "CUTOUT_FAULTS",
    "HEADER_FAULTS",
    "PREPARE_ONLY_FAULTS",
    "good_cube",
    "write_good",
    "few_nan_cutout",
    "SURVEY_TOML_FAULTS",
    "bad_catalog",
    "make_model_dir",
    "MODEL_FAULTS",
    "PICKLE_MARKER",
]


@dataclass(frozen=True)
class Fault:
    """One kind of bad input.

    Attributes
    ----------
    name : str
        Short id; by default the file is named after it (``bad_<name>.fits``).
    make : callable
        ``make(directory, survey, stem) -> Path``: writes the input as ``<stem>.fits``
        (or ``<stem>-<band>.fits``...), returns the path the message must name.
    message : str
        Text the one-line message must contain.
    policy : str
        What the toolkit does with it (for docs/reliability.md).
    """

    name: str
    make: Callable[[Path, Survey, str], Path]
    message: str
    policy: str = "input skipped, reported on one line"

    def write(self, directory: Path, survey: Survey | str, stem: str | None = None) -> Path:
        """Write this bad input into ``directory`` (object id ``stem``); return the path to name."""
        directory.mkdir(parents=True, exist_ok=True)
        return self.make(directory, get_survey(survey), stem or f"bad_{self.name}")


# --- good data to damage --------------------------------------------------------------------


def good_cube(survey: Survey | str, seed: int = 0, size: int | None = None) -> np.ndarray:
    """(bands, H, W) float32 native values: a Gaussian galaxy per band plus sky noise."""
    survey = get_survey(survey)
    n = size or survey.cutout_size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2.0
    blob = np.exp(-(xx**2 + yy**2) / (2 * (n / 12.0) ** 2))  # (H, W)
    scale = 5.0 / survey.flux_factor  # a few nanomaggies at the peak, in native units
    noise = 0.05 / survey.flux_factor
    bands = [blob * scale * (0.5 + 0.2 * b) + rng.normal(0, noise, (n, n)) for b in range(survey.n_bands)]
    return np.stack(bands).astype(np.float32)


def _header(survey: Survey, n: int, bands: str | None, ra: float = 150.0, dec: float = 2.0) -> fits.Header:
    header = make_wcs(ra, dec, survey.pixel_scale, (n, n)).to_header()
    if bands is not None:
        header["BANDS"] = bands
    return header


def _cube_file(path: Path, data: np.ndarray, header: fits.Header | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


def write_good(path: Path, survey: Survey | str, seed: int = 0, ra: float = 150.0, dec: float = 2.0) -> Path:
    """A valid cube cutout with a WCS centred on (ra, dec), written as ``s2s`` writes one."""
    survey = get_survey(survey)
    wcs = make_wcs(ra, dec, survey.pixel_scale, (survey.cutout_size,) * 2)
    return write_cutout(path, good_cube(survey, seed), survey, wcs=wcs)


def _other_band(survey: Survey) -> str:
    return next(b for b in "YwxQ" if b not in survey.bands)


# --- cutouts every reader refuses ---------------------------------------------------------------


def zero_byte(d: Path, s: Survey, stem: str) -> Path:
    p = d / f"{stem}.fits"
    p.write_bytes(b"")
    return p


def not_fits(d: Path, s: Survey, stem: str) -> Path:
    p = d / f"{stem}.fits"
    p.write_text("id,ra,dec\n" + "obj,150.0,2.0\n" * 300)  # a CSV saved under a FITS name
    return p


def truncated_data(d: Path, s: Survey, stem: str) -> Path:
    p = write_good(d / f"{stem}.fits", s)
    raw = p.read_bytes()
    p.write_bytes(raw[: 2 * 2880 + (len(raw) - 2 * 2880) // 3])  # header intact, data cut short
    return p


def truncated_header(d: Path, s: Survey, stem: str) -> Path:
    p = write_good(d / f"{stem}.fits", s)
    p.write_bytes(p.read_bytes()[:2880])  # first header block only: no END card
    return p


def truncated_gzip(d: Path, s: Survey, stem: str) -> Path:
    src = write_good(d / f".{stem}.tmp.fits", s)
    raw = gzip.compress(src.read_bytes())
    src.unlink()
    p = d / f"{stem}.fits.gz"
    p.write_bytes(raw[: len(raw) // 2])
    return p


def huge_declared_size(d: Path, s: Survey, stem: str) -> Path:
    """A header whose NAXISn was damaged into 200 GB: must not be allocated."""
    h = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 3), ("NAXIS1", 100000), ("NAXIS2", 100000),
                     ("NAXIS3", s.n_bands)])
    p = d / f"{stem}.fits"
    p.write_bytes(h.tostring().encode("ascii") + bytes(2880 * 4))
    return p


def invalid_bitpix(d: Path, s: Survey, stem: str) -> Path:
    p = write_good(d / f"{stem}.fits", s)
    raw = p.read_bytes()
    card = b"BITPIX  =                  -32"
    assert card in raw
    p.write_bytes(raw.replace(card, b"BITPIX  =                  -62", 1))
    return p


def unparsable_card(d: Path, s: Survey, stem: str) -> Path:
    """One header card damaged into garbage (a byte flip in a header, a bad writer)."""
    p = write_good(d / f"{stem}.fits", s)
    raw = bytearray(p.read_bytes())
    at = raw.index(b"BANDS   = ")
    raw[at + 10 : at + 30] = b"'u,g,r,i,z'        T"  # value, then junk where the comment belongs
    p.write_bytes(bytes(raw))
    return p


def four_axes(d: Path, s: Survey, stem: str) -> Path:
    n = s.cutout_size
    return _cube_file(d / f"{stem}.fits", np.zeros((2, s.n_bands, n, n), np.float32))


def one_axis(d: Path, s: Survey, stem: str) -> Path:
    return _cube_file(d / f"{stem}.fits", np.zeros(s.cutout_size**2, np.float32))


def wrong_size(d: Path, s: Survey, stem: str) -> Path:
    n = s.cutout_size // 2
    return _cube_file(d / f"{stem}.fits", good_cube(s, 1, size=n), _header(s, n, ",".join(s.bands)))


def missing_band(d: Path, s: Survey, stem: str) -> Path:
    n = s.cutout_size
    return _cube_file(d / f"{stem}.fits", good_cube(s, 2)[:-1], _header(s, n, ",".join(s.bands[:-1])))


def unknown_band(d: Path, s: Survey, stem: str) -> Path:
    n = s.cutout_size
    names = list(s.bands[:-1]) + [_other_band(s)]
    return _cube_file(d / f"{stem}.fits", good_cube(s, 3), _header(s, n, ",".join(names)))


def duplicate_bands(d: Path, s: Survey, stem: str) -> Path:
    n = s.cutout_size
    names = list(s.bands[:-1]) + [s.bands[0]]
    return _cube_file(d / f"{stem}.fits", good_cube(s, 4), _header(s, n, ",".join(names)))


def unnamed_planes(d: Path, s: Survey, stem: str) -> Path:
    """Fewer planes than the survey has bands, none named: which band is which?"""
    n = s.cutout_size
    return _cube_file(d / f"{stem}.fits", good_cube(s, 5)[:3], _header(s, n, None))


def too_many_nan(d: Path, s: Survey, stem: str) -> Path:
    n = s.cutout_size
    data = good_cube(s, 6)
    data[1, : n // 4] = np.nan  # 25 % of the second band
    return _cube_file(d / f"{stem}.fits", data, _header(s, n, ",".join(s.bands)))


def too_many_inf(d: Path, s: Survey, stem: str) -> Path:
    n = s.cutout_size
    data = good_cube(s, 7)
    data[-1, :, : n // 5] = np.inf
    data[-1, 0, -1] = -np.inf
    return _cube_file(d / f"{stem}.fits", data, _header(s, n, ",".join(s.bands)))


def table_only(d: Path, s: Survey, stem: str) -> Path:
    table = fits.BinTableHDU.from_columns([fits.Column(name="flux", format="E", array=np.zeros(3))])
    p = d / f"{stem}.fits"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(p)
    return p


def mixed_band_sizes(d: Path, s: Survey, stem: str) -> Path:
    n = s.cutout_size
    hdus = [fits.PrimaryHDU()]
    for k, band in enumerate(s.bands):
        m = n if k else n - 2
        hdus.append(fits.ImageHDU(np.zeros((m, n), np.float32), name=band))
    p = d / f"{stem}.fits"
    fits.HDUList(hdus).writeto(p)
    return p


def some_bands_unnamed(d: Path, s: Survey, stem: str) -> Path:
    n = s.cutout_size
    hdus = [fits.PrimaryHDU()]
    for k, band in enumerate(s.bands):
        hdu = fits.ImageHDU(np.zeros((n, n), np.float32))
        if k:
            hdu.header["FILTER"] = band
        hdus.append(hdu)
    p = d / f"{stem}.fits"
    fits.HDUList(hdus).writeto(p)
    return p


def per_band_file_truncated(d: Path, s: Survey, stem: str) -> Path:
    """One object as one file per band; the third band's file is cut short: name that file."""
    n = s.cutout_size
    data = good_cube(s, 8)
    paths = [_cube_file(d / f"{stem}-{b}.fits", data[k], _header(s, n, None)) for k, b in enumerate(s.bands)]
    broken = paths[2]
    broken.write_bytes(broken.read_bytes()[: 2880 + 100])
    return broken


def fifo(d: Path, s: Survey, stem: str) -> Path:
    """A named pipe where a file is expected: an unreadable input that root cannot read either."""
    p = d / f"{stem}.fits"
    os.mkfifo(p)
    return p


def dangling_symlink(d: Path, s: Survey, stem: str) -> Path:
    p = d / f"{stem}.fits"
    os.symlink(d / f"{stem}.deleted", p)
    return p


CUTOUT_FAULTS: tuple[Fault, ...] = (
    Fault("zero_byte", zero_byte, "empty file (0 bytes)"),
    Fault("not_fits", not_fits, "not a FITS file"),
    Fault("truncated_data", truncated_data, "truncated"),
    Fault("truncated_header", truncated_header, "unreadable FITS file (Header missing END card.)"),
    Fault("truncated_gzip", truncated_gzip, "not a FITS file"),
    Fault("huge_declared_size", huge_declared_size, "truncated image data (header declares 200,000,000,000 bytes"),
    Fault("invalid_bitpix", invalid_bitpix, "invalid BITPIX -62"),
    Fault("unparsable_card", unparsable_card, "unreadable FITS file (VerifyError: Unparsable card (BANDS)"),
    Fault("four_axes", four_axes, "wrong number of axes"),
    Fault("one_axis", one_axis, "wrong number of axes"),
    Fault("wrong_size", wrong_size, "wrong size"),
    Fault("missing_band", missing_band, "missing band(s)"),
    Fault("unknown_band", unknown_band, "is not a band of survey"),
    Fault("duplicate_bands", duplicate_bands, "duplicate bands"),
    Fault("unnamed_planes", unnamed_planes, "3 bands without names"),
    Fault("too_many_nan", too_many_nan, "25.0% of band", "cutout skipped: more than 5% NaN/inf in a band"),
    Fault("too_many_inf", too_many_inf, "NaN/inf (more than 5%; cutout skipped)",
          "cutout skipped: more than 5% NaN/inf in a band"),
    Fault("table_only", table_only, "no image data in any HDU"),
    Fault("mixed_band_sizes", mixed_band_sizes, "bands have different image sizes"),
    Fault("some_bands_unnamed", some_bands_unnamed, "some image HDUs name their band and some do not"),
    Fault("per_band_file_truncated", per_band_file_truncated, "truncated",
          "object skipped; the line names the broken band file"),
    Fault("fifo", fifo, "not a regular file (a FIFO, socket or device)", "input skipped (never opened: it could block)"),
    Fault("dangling_symlink", dangling_symlink, "cannot read file (No such file or directory)"),
)


# --- issue 15: header faults every reader refuses (band keywords, units) -------------------------------


def band_keywords_unreadable(d: Path, s: Survey, stem: str) -> Path:
    """BANDS names fewer bands than the cube has planes, and nothing else names them: no guessing."""
    n = s.cutout_size
    return _cube_file(d / f"{stem}.fits", good_cube(s, 12), _header(s, n, ",".join(s.bands[:3])))


def band_keywords_disagree(d: Path, s: Survey, stem: str) -> Path:
    """BANDS in survey order, FILTER1..n in reverse: which is true cannot be told."""
    n = s.cutout_size
    header = _header(s, n, ",".join(s.bands))
    for i, band in enumerate(reversed(s.bands), start=1):
        header[f"FILTER{i}"] = band
    return _cube_file(d / f"{stem}.fits", good_cube(s, 13), header)


def unknown_unit(d: Path, s: Survey, stem: str) -> Path:
    n = s.cutout_size
    header = _header(s, n, ",".join(s.bands))
    header["BUNIT"] = "W/m2"
    return _cube_file(d / f"{stem}.fits", good_cube(s, 14), header)


#: Issue 15 items 3 and 5 (the header half): kept apart from CUTOUT_FAULTS so that the
#: translate/evaluate runs built on that tuple keep their counts; docs/reliability.md "Real files".
HEADER_FAULTS: tuple[Fault, ...] = (
    Fault("band_keywords_unreadable", band_keywords_unreadable, "names 3 band(s) for 5 image planes",
          "input skipped: band keywords that exist but cannot be read are never replaced by the survey order"),
    Fault("band_keywords_disagree", band_keywords_disagree, "band keywords disagree",
          "input skipped: BANDS and FILTERn contradict each other"),
    Fault("unknown_unit", unknown_unit, "BUNIT 'W/m2' is a unit s2s cannot convert",
          "input skipped: a unit that is not the survey's and cannot be converted"),
)


# --- issue 15: real-file layouts every reader must read right ---------------------------------------------


def bands_run_together(d: Path, s: Survey, stem: str) -> tuple[Path, np.ndarray]:
    """BANDS='zirgu' (single letters, no commas) and FILTER1..n, planes in reverse survey order."""
    n = s.cutout_size
    data = good_cube(s, 15)
    header = _header(s, n, "".join(reversed(s.bands)))
    for i, band in enumerate(reversed(s.bands), start=1):
        header[f"FILTER{i}"] = band
    return _cube_file(d / f"{stem}.fits", data[::-1].copy(), header), data


def in_nanojansky(d: Path, s: Survey, stem: str) -> tuple[Path, np.ndarray]:
    """The cube in nJy (BUNIT): read back in the survey's native unit."""
    n = s.cutout_size
    data = good_cube(s, 16)
    header = _header(s, n, ",".join(s.bands))
    header["BUNIT"] = "nJy"
    njy = data * s.flux_factor * 3631.0  # native -> nanomaggies -> nJy
    return _cube_file(d / f"{stem}.fits", njy.astype(np.float32), header), data


def cd_and_pc(d: Path, s: Survey, stem: str) -> Path:
    """What ``header.update(Cutout2D(...).wcs.to_header())`` leaves on a frame header: the frame's CD
    matrix (rotated, another scale) beside the cutout's PC matrix, which wcslib uses; the
    reference pixel far off the cutout, as for any cutout of a larger frame."""
    n = s.cutout_size
    header = _header(s, n, ",".join(s.bands), ra=151.0, dec=2.5)  # PC1_1..PC2_2 and CDELT
    header["CRPIX1"], header["CRPIX2"] = -700.5, 412.0
    scale = s.pixel_scale / 3600.0
    cd = np.array([[-2.2, 0.3], [0.3, 2.2]]) * scale
    header["CD1_1"], header["CD1_2"], header["CD2_1"], header["CD2_2"] = cd.ravel()
    return _cube_file(d / f"{stem}.fits", good_cube(s, 17), header)


def zero_band(d: Path, s: Survey, stem: str) -> Path:
    """A missing band padded with zeros: read, with a warning."""
    n = s.cutout_size
    data = good_cube(s, 18)
    data[0] = 0.0
    return _cube_file(d / f"{stem}.fits", data, _header(s, n, ",".join(s.bands)))


def singular_cd(d: Path, s: Survey, stem: str) -> Path:
    """A CD matrix with proportional rows (not zero, not CDELT = 0): no sky-to-pixel direction."""
    n = s.cutout_size
    header = _header(s, n, ",".join(s.bands))
    for key in ("PC1_1", "PC1_2", "PC2_1", "PC2_2", "CDELT1", "CDELT2"):
        header.remove(key, ignore_missing=True)
    scale = s.pixel_scale / 3600.0
    header["CD1_1"], header["CD1_2"], header["CD2_1"], header["CD2_2"] = scale, 2 * scale, -scale, -2 * scale
    return _cube_file(d / f"{stem}.fits", good_cube(s, 19), header)


def compressed(d: Path, s: Survey, stem: str, kind: str) -> tuple[Path, np.ndarray]:
    """The good cube as ``.fits.gz``, ``.fits.bz2`` or tile-compressed ``.fits.fz`` (lossless)."""
    import bz2

    data = good_cube(s, 20)
    header = _header(s, s.cutout_size, ",".join(s.bands))
    p = d / f"{stem}.fits.{kind}"
    if kind == "fz":
        comp = fits.CompImageHDU(data, header=header, compression_type="GZIP_1", quantize_level=0.0)
        fits.HDUList([fits.PrimaryHDU(), comp]).writeto(p)
        return p, data
    plain = _cube_file(d / f".{stem}.tmp.fits", data, header)
    p.write_bytes((gzip.compress if kind == "gz" else bz2.compress)(plain.read_bytes()))
    plain.unlink()
    return p, data


def sdss_frame(d: Path, band: str = "r", nmgy: float = 0.005) -> tuple[Path, np.ndarray]:
    """An SDSS ``frame-*.fits``: image (nanomaggies, FILTER, NMGY), 1-D calibration HDU, two tables."""
    rng = np.random.default_rng(21)
    image = rng.normal(0, 0.02, (149, 204)).astype(np.float32)
    header = make_wcs(150.0, 2.0, 0.396, (149, 204)).to_header()
    header["FILTER"], header["BUNIT"], header["NMGY"], header["TELESCOP"] = band, "nanomaggy", nmgy, "SDSS 2.5-M"
    hdus = [fits.PrimaryHDU(image, header=header), fits.ImageHDU(np.full(204, nmgy, np.float32)),
            fits.BinTableHDU.from_columns([fits.Column(name="ALLSKY", format="E", array=np.zeros(3))]),
            fits.BinTableHDU.from_columns([fits.Column(name="AMPLITUDE", format="E", array=np.zeros(2))])]
    p = d / f"frame-{band}-001000-1-0027.fits"
    fits.HDUList(hdus).writeto(p)
    return p, image


# --- readable cutouts that prepare refuses, and the NaN policy's kept side -----------------------


def all_zero_band(d: Path, s: Survey, stem: str) -> Path:
    data = good_cube(s, 9)
    data[0] = 0.0
    return write_cutout(d / f"{stem}.fits", data, s,
                        wcs=make_wcs(151.0, 2.0, s.pixel_scale, (s.cutout_size,) * 2))


def no_wcs(d: Path, s: Survey, stem: str) -> Path:
    return write_cutout(d / f"{stem}.fits", good_cube(s, 10), s)


PREPARE_ONLY_FAULTS: tuple[Fault, ...] = (
    Fault("all_zero_band", all_zero_band, "band(s) u all zero (no coverage)"),
    Fault("no_wcs", no_wcs, "no WCS in the file and no catalog",
          "prepare: skipped (no sky position to pair it); evaluate matches by id; translate warns"),
)


def few_nan_cutout(d: Path, s: Survey, ra: float = 152.0, dec: float = 2.0) -> Path:
    """A usable cutout with 7 NaN and 2 inf pixels (< 5 % of any band): filled and flagged."""
    n = s.cutout_size
    data = good_cube(s, 11)
    data[2, 10, 10:17] = np.nan
    data[0, 0, :2] = np.inf
    return _cube_file(d / "few_nan.fits", data, _header(s, n, ",".join(s.bands), ra, dec))


# --- survey definitions ----------------------------------------------------------------------------

_GOOD_TOML = "[toy]\nbands = ['g', 'r']\npixel_scale = 0.5\ncutout_size = 32\nzero_point = 25.0\n"

#: name -> (file content, text of the one error line)
SURVEY_TOML_FAULTS: dict[str, tuple[str | bytes, str]] = {
    "toml_syntax": ("[toy\nbands = ['g']\n", "not valid TOML"),
    "toml_not_utf8": (b"[toy]\nbands = ['\xff\xfe']\n", "not a TOML text file (not UTF-8"),
    "toml_missing_key": ("[toy]\nbands = ['g']\npixel_scale = 0.5\n", "missing key(s) cutout_size, zero_point"),
    "toml_wrong_type": (_GOOD_TOML.replace("0.5", "'half'"), "'pixel_scale' must be a number, got 'half'"),
    "toml_bool_number": (_GOOD_TOML.replace("0.5", "true"), "'pixel_scale' must be a number, got True"),
    "toml_negative_scale": (_GOOD_TOML.replace("0.5", "-0.5"), "'pixel_scale' must be a positive number"),
    "toml_unknown_key": (_GOOD_TOML + "colour = 'red'\n", "unknown key(s) colour"),
    "toml_aliases_not_list": (_GOOD_TOML + "aliases = 3\n", "'aliases' must be a list of strings"),
    "toml_band_with_comma": (_GOOD_TOML.replace("'g', 'r'", "'g,r'"), "band names cannot contain commas"),
    "toml_empty": ("", "no survey tables found"),
}


# --- catalogs ------------------------------------------------------------------------------------


def bad_catalog(d: Path) -> Path:
    """A position catalog without an id column."""
    p = d / "positions.csv"
    p.write_text("name_of_thing,ra_deg\nx,1\n")
    return p


# --- model directories ---------------------------------------------------------------------------

#: File that the pickle payload of :func:`pickle_weights` would create if it were ever run.
PICKLE_MARKER = "PICKLE_PAYLOAD_RAN"


def make_model_dir(d: Path) -> Path:
    """A small valid model directory (one noise emulator) to damage."""
    import torch

    from survey2survey.model import save_model
    from survey2survey.nets import NoiseEmulator

    torch.manual_seed(0)
    return save_model(d / "model", {"noise_emulator_sdss": NoiseEmulator(bands=2)}, {"name": "tiny"})


class _Payload:
    """Unpickling this runs ``os.system``: what a hostile checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def pickle_weights(model: Path) -> Path:
    """weights.safetensors replaced by a pickle that runs a command when unpickled."""
    p = model / "weights.safetensors"
    p.write_bytes(pickle.dumps({"state_dict": _Payload(model.parent / PICKLE_MARKER)}))
    return p


def pickle_checkpoint_only(model: Path) -> Path:
    """A torch-style checkpoint (model.pt, a pickle) instead of weights.safetensors."""
    (model / "weights.safetensors").unlink()
    (model / "model.pt").write_bytes(pickle.dumps(_Payload(model.parent / PICKLE_MARKER)))
    return model / "weights.safetensors"


def truncated_weights(model: Path) -> Path:
    p = model / "weights.safetensors"
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    return p


def flipped_weight_byte(model: Path) -> Path:
    p = model / "weights.safetensors"
    raw = bytearray(p.read_bytes())
    raw[-50] ^= 0x55
    p.write_bytes(bytes(raw))
    return p


def config_not_json(model: Path) -> Path:
    p = model / "config.json"
    p.write_text(p.read_text()[:-20])
    return p


def config_code_class(model: Path) -> Path:
    """config.json naming a Python callable as the network class."""
    p = model / "config.json"
    config = json.loads(p.read_text())
    config["modules"]["noise_emulator_sdss"] = {"class": "os.system", "kwargs": {"command": "true"}}
    p.write_text(json.dumps(config))
    return p


#: name -> (damage(model_dir) -> path to name, text of the error)
MODEL_FAULTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "pickle_weights": (pickle_weights, "corrupted or truncated safetensors file"),
    "pickle_checkpoint_only": (pickle_checkpoint_only, "weights file not found"),
    "truncated_weights": (truncated_weights, "corrupted or truncated safetensors file"),
    "flipped_weight_byte": (flipped_weight_byte, "does not match"),
    "config_not_json": (config_not_json, "not valid JSON"),
    "config_code_class": (config_code_class, "unknown class 'os.system'"),
}
