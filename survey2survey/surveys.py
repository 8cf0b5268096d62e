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
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from survey2survey.errors import SurveyError

__all__ = [
    "Survey",
    "COMMON_ZERO_POINT",
    "get_survey",
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
_KNOWN = set(_REQUIRED) | {"flux_unit", "flux_factor", "description", "aliases", "telescope"}


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

    @property
    def n_bands(self) -> int:
        return len(self.bands)

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
        """JSON-ready definition; ``Survey.from_dict`` reads it back."""
        d = asdict(self)
        d["bands"] = list(self.bands)
        d["aliases"] = list(self.aliases)
        d["telescope"] = list(self.telescope)
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
        )


def _number(spec: dict[str, Any], key: str, where: str) -> float:
    value = spec[key]
    # TOML booleans are ints to Python: ``pixel_scale = true`` is a mistake, not 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SurveyError(f"{where}: {key!r} must be a number, got {value!r}")
    return float(value)


# --- the registry -------------------------------------------------------------------

_registry: dict[str, Survey] = {}
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

    A survey with the name of an existing one replaces it.  Returns the surveys read.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SurveyError(f"{path}: cannot read survey file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise SurveyError(f"{path}: not a TOML text file (not UTF-8: {exc.reason} at byte {exc.start})") from None
    surveys = _parse_toml(text, str(path))
    _ensure_defaults()
    for survey in surveys.values():
        register_survey(survey)
    return list(surveys.values())


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
    _registry.update(_parse_toml(text, "built-in surveys.toml"))
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
