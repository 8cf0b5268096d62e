"""Survey registry and the paper's intensity transform.

Surveys are data: the built-in ones live in ``surveys.toml`` beside this module, and a
user adds their own in a TOML file with the same keys (``--surveys FILE``, the
``S2S_SURVEYS`` environment variable, or ``~/.config/survey2survey/surveys.toml``)::

    [hsc]
    bands = ["g", "r", "i", "z", "y"]
    pixel_scale = 0.168        # arcsec / pixel
    cutout_size = 152          # pixels
    flux_unit = "ADU (ZP 27)"
    zero_point = 27.0          # AB magnitude of one native unit
    # flux_factor = 0.0398     # optional: native -> nanomaggies; derived from zero_point if absent

Model space, where the networks work, is the common flux scale (nanomaggies) passed
through Lin & Fouchez (2021)'s stretch::

    I = sqrt(I0 + 1) - 1      for I0 >= 0
    I = -sqrt(-I0 + 1) + 1    for I0 <  0

which is ``sign(I0) * (sqrt(1 + |I0|) - 1)``, with the exact inverse
``I0 = I * (|I| + 2)``.
"""

from __future__ import annotations

import math
import os
import re
import sys
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from survey2survey.errors import SurveyError

__all__ = [
    "Survey",
    "SimulationSpread",
    "BAND_WAVELENGTH",
    "REFERENCE_WAVELENGTH",
    "COMMON_ZERO_POINT",
    "get_survey",
    "find_survey",
    "list_surveys",
    "load_survey_file",
    "register_survey",
    "stretch",
    "unstretch",
    "to_model_space",
    "to_native",
]

#: AB zero point of the common flux scale (nanomaggies).
COMMON_ZERO_POINT = 22.5

_REQUIRED = ("bands", "pixel_scale", "cutout_size", "zero_point")
_PHYSICS = {"psf_profile", "psf_beta", "psf_fwhm", "sky_sigma", "depth", "sky_brightness", "noise_correlation", "noise_model",
            "seeing_keywords", "simulation"}
_KNOWN = set(_REQUIRED) | {"flux_unit", "flux_factor", "description", "aliases", "telescope"} | _PHYSICS

#: Effective wavelength (nm) of the bands whose PSF can be scaled with wavelength and which
#: the simulator can draw (colours are interpolated in wavelength).
BAND_WAVELENGTH = {"u": 355.0, "g": 469.0, "r": 617.0, "i": 748.0, "z": 893.0, "y": 1000.0}
#: Wavelength (nm) at which a single ``psf_fwhm`` number is given (the r band).
REFERENCE_WAVELENGTH = BAND_WAVELENGTH["r"]
#: The FWHM keyword s2s itself writes (band ``n`` of a cube, 1-based), tried before a
#: survey's own ``seeing_keywords``.
S2S_SEEING_KEYWORD = "PSFFWHM{n}"


def band_wavelength(band: str) -> float:
    """Effective wavelength (nm) of ``band`` (case-insensitive: DES ``Y`` is ``y``)."""
    key = band.lower()
    if key not in BAND_WAVELENGTH:
        raise SurveyError(f"band {band!r} has no known wavelength (known: {', '.join(BAND_WAVELENGTH)})")
    return BAND_WAVELENGTH[key]


@dataclass(frozen=True)
class SimulationSpread:
    """How the simulator scatters one survey's conditions around its typical values.

    Parameters
    ----------
    seeing_scatter : float
        Log-normal scatter (natural log) of an image's seeing.
    band_seeing_scatter : float
        Extra log-normal scatter per band.
    seeing_limits : (float, float) or None
        The reference-band FWHM is clipped to this range (arcsec); default 0.6 and 1.9
        times the typical value.
    sky_scatter_image, sky_scatter_band : float
        Log-normal scatter of the noise level shared by the bands of an image, and per band.
    astrometric_jitter : float
        Sigma (arcsec, per axis) of the offset between a cutout's centre and the galaxy.
    psf_shear : float
        Largest reduced shear |g| of the PSF.
    """

    seeing_scatter: float = 0.15
    band_seeing_scatter: float = 0.1
    seeing_limits: tuple[float, float] | None = None
    sky_scatter_image: float = 0.15
    sky_scatter_band: float = 0.2
    astrometric_jitter: float = 0.05
    psf_shear: float = 0.03


@dataclass(frozen=True)
class Survey:
    """One imaging survey as the toolkit sees it.

    Parameters
    ----------
    name : str
        Lower-case registry name (``"sdss"``).
    bands : tuple of str
        Band names in the survey's order; every array is (bands, H, W) in this order.
    pixel_scale : float
        Arcsec per pixel.
    cutout_size : int
        Side of a square cutout in pixels (the size the networks are built for).
    zero_point : float
        AB magnitude of one native pixel unit.
    flux_factor : float
        Multiplies native values to give nanomaggies (AB zero point 22.5).
    flux_unit : str
        Human-readable native unit, written as BUNIT.
    """

    name: str
    bands: tuple[str, ...]
    pixel_scale: float
    cutout_size: int
    zero_point: float
    flux_factor: float
    flux_unit: str = ""
    description: str = ""
    aliases: tuple[str, ...] = ()
    telescope: tuple[str, ...] = ()
    # physics (optional): per-band tuples in band order, () when not given
    psf_profile: str = ""
    psf_beta: float = 3.0
    psf_fwhm: tuple[float, ...] = ()
    psf_fwhm_ref: float = 0.0
    sky_sigma: tuple[float, ...] = ()
    depth: tuple[float, ...] = ()
    sky_brightness: tuple[float, ...] = ()
    noise_correlation: float = 0.0
    noise_model: str = ""
    seeing_keywords: tuple[str, ...] = ()
    simulation: SimulationSpread | None = None

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def has_physics(self) -> bool:
        """True when the registry gives a PSF and a noise level for every band."""
        return bool(self.psf_profile and self.psf_fwhm and (self.sky_sigma or self.depth))

    def _need(self, what: str, values: tuple) -> None:
        if not values:
            raise SurveyError(
                f"survey {self.name!r} has no {what} in the registry (add it to its TOML table; see docs/physics.md)"
            )

    def typical_fwhm(self, band: str) -> float:
        """Typical (median) PSF FWHM of ``band`` in arcsec."""
        self._need("psf_fwhm", self.psf_fwhm)
        return self.psf_fwhm[self.band_index(band)]

    def reference_fwhm(self) -> float:
        """Typical FWHM at the reference band: the single ``psf_fwhm`` number, else the
        table's value in the band nearest 617 nm (the simulator draws the seeing there)."""
        self._need("psf_fwhm", self.psf_fwhm)
        if self.psf_fwhm_ref:
            return self.psf_fwhm_ref
        return self.psf_fwhm[self._reference_index()]

    def _reference_index(self) -> int:
        distance = [abs(math.log(band_wavelength(b) / REFERENCE_WAVELENGTH)) for b in self.bands]
        return int(np.argmin(distance))

    def seeing_ratio(self, band: str) -> float:
        """``FWHM(band) / FWHM(reference)`` of the typical PSF (the simulator's band scaling)."""
        self._need("psf_fwhm", self.psf_fwhm)
        if self.psf_fwhm_ref:
            return (band_wavelength(band) / REFERENCE_WAVELENGTH) ** -0.2
        return self.typical_fwhm(band) / self.psf_fwhm[self._reference_index()]

    def typical_sky_sigma(self, band: str) -> float:
        """Typical per-pixel sky sigma of ``band`` in native units.

        ``sky_sigma`` when listed, else from the 5-sigma point-source ``depth``:
        ``sigma = F5 / (5 sqrt(NEA))`` with NEA the noise-equivalent area (pixels) of the
        typical PSF drawn on the survey's pixels, for noise correlated as
        ``noise_correlation`` says (correlated noise adds more variance to a PSF-weighted
        flux, so the same depth means less noise per pixel).
        """
        j = self.band_index(band)
        if self.sky_sigma:
            return self.sky_sigma[j]
        self._need("sky_sigma or depth", self.depth)
        from survey2survey.physics.psf import noise_equivalent_area

        f5 = 10.0 ** (-0.4 * (self.depth[j] - self.zero_point))  # native units
        nea = noise_equivalent_area(self.psf_profile, self.typical_fwhm(band), self.pixel_scale, self.psf_beta,
                                    self.noise_correlation or 0.0)
        return f5 / (5.0 * math.sqrt(nea))

    def sky_surface_flux(self, band: str) -> float:
        """The typical sky's surface brightness of ``band`` in nanomaggies per arcsec^2, 0 when unknown.

        Sky-limited images: the sky's own Poisson noise is the registry's sky sigma, so a source
        of surface brightness S adds S / (this) times the sky's variance (the source's Poisson
        noise; :func:`survey2survey.physics.noise.source_variance_ratio`).
        """
        if not self.sky_brightness:
            return 0.0
        return 10.0 ** (-0.4 * (self.sky_brightness[self.band_index(band)] - COMMON_ZERO_POINT))

    def seeing_keyword_names(self, band: str, plane: int | None = None) -> list[str]:
        """Header keywords that may give ``band``'s PSF FWHM (arcsec), in order of trust.

        ``plane`` is the band's 1-based plane in the file (default its place in the survey).
        """
        n = self.band_index(band) + 1 if plane is None else int(plane)
        names = [S2S_SEEING_KEYWORD] + [k for k in self.seeing_keywords if k != S2S_SEEING_KEYWORD]
        return [k.replace("{n}", str(n)).replace("{band}", band).upper() for k in names]

    @property
    def field_of_view(self) -> float:
        """Side of a cutout in arcsec."""
        return self.pixel_scale * self.cutout_size

    def band_index(self, band: str) -> int:
        """Index of ``band`` in the survey's order (case-sensitive first, then not)."""
        if band in self.bands:
            return self.bands.index(band)
        lowered = [b.lower() for b in self.bands]
        if band.lower() in lowered and lowered.count(band.lower()) == 1:
            return lowered.index(band.lower())
        raise SurveyError(f"survey {self.name!r} has no band {band!r} (bands: {','.join(self.bands)})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready definition; ``Survey.from_dict`` reads it back.

        Physics keys appear only when set, in the TOML form (per-band tables).
        """
        d = asdict(self)
        d["bands"] = list(self.bands)
        d["aliases"] = list(self.aliases)
        d["telescope"] = list(self.telescope)
        for key in _PHYSICS | {"psf_fwhm_ref"}:
            d.pop(key, None)
        if self.psf_profile:
            d["psf_profile"] = self.psf_profile
            if self.psf_profile == "moffat":
                d["psf_beta"] = self.psf_beta
        if self.psf_fwhm:
            d["psf_fwhm"] = self.psf_fwhm_ref or dict(zip(self.bands, self.psf_fwhm))
        for key in ("sky_sigma", "depth", "sky_brightness"):
            if getattr(self, key):
                d[key] = dict(zip(self.bands, getattr(self, key)))
        if self.psf_profile or self.noise_correlation:
            d["noise_correlation"] = self.noise_correlation
        if self.noise_model:
            d["noise_model"] = self.noise_model
        if self.seeing_keywords:
            d["seeing_keywords"] = list(self.seeing_keywords)
        if self.simulation is not None:
            sim = asdict(self.simulation)
            sim["seeing_limits"] = list(sim["seeing_limits"]) if sim["seeing_limits"] else None
            d["simulation"] = {k: v for k, v in sim.items() if v is not None}
        return d

    @classmethod
    def from_dict(cls, name: str, spec: dict[str, Any], source: str = "<dict>") -> "Survey":
        """Validate one survey definition (a TOML table or ``to_dict()`` output)."""
        where = f"{source}: survey {name!r}"
        if not name.strip():
            raise SurveyError(f"{where}: a survey needs a non-empty name")
        if not isinstance(spec, dict):
            raise SurveyError(f"{where}: expected a table of keys, got {type(spec).__name__}")
        missing = [k for k in _REQUIRED if k not in spec]
        if missing:
            raise SurveyError(f"{where}: missing key(s) {', '.join(missing)}")
        unknown = sorted(set(spec) - _KNOWN - {"name"})
        if unknown:
            raise SurveyError(f"{where}: unknown key(s) {', '.join(unknown)}")
        bands = spec["bands"]
        if isinstance(bands, str):
            bands = [b.strip() for b in bands.split(",") if b.strip()]
        if not isinstance(bands, list) or not bands or not all(isinstance(b, str) and b for b in bands):
            raise SurveyError(f"{where}: 'bands' must be a non-empty list of names")
        if len(set(bands)) != len(bands):
            raise SurveyError(f"{where}: 'bands' has duplicates")
        if any(re.search(r"[,\s]", b) for b in bands):
            # FITS files list bands in one comma/space-separated BANDS keyword
            raise SurveyError(f"{where}: band names cannot contain commas or spaces ({bands})")
        pixel_scale = _number(spec, "pixel_scale", where)
        cutout_size = spec["cutout_size"]
        zero_point = _number(spec, "zero_point", where)
        if not (pixel_scale > 0 and math.isfinite(pixel_scale)):
            raise SurveyError(f"{where}: 'pixel_scale' must be a positive number of arcsec")
        if isinstance(cutout_size, bool) or not isinstance(cutout_size, int) or cutout_size < 8:
            raise SurveyError(f"{where}: 'cutout_size' must be an integer number of pixels >= 8")
        if not math.isfinite(zero_point):
            raise SurveyError(f"{where}: 'zero_point' must be finite")
        default_factor = 10.0 ** ((COMMON_ZERO_POINT - zero_point) / 2.5)
        flux_factor = _number(spec, "flux_factor", where) if "flux_factor" in spec else default_factor
        if not (flux_factor > 0 and math.isfinite(flux_factor)):
            raise SurveyError(f"{where}: 'flux_factor' must be positive")

        def _names(key: str) -> tuple[str, ...]:
            value = spec.get(key, ())
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise SurveyError(f"{where}: {key!r} must be a list of strings")
            return tuple(value)

        return cls(
            name=name.lower(),
            bands=tuple(bands),
            pixel_scale=pixel_scale,
            cutout_size=int(cutout_size),
            zero_point=zero_point,
            flux_factor=flux_factor,
            flux_unit=str(spec.get("flux_unit", "")),
            description=str(spec.get("description", "")),
            aliases=tuple(a.lower() for a in _names("aliases")),
            telescope=_names("telescope"),
            seeing_keywords=_names("seeing_keywords"),
            **_parse_physics(spec, tuple(bands), where),
        )


def _per_band(spec: dict[str, Any], key: str, bands: tuple[str, ...], where: str, positive: bool = True):
    """A ``{band: number}`` table -> tuple in band order (() when absent)."""
    if key not in spec:
        return ()
    table = spec[key]
    if not isinstance(table, dict):
        raise SurveyError(f"{where}: {key!r} must be a table {{band = number}}, got {table!r}")
    lowered = {str(k).lower(): k for k in table}
    values = []
    for band in bands:
        k = band if band in table else lowered.get(band.lower())
        if k is None:
            raise SurveyError(f"{where}: {key!r} has no value for band {band!r}")
        value = _number(table, k, f"{where}: {key}")
        if not math.isfinite(value) or (positive and value <= 0):
            raise SurveyError(f"{where}: {key}.{band} must be a positive number, got {value!r}")
        values.append(value)
    # bands beyond the survey's are ignored: a model's recorded survey may keep a subset of
    # the bands with the registry's tables
    return tuple(values)


def _parse_physics(spec: dict[str, Any], bands: tuple[str, ...], where: str) -> dict[str, Any]:
    """Validate the optional physics keys of one survey table (see surveys.toml)."""
    out: dict[str, Any] = {}
    profile = str(spec.get("psf_profile", "")).lower()
    if profile not in ("", "kolmogorov", "moffat"):
        raise SurveyError(f"{where}: 'psf_profile' must be 'kolmogorov' or 'moffat', got {profile!r}")
    out["psf_profile"] = profile
    if "psf_beta" in spec:
        out["psf_beta"] = _number(spec, "psf_beta", where)
        if not out["psf_beta"] > 1.1:
            raise SurveyError(f"{where}: 'psf_beta' (Moffat index) must be > 1.1")
    fwhm = spec.get("psf_fwhm")
    if isinstance(fwhm, dict):
        out["psf_fwhm"] = _per_band(spec, "psf_fwhm", bands, where)
    elif fwhm is not None:
        ref = _number(spec, "psf_fwhm", where)
        if not (ref > 0 and math.isfinite(ref)):
            raise SurveyError(f"{where}: 'psf_fwhm' must be a positive number of arcsec")
        try:
            ratios = [(band_wavelength(b) / REFERENCE_WAVELENGTH) ** -0.2 for b in bands]
        except SurveyError as exc:
            raise SurveyError(f"{where}: one 'psf_fwhm' number needs known bands ({exc}); give a table") from None
        out["psf_fwhm_ref"] = ref
        out["psf_fwhm"] = tuple(ref * r for r in ratios)
    if out.get("psf_fwhm") and not profile:
        raise SurveyError(f"{where}: 'psf_fwhm' needs 'psf_profile' ('kolmogorov' or 'moffat')")
    out["sky_sigma"] = _per_band(spec, "sky_sigma", bands, where)
    out["depth"] = _per_band(spec, "depth", bands, where)
    out["sky_brightness"] = _per_band(spec, "sky_brightness", bands, where)
    for band, mag in zip(bands, out["sky_brightness"]):
        if not 10.0 <= mag <= 35.0:  # counts or ADU given for magnitudes would make nonsense noise
            raise SurveyError(f"{where}: sky_brightness.{band} = {mag:g} is not a sky surface brightness in "
                              "AB mag/arcsec^2 (10-35; a dark sky is about 18-23)")
    if "noise_correlation" in spec:
        c = _number(spec, "noise_correlation", where)
        if not 0.0 <= c <= 1.0:
            raise SurveyError(f"{where}: 'noise_correlation' must be within [0, 1]")
        out["noise_correlation"] = c
    if "noise_model" in spec:
        if not isinstance(spec["noise_model"], str):
            raise SurveyError(f"{where}: 'noise_model' must be a file name")
        out["noise_model"] = spec["noise_model"]
    if "simulation" in spec:
        out["simulation"] = _parse_spread(spec["simulation"], where)
    return out


def _parse_spread(table: Any, where: str) -> SimulationSpread:
    if not isinstance(table, dict):
        raise SurveyError(f"{where}: 'simulation' must be a table")
    names = {f.name for f in fields(SimulationSpread)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise SurveyError(f"{where}: unknown simulation key(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key == "seeing_limits":
            if value is None:
                continue
            if not (isinstance(value, (list, tuple)) and len(value) == 2):
                raise SurveyError(f"{where}: simulation.seeing_limits must be [min, max] arcsec")
            lo, hi = (_number({"v": v}, "v", f"{where}: simulation.seeing_limits") for v in value)
            if not 0 < lo <= hi:
                raise SurveyError(f"{where}: simulation.seeing_limits must satisfy 0 < min <= max")
            kwargs[key] = (lo, hi)
        else:
            kwargs[key] = _number(table, key, f"{where}: simulation")
            if kwargs[key] < 0:
                raise SurveyError(f"{where}: simulation.{key} must be >= 0")
    return SimulationSpread(**kwargs)


def _number(spec: dict[str, Any], key: str, where: str) -> float:
    value = spec[key]
    # TOML booleans are ints to Python: ``pixel_scale = true`` is a mistake, not 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SurveyError(f"{where}: {key!r} must be a number, got {value!r}")
    return float(value)


# --- the registry -------------------------------------------------------------------

_registry: dict[str, Survey] = {}
_builtin: dict[str, Survey] = {}
_loaded_defaults = False


def _parse_toml(text: str, source: str) -> dict[str, Survey]:
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SurveyError(f"{source}: not valid TOML ({exc})") from None
    if not tables:
        raise SurveyError(f"{source}: no survey tables found")
    return {name.lower(): Survey.from_dict(name, spec, source) for name, spec in tables.items()}


def load_survey_file(path: str | Path) -> list[Survey]:
    """Read a user TOML file of survey tables and add them to the registry.

    A survey with the name of an existing one replaces it; one that changes a built-in
    survey, or whose name or alias is already another survey's alias, is also reported
    on one ``s2s: warning:`` line on stderr (a typo there silently changes what a name
    means).  Returns the surveys read.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SurveyError(f"{path}: cannot read survey file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise SurveyError(f"{path}: not a TOML text file (not UTF-8: {exc.reason} at byte {exc.start})") from None
    surveys = _parse_toml(text, str(path))
    for key, survey in surveys.items():
        if survey.noise_model and not Path(survey.noise_model).is_absolute():
            # a noise model file is named relative to the TOML file that names it
            surveys[key] = replace(survey, noise_model=str(path.parent / survey.noise_model))
    _ensure_defaults()
    for survey in surveys.values():
        for problem in _clashes(survey):
            print(f"s2s: warning: {path}: survey {survey.name!r} {problem}", file=sys.stderr, flush=True)
        register_survey(survey)
    return list(surveys.values())


def _clashes(survey: Survey) -> list[str]:
    """What registering ``survey`` would change about names already known."""
    problems = []
    builtin = _builtin.get(survey.name)
    if builtin is not None and builtin != survey:
        problems.append("redefines the built-in survey of that name (this file's definition is used)")
    for other in _registry.values():
        if other.name == survey.name:
            continue
        if survey.name in other.aliases:
            problems.append(f"takes the name of an alias of survey {other.name!r} (the name now means this survey)")
        for alias in survey.aliases:
            if alias == other.name or alias in other.aliases:
                problems.append(f"alias {alias!r} already names survey {other.name!r} (it still means {other.name!r})")
    return problems


def register_survey(survey: Survey) -> None:
    """Add (or replace) one survey in the registry for this process."""
    _ensure_defaults()
    _registry[survey.name] = survey


def _ensure_defaults() -> None:
    global _loaded_defaults
    if _loaded_defaults:
        return
    _loaded_defaults = True
    text = resources.files("survey2survey").joinpath("surveys.toml").read_text(encoding="utf-8")
    _builtin.update(_parse_toml(text, "built-in surveys.toml"))
    _registry.update(_builtin)
    user_files = []
    env = os.environ.get("S2S_SURVEYS")
    if env:
        user_files += [p for p in env.split(os.pathsep) if p]
    config_home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    default_user = config_home / "survey2survey" / "surveys.toml"
    if default_user.is_file():
        user_files.append(str(default_user))
    for user_file in user_files:
        load_survey_file(user_file)


def list_surveys() -> list[Survey]:
    """Every registered survey, in registration order."""
    _ensure_defaults()
    return list(_registry.values())


def find_survey(name: str) -> Survey | None:
    """The registry's survey of that name or alias, or None when there is none.

    A malformed survey file (``--surveys``, ``$S2S_SURVEYS``) still raises: only "no such
    survey" gives None.
    """
    _ensure_defaults()
    try:
        return get_survey(name)
    except SurveyError:
        return None


def get_survey(name: str | Survey) -> Survey:
    """Look a survey up by name or alias (case-insensitive)."""
    if isinstance(name, Survey):
        return name
    _ensure_defaults()
    key = str(name).strip().lower()
    if key in _registry:
        return _registry[key]
    for survey in _registry.values():
        if key in survey.aliases:
            return survey
    known = ", ".join(sorted(_registry))
    raise SurveyError(f"unknown survey {name!r} (known: {known}; add one with --surveys FILE)")


# --- intensity transform ------------------------------------------------------------


def stretch(flux: np.ndarray) -> np.ndarray:
    """Lin & Fouchez (2021) stretch, ``sign(x) (sqrt(1 + |x|) - 1)``.

    Written as ``x / (sqrt(1 + |x|) + 1)``, which is the same function without the
    cancellation near zero.  Works on numpy arrays and torch tensors alike.
    """
    return flux / ((1 + abs(flux)) ** 0.5 + 1)


def unstretch(intensity: np.ndarray) -> np.ndarray:
    """Exact inverse of :func:`stretch`: ``I (|I| + 2)``."""
    return intensity * (abs(intensity) + 2)


def to_model_space(native: np.ndarray, survey: Survey | str) -> np.ndarray:
    """Native pixel values of ``survey`` -> model space (common flux scale, stretched).

    Computed in float64 and returned as float32.
    """
    survey = get_survey(survey)
    flux = np.asarray(native, dtype=np.float64) * survey.flux_factor
    return stretch(flux).astype(np.float32)


def to_native(model: np.ndarray, survey: Survey | str) -> np.ndarray:
    """Model-space values -> native pixel values of ``survey`` (float32)."""
    survey = get_survey(survey)
    flux = unstretch(np.asarray(model, dtype=np.float64))
    return (flux / survey.flux_factor).astype(np.float32)
