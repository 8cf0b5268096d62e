"""A simulated survey pair: the same GalSim galaxies seen by two surveys, noise included.

This is the toolkit's embedded default data, its test data and the ground truth of the
evaluation.  :func:`simulate_survey_pair` writes what a real user has -- FITS cutouts with a
WCS in each survey's native units and a catalog -- plus the truth that no user has:

    OUT/
      catalog.ecsv             id, ra, dec (deg), paired, surveys
      <survey a>/<id>.fits     noisy cutouts, (bands, H, W) cubes, native units
      <survey b>/<id>.fits
      truth/<survey>/<id>.fits the same cutouts without noise (same names, same WCS)
      truth/noise.ecsv         id, survey, band, sigma (native units / pixel), psf_fwhm (arcsec)
      truth/galaxies.ecsv      the intrinsic parameters of every galaxy
      simulation.json          configuration, observing conditions, counts, version

The galaxy model (one per object, identical for both surveys of a pair) is
:mod:`survey2survey.data.galaxies`: bulge, disk and star-forming knots with their own
colours, r magnitude uniform in ``mag_range``, and with probability ``neighbour_fraction`` a
fainter companion 3.5-10" away (not in the catalog, as real neighbours are not).  With
``star_fraction`` > 0, field stars (:mod:`survey2survey.data.stars`, a Poisson number per
cutout, r 15-22, stellar-locus colours, not within 3" of the galaxy) are part of the same sky:
at the same position in both surveys, in the noise-free truth too, never in the catalog;
``truth/galaxies.ecsv`` then records ``n_stars`` and the brightest star's ``star_mag_r``.
:data:`POPULATIONS` names presets (``realistic``: r 14-21 with stars and varied bulges).

Each image is drawn on its survey's own grid (pixel scale, cutout size, bands) through a
per-image, per-band PSF (Kolmogorov by default, or Moffat with beta 3; Kolmogorov draws
about 30 % faster) whose FWHM is drawn around the
survey's typical seeing (the survey registry, :func:`survey_conditions`), and gets Gaussian sky noise with a per-image,
per-band sigma drawn log-normally around survey- and band-typical values (white for SDSS;
mildly correlated between neighbouring pixels for CFHT, as in resampled stacks; the
per-pixel sigma is the recorded one either way).  With ``source_noise`` (the default) the
sources add their own Poisson noise where the registry gives the survey's sky brightness: a
sky-limited image's sky sigma is the sky's Poisson noise, so a pixel of surface brightness S
gets S / S_sky times the sky's variance more (drawn from ``[seed, index, slot, 3]``, with the
sky noise's pixel correlation; the sky noise is the same with or without it).

Every object is reproducible from ``(seed, index)`` alone (:func:`simulate_object`): its
parameters come from ``numpy.random.default_rng([seed, index, 0])``, each survey's
observing conditions and noise from ``[seed, index, slot, 1]`` and ``[seed, index, slot, 2]``
(slot 1 = survey a, 2 = survey b), its knots from a :class:`galsim.BaseDeviate` seeded from
the first stream.  Objects ``0 .. n_paired-1`` are pairs, the next ``n_unpaired_a`` are seen
by survey a only, the last ``n_unpaired_b`` by survey b only.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from survey2survey import __version__
from survey2survey.errors import UsageError
from survey2survey.data.conditions import SurveyConditions, conditions_of, survey_conditions
from survey2survey.data.galaxies import (
    BAND_WAVELENGTH,
    CANONICAL_BANDS,
    Galaxy,
    band_key,
    band_profile,
    draw_galaxy,
    galaxy_components,
)
from survey2survey.data.stars import draw_stars
from survey2survey.physics.noise import correlated_noise, draw_source_noise
from survey2survey.surveys import Survey, find_survey, get_survey

__all__ = [
    "BAND_WAVELENGTH",
    "SurveyConditions",
    "survey_conditions",
    "SimulationConfig",
    "Galaxy",
    "Observation",
    "SimulatedObject",
    "SimulationResult",
    "object_id",
    "object_role",
    "draw_galaxy",
    "draw_observation",
    "render_galaxy",
    "draw_noise",
    "simulate_object",
    "simulate_survey_pair",
]

#: Sky grid: object ``index`` sits in its own cell of this size (arcsec) with a random
#: offset inside the cell, so that unrelated objects are never within a match radius of
#: each other and an object's position depends on ``(seed, index)`` only.
_CELL = 40.0
_CELL_JITTER = 10.0
_COLUMNS = 1000

#: Named galaxy populations: :class:`SimulationConfig` fields each one sets (``default``
#: is the dataclass's own defaults).  ``realistic`` is the r = 14-21 training population of
#: issue 14: field stars (0.5 a cutout), bulge Sersic n in {2, 3, 4}, rounder-to-flatter
#: bulges (q from 0.4) and disks capped at 4" so that an r = 14 galaxy still fits a 25" cutout
#: (about 3 half-light radii each side, ~96 % of an exponential disk's light).
POPULATIONS: dict[str, dict] = {
    "default": {},
    "realistic": {
        "mag_range": (14.0, 21.0),
        "star_fraction": 0.5,
        "bulge_n": (2.0, 3.0, 4.0),
        "bulge_q_min": 0.4,
        "max_hlr": 4.0,
    },
}

#: The fields added after simulations were first recorded, with their defaults: left out of
#: :meth:`SimulationConfig.to_dict` at those values, so that a default simulation's record
#: (``simulation.json``) is what it always was.
_LATER_FIELDS = {"star_fraction": 0.0, "bulge_n": (4.0,), "bulge_q_min": 0.6, "max_hlr": 6.0}
#: Fields whose value before they existed differs from today's default: a configuration without
#: them (an earlier simulation.json) is read with these values.
EARLIER_VALUES = {"source_noise": False}


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate.

    Parameters
    ----------
    n_paired : int
        Galaxies seen by both surveys.
    n_unpaired_a, n_unpaired_b : int
        Further galaxies seen by one survey only.
    survey_a, survey_b : str
        Registry names of the two surveys (default SDSS and CFHT).
    seed : int
        Master seed; object ``i`` depends on ``(seed, i)`` only.
    psf : {"moffat", "kolmogorov"}
        PSF profile (Kolmogorov is the atmosphere's and the faster to draw).
    mag_range : (float, float)
        Range of r-band AB magnitudes (uniform).
    neighbour_fraction : float
        Fraction of cutouts with a companion galaxy.
    knot_fraction : float
        Fraction of galaxies with star-forming knots (more likely in bluer galaxies).
    field_center : (float, float)
        (RA, Dec) in degrees of the first cell of the sky grid (default in CFHTLS W1); rows
        of 1,000 cells of 40" run east, further rows north.
    conditions : dict, optional
        Survey name -> :class:`SurveyConditions`; default :func:`survey_conditions` of
        each survey (its registry entry).
    star_fraction : float
        Mean number of field stars per cutout (Poisson; :mod:`survey2survey.data.stars`).
    bulge_n : tuple of float
        Sersic indices a bulge draws from (uniformly); ``(4.0,)`` = de Vaucouleurs for all.
    bulge_q_min : float
        Smallest bulge axis ratio.
    max_hlr : float
        Largest disk half-light radius (arcsec).
    source_noise : bool
        The sources' Poisson noise on top of the sky's (surveys with a ``sky_brightness``).
    """

    n_paired: int
    n_unpaired_a: int = 0
    n_unpaired_b: int = 0
    survey_a: str = "sdss"
    survey_b: str = "cfht"
    seed: int = 0
    psf: str = "kolmogorov"
    mag_range: tuple[float, float] = (16.0, 21.0)
    neighbour_fraction: float = 0.2
    knot_fraction: float = 0.5
    field_center: tuple[float, float] = (34.5, -7.0)
    conditions: dict[str, SurveyConditions] | None = None
    star_fraction: float = 0.0
    bulge_n: tuple[float, ...] = (4.0,)
    bulge_q_min: float = 0.6
    max_hlr: float = 6.0
    source_noise: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "bulge_n", tuple(float(n) for n in self.bulge_n))
        if self.source_noise and not any(getattr(find_survey(name), "sky_brightness", ())
                                         for name in (self.survey_a, self.survey_b)):
            # nothing to draw it from: recorded as the simulations before it (the same fingerprint)
            object.__setattr__(self, "source_noise", False)
        for name in ("n_paired", "n_unpaired_a", "n_unpaired_b", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise UsageError(f"simulation: {name} must be a non-negative integer, got {value!r}")
        if self.n_total == 0:
            raise UsageError("simulation: nothing to simulate (all counts are 0)")
        if self.psf not in ("moffat", "kolmogorov"):
            raise UsageError(f"simulation: psf must be 'moffat' or 'kolmogorov', got {self.psf!r}")
        lo, hi = self.mag_range
        if not (10.0 <= lo <= hi <= 30.0):
            raise UsageError(f"simulation: mag_range {self.mag_range} must satisfy 10 <= min <= max <= 30")
        for name in ("neighbour_fraction", "knot_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UsageError(f"simulation: {name} must be within [0, 1]")
        if not 0.0 <= self.star_fraction <= 50.0:
            raise UsageError(f"simulation: star_fraction (stars per cutout) must be within [0, 50], "
                             f"got {self.star_fraction}")
        if not self.bulge_n or not all(0.5 <= n <= 6.0 for n in self.bulge_n):
            raise UsageError(f"simulation: bulge_n must be Sersic indices within [0.5, 6], got {self.bulge_n}")
        if not 0.1 <= self.bulge_q_min <= 1.0 or not 0.3 <= self.max_hlr <= 20.0:
            raise UsageError("simulation: bulge_q_min must be within [0.1, 1] and max_hlr within [0.3, 20] arcsec")
        if abs(self.field_center[1]) > 60:
            raise UsageError("simulation: field_center dec must be within +-60 deg (the sky grid is flat in RA)")

    @property
    def n_total(self) -> int:
        return int(self.n_paired + self.n_unpaired_a + self.n_unpaired_b)

    def surveys(self) -> tuple[Survey, Survey]:
        a, b = get_survey(self.survey_a), get_survey(self.survey_b)
        if a.name == b.name:
            raise UsageError(f"simulation: the two surveys must differ (both are {a.name!r})")
        conditions_of(a, self.conditions)
        conditions_of(b, self.conditions)
        return a, b

    @classmethod
    def for_population(cls, population: str, **fields) -> "SimulationConfig":
        """A configuration of the named :data:`POPULATIONS` preset; ``fields`` override it."""
        if population not in POPULATIONS:
            raise UsageError(f"simulation: unknown population {population!r} (known: {', '.join(POPULATIONS)})")
        return cls(**(POPULATIONS[population] | fields))

    def to_dict(self) -> dict:
        d = asdict(self)
        for name, default in (_LATER_FIELDS | EARLIER_VALUES).items():
            if d[name] == default:  # written as before the field existed: the same fingerprint
                del d[name]
        d["conditions"] = None if self.conditions is None else {k: asdict(v) for k, v in self.conditions.items()}
        return d


def object_id(index: int) -> str:
    """File stem and catalog id of simulated object ``index`` (``sim0000042``)."""
    return f"sim{index:07d}"


def object_role(config: SimulationConfig, index: int) -> str:
    """``"pair"``, ``"a"`` or ``"b"``: which surveys see object ``index``."""
    if not 0 <= index < config.n_total:
        raise UsageError(f"simulation: object index {index} outside 0..{config.n_total - 1}")
    if index < config.n_paired:
        return "pair"
    if index < config.n_paired + config.n_unpaired_a:
        return "a"
    return "b"


# --- galaxies ---------------------------------------------------------------------------


def _sky_position(config: SimulationConfig, index: int, rng: np.random.Generator) -> tuple[float, float]:
    row, col = divmod(index, _COLUMNS)
    ra0, dec0 = config.field_center
    dx, dy = rng.uniform(-_CELL_JITTER, _CELL_JITTER, size=2)  # arcsec
    dec = dec0 + (row * _CELL + dy) / 3600.0
    ra = ra0 + (col * _CELL + dx) / 3600.0 / math.cos(math.radians(dec))
    return float(ra % 360.0), float(dec)


def _make_galaxy(config: SimulationConfig, index: int) -> Galaxy:
    rng = np.random.default_rng([config.seed, index, 0])
    ra, dec = _sky_position(config, index, rng)
    shape = dict(max_hlr=config.max_hlr, bulge_q_min=config.bulge_q_min)
    galaxy = draw_galaxy(rng, config.mag_range, config.knot_fraction, **shape)
    galaxy.ra, galaxy.dec = ra, dec
    if rng.uniform() < config.neighbour_fraction:
        # fainter than the target (0.5-3 mag), with the size that goes with its magnitude
        neighbour = draw_galaxy(rng, (galaxy.mag_r + 0.5, galaxy.mag_r + 3.0), config.knot_fraction, **shape)
        radius, angle = float(rng.uniform(3.5, 10.0)), float(rng.uniform(0.0, 2 * math.pi))
        galaxy.neighbour = neighbour
        galaxy.neighbour_offset = (radius * math.cos(angle), radius * math.sin(angle))
    # drawn last, so that stars and bulge indices leave the galaxy and neighbour above unchanged
    # (and draw nothing at their defaults: a default simulation is bit-identical)
    if config.star_fraction > 0:
        half_width = min(s.cutout_size * s.pixel_scale for s in config.surveys()) / 2  # the smaller footprint
        galaxy.stars = draw_stars(rng, config.star_fraction, half_width)
    if len(config.bulge_n) > 1:
        for g in (galaxy, galaxy.neighbour):
            if g is not None:
                g.bulge_n = float(rng.choice(config.bulge_n))
    elif config.bulge_n != (4.0,):
        galaxy.bulge_n = config.bulge_n[0]
        if galaxy.neighbour is not None:
            galaxy.neighbour.bulge_n = config.bulge_n[0]
    return galaxy


# --- observing conditions and rendering ------------------------------------------------------


@dataclass
class Observation:
    """One survey's view of one object: PSF and noise per band, cutout centre.

    Attributes
    ----------
    survey : str
    fwhm : tuple of float
        PSF FWHM per band (arcsec), survey band order.
    psf_g : tuple of (float, float)
        PSF reduced shear (g1, g2) per band.
    sigma : tuple of float
        Per-pixel sky-noise sigma per band (native units).
    offset : (float, float)
        (east, north) arcsec of the cutout centre from the galaxy (astrometric jitter).
    ra_center, dec_center : float
        Sky position of the cutout centre (deg): the WCS reference point.
    """

    survey: str
    fwhm: tuple[float, ...]
    psf_g: tuple[tuple[float, float], ...]
    sigma: tuple[float, ...]
    offset: tuple[float, float]
    ra_center: float
    dec_center: float


def draw_observation(rng: np.random.Generator, survey: Survey, cond: SurveyConditions, galaxy: Galaxy) -> Observation:
    """Draw the seeing, PSF shape, noise level and cutout centre of one image."""
    lam_r = BAND_WAVELENGTH["r"]
    lo, hi = cond.seeing_limits
    fwhm_r = float(np.clip(cond.seeing * math.exp(rng.normal(0.0, cond.seeing_scatter)), lo, hi))
    fwhm, psf_g, sigma = [], [], []
    image_level = rng.normal(0.0, cond.sky_scatter_image)  # moon, airmass, depth: all bands
    for band in survey.bands:
        # the registry's band-to-band ratio of typical seeing (Kolmogorov lambda**-0.2 when
        # it gives one FWHM); conditions without a registry PSF use that law too
        if survey.psf_fwhm:
            ratio = survey.seeing_ratio(band)
        else:
            ratio = (BAND_WAVELENGTH[band_key(band)] / lam_r) ** -0.2
        fwhm.append(fwhm_r * ratio * math.exp(rng.normal(0.0, cond.band_seeing_scatter)))
        g = cond.psf_shear * math.sqrt(rng.uniform())
        phi = rng.uniform(0.0, 2 * math.pi)
        psf_g.append((g * math.cos(phi), g * math.sin(phi)))
        sigma.append(cond.sky_sigma[band] * math.exp(image_level + rng.normal(0.0, cond.sky_scatter_band)))
    east, north = rng.normal(0.0, cond.astrometric_jitter, size=2)
    dec_c = galaxy.dec + north / 3600.0
    ra_c = (galaxy.ra + east / 3600.0 / math.cos(math.radians(galaxy.dec))) % 360.0
    return Observation(
        survey=survey.name,
        fwhm=tuple(float(f) for f in fwhm),
        psf_g=tuple((float(a), float(b)) for a, b in psf_g),
        sigma=tuple(float(s) for s in sigma),
        offset=(float(east), float(north)),
        ra_center=float(ra_c),
        dec_center=float(dec_c),
    )


def render_galaxy(
    galaxy: Galaxy, survey: Survey, obs: Observation, psf: str = "kolmogorov", beta_psf: float = 3.0, _parts=None
) -> np.ndarray:
    """Noise-free image of a galaxy (with its neighbour and field stars) as ``survey`` sees it.

    Parameters
    ----------
    galaxy : Galaxy
    survey : Survey
        Gives the grid (pixel scale, cutout size), the bands and the native unit.
    obs : Observation
        PSF per band and the cutout centre.
    psf : {"moffat", "kolmogorov"}
    beta_psf : float
        Moffat index.

    Returns
    -------
    ndarray, shape (bands, size, size), float32
        Pixel values in the survey's native units (``nanomaggies / flux_factor``), the
        cutout centred on ``(obs.ra_center, obs.dec_center)``, north up, east left.
    """
    import galsim

    size, scale = survey.cutout_size, survey.pixel_scale
    parts = _parts if _parts is not None else galaxy_components(galaxy)
    nb_parts = None
    if galaxy.neighbour is not None:
        nb_parts = galaxy_components(galaxy.neighbour)
    # image axes: +x = west, +y = north (arcsec); the galaxy sits at -offset from the centre
    gx, gy = obs.offset[0], -obs.offset[1]
    out = np.empty((survey.n_bands, size, size), np.float32)
    image = galsim.ImageF(size, size, scale=scale)
    to_native = 1.0 / survey.flux_factor
    flux_r = 10 ** (-0.4 * (galaxy.mag_r - 22.5)) * to_native
    for j, band in enumerate(survey.bands):
        k = CANONICAL_BANDS.index(band_key(band))
        terms = [t.shift(gx, gy) for t in band_profile(galaxy, parts, k, flux_r)]
        if galaxy.neighbour is not None:
            nb = galaxy.neighbour
            ne, nn = galaxy.neighbour_offset
            nb_flux_r = 10 ** (-0.4 * (nb.mag_r - 22.5)) * to_native
            terms += [t.shift(gx - ne, gy + nn) for t in band_profile(nb, nb_parts, k, nb_flux_r)]
        for star in galaxy.stars:  # a point source: the PSF alone once convolved
            star_flux = 10 ** (-0.4 * (star.magnitude(band) - 22.5)) * to_native
            terms.append(galsim.DeltaFunction(flux=star_flux).shift(gx - star.east, gy + star.north))
        g1, g2 = obs.psf_g[j]
        if psf == "moffat":
            psf_obj = galsim.Moffat(beta=beta_psf, fwhm=obs.fwhm[j])
        else:
            psf_obj = galsim.Kolmogorov(fwhm=obs.fwhm[j])
        psf_obj = psf_obj.shear(g1=g1, g2=g2)
        profile = galsim.Convolve(galsim.Add(terms), psf_obj)
        profile.drawImage(image=image)  # pixel-integrated flux in native units
        out[j] = image.array
    return out


def draw_noise(
    rng: np.random.Generator, shape: tuple[int, int, int], sigma: Sequence[float], correlation: float = 0.0
) -> np.ndarray:
    """Gaussian sky noise, (bands, H, W) float32, with per-band per-pixel sigma ``sigma``.

    ``correlation`` > 0 smooths white noise with the separable kernel ``[c, 1, c]``
    (:func:`survey2survey.physics.noise.correlated_noise`, normalised so that the pixel sigma
    is still ``sigma``; neighbours correlate by ``2c / (1 + 2c**2)`` per axis).
    """
    noise = correlated_noise(rng, shape[0], shape[1:], correlation)
    return (noise * np.asarray(sigma, dtype=np.float64)[:, None, None]).astype(np.float32)


@dataclass
class SimulatedObject:
    """One object re-rendered from ``(seed, index)``.

    Attributes
    ----------
    index : int
    id : str
    role : {"pair", "a", "b"}
    galaxy : Galaxy
    observations, truth, noise : dict
        Survey name -> :class:`Observation`, noise-free image and noise image
        ((bands, H, W) float32, native units).  ``truth + noise`` is the written cutout.
    """

    index: int
    id: str
    role: str
    galaxy: Galaxy
    observations: dict[str, Observation] = field(default_factory=dict)
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    noise: dict[str, np.ndarray] = field(default_factory=dict)

    def image(self, survey: str) -> np.ndarray:
        """The noisy cutout (float32 native units), exactly as written to FITS."""
        return self.truth[survey] + self.noise[survey]


def simulate_object(config: SimulationConfig, index: int) -> SimulatedObject:
    """Render object ``index`` of a simulation: its galaxy, every survey that sees it.

    Deterministic in ``(config, index)``: this is how :func:`simulate_survey_pair` makes
    every file, and how a test or an evaluation re-creates any one of them.
    """
    survey_a, survey_b = config.surveys()
    role = object_role(config, index)
    galaxy = _make_galaxy(config, index)
    obj = SimulatedObject(index=index, id=object_id(index), role=role, galaxy=galaxy)
    parts = galaxy_components(galaxy)  # shared by both surveys: same knots, same shapes
    for slot, survey in ((1, survey_a), (2, survey_b)):
        if (role == "a" and slot == 2) or (role == "b" and slot == 1):
            continue
        cond = conditions_of(survey, config.conditions)
        obs = draw_observation(np.random.default_rng([config.seed, index, slot, 1]), survey, cond, galaxy)
        truth = render_galaxy(galaxy, survey, obs, config.psf, cond.psf_beta, _parts=parts)
        noise = draw_noise(
            np.random.default_rng([config.seed, index, slot, 2]), truth.shape, obs.sigma, cond.noise_correlation
        )
        if config.source_noise and survey.sky_brightness:
            noise += draw_source_noise(np.random.default_rng([config.seed, index, slot, 3]), truth, survey,
                                       obs.sigma, cond.noise_correlation)
        obj.observations[survey.name] = obs
        obj.truth[survey.name] = truth
        obj.noise[survey.name] = noise
    return obj


# --- writing a simulated survey pair ----------------------------------------------------------


def _galaxy_row(obj: SimulatedObject, bands: Sequence[str], config: SimulationConfig) -> dict:
    g = obj.galaxy
    row = {
        "id": obj.id,
        "index": obj.index,
        "role": obj.role,
        "ra": g.ra,
        "dec": g.dec,
    }
    for band in bands:
        row[f"mag_{band}"] = g.magnitude(band)
    row.update(
        redness=g.redness,
        bulge_fraction=g.bulge_fraction,
        bulge_hlr=g.bulge_hlr,
        disk_hlr=g.disk_hlr,
        bulge_q=g.bulge_q,
        disk_q=g.disk_q,
        pa=(g.beta - 90.0) % 180.0,
        n_knots=g.n_knots,
        knot_fraction=g.knot_fraction,
        neighbour=g.neighbour is not None,
        neighbour_mag_r=g.neighbour.mag_r if g.neighbour is not None else float("nan"),
        neighbour_east=g.neighbour_offset[0],
        neighbour_north=g.neighbour_offset[1],
    )
    if config.bulge_n != (4.0,):  # columns of the options in use only: a default table is unchanged
        row["bulge_n"] = g.bulge_n
    if config.star_fraction > 0:
        row["n_stars"] = len(g.stars)
        row["star_mag_r"] = min((s.mag_r for s in g.stars), default=float("nan"))  # the brightest
    return row


def _simulate_chunk(config: SimulationConfig, out_dir: str, indices: Sequence[int]) -> dict:
    """Worker: render and write objects ``indices``; return their table rows."""
    from survey2survey.fits_io import Provenance, make_wcs, write_cutout

    survey_a, survey_b = config.surveys()
    surveys = {survey_a.name: survey_a, survey_b.name: survey_b}
    mag_bands = sorted({band_key(b) for s in surveys.values() for b in s.bands}, key=CANONICAL_BANDS.index)
    out = Path(out_dir)
    catalog, noise_rows, galaxy_rows = [], [], []
    for index in indices:
        obj = simulate_object(config, index)
        for name, obs in obj.observations.items():
            survey = surveys[name]
            size = survey.cutout_size
            wcs = make_wcs(obs.ra_center, obs.dec_center, survey.pixel_scale, (size, size))
            cards = [
                ("OBJECT", obj.id, "object name (catalog id)"),
                ("S2SSIMIX", index, "index of this object in the simulation"),
            ]
            provenance = Provenance(seed=config.seed, source_survey=name)
            history = [f"Simulated with GalSim by survey2survey {__version__} (seed {config.seed}, index {index})"]
            write_cutout(
                out / name / f"{obj.id}.fits", obj.image(name), survey, wcs=wcs,
                provenance=provenance, history=history, header_cards=cards,
            )
            truth_cards = list(cards) + [("S2STRUTH", True, "noise-free truth image")]
            for j, band in enumerate(survey.bands, start=1):
                truth_cards.append((f"SKYSIG{j}", obs.sigma[j - 1], f"sky noise sigma of band {band} (native)"))
                truth_cards.append((f"PSFFWHM{j}", obs.fwhm[j - 1], f"PSF FWHM of band {band} (arcsec)"))
            write_cutout(
                out / "truth" / name / f"{obj.id}.fits", obj.truth[name], survey, wcs=wcs,
                provenance=provenance, history=history + ["Noise-free: the image before sky noise"],
                header_cards=truth_cards,
            )
            for j, band in enumerate(survey.bands):
                noise_rows.append(
                    {"id": obj.id, "survey": name, "band": band, "sigma": obs.sigma[j], "psf_fwhm": obs.fwhm[j]}
                )
        seen_by = [s for s in (survey_a.name, survey_b.name) if s in obj.observations]
        catalog.append(
            {"id": obj.id, "ra": obj.galaxy.ra, "dec": obj.galaxy.dec, "paired": obj.role == "pair",
             "surveys": ",".join(seen_by)}
        )
        galaxy_rows.append(_galaxy_row(obj, mag_bands, config))
    return {"catalog": catalog, "noise": noise_rows, "galaxies": galaxy_rows}


@dataclass
class SimulationResult:
    """What :func:`simulate_survey_pair` wrote and how fast.

    Attributes
    ----------
    out : Path
    config : SimulationConfig
    n_files : int
        FITS files written (noisy and truth).
    seconds : float
        Wall-clock time of the rendering and writing.
    workers : int
    """

    out: Path
    config: SimulationConfig
    n_files: int
    seconds: float
    workers: int

    @property
    def objects_per_second(self) -> float:
        return self.config.n_total / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        c = self.config
        return (
            f"simulated {c.n_paired} pairs + {c.n_unpaired_a} {c.survey_a}-only + {c.n_unpaired_b} "
            f"{c.survey_b}-only galaxies ({self.n_files} FITS files) in {self.seconds:.1f} s "
            f"with {self.workers} worker(s): {self.objects_per_second:.1f} objects/s -> {self.out}"
        )


def _write_table(rows: list[dict], path: Path, units: dict[str, str], description: str) -> None:
    from astropy.table import Table

    table = Table(rows=rows) if rows else Table()
    for name, unit in units.items():
        if name in table.colnames:
            table[name].unit = unit
    table.meta["description"] = description
    table.meta["survey2survey"] = __version__
    table.write(path, format="ascii.ecsv", overwrite=True)


def simulate_survey_pair(
    config: SimulationConfig,
    out: str | Path,
    *,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    chunk_size: int | None = None,
) -> SimulationResult:
    """Render a simulated survey pair and write it as FITS cutouts, catalog and truth.

    Parameters
    ----------
    config : SimulationConfig
    out : path
        Directory to create (layout in the module docstring).  Built under a temporary
        name and renamed when complete.
    workers : int, optional
        Worker processes (default: the CPU cores available); 1 renders in this process.
    overwrite : bool
        Replace the simulation in an existing ``out`` (only its files: other files stay).
    progress : bool
        Show a progress bar on stderr.
    chunk_size : int, optional
        Objects per task sent to a worker.

    Returns
    -------
    SimulationResult

    Raises
    ------
    UsageError
        ``out`` exists without ``overwrite``, or the configuration is invalid.
    SurveyError
        A survey the simulator has no conditions or bands for.
    """
    from survey2survey.data import default_workers, run_tasks, staged_directory
    from survey2survey.data.output import simulation_entries

    survey_a, survey_b = config.surveys()  # validate before creating anything
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    n = config.n_total
    workers = min(workers, n)
    if chunk_size is None:
        chunk_size = max(1, min(32, math.ceil(n / (workers * 4))))
    chunks = [list(range(i, min(n, i + chunk_size))) for i in range(0, n, chunk_size)]
    out = Path(out)
    start = time.perf_counter()
    produces = {"simulation.json", "catalog.ecsv", "truth", "dataset", survey_a.name, survey_b.name}
    with staged_directory(out, overwrite, owned=simulation_entries, produces=produces) as tmp:
        tasks = [(config, str(tmp), chunk) for chunk in chunks]
        results = list(
            run_tasks(_simulate_chunk, tasks, [len(c) for c in chunks], workers,
                      progress=progress, label="simulating", unit="objects")
        )
        key = lambda row: row["id"]  # noqa: E731 - sort rows by object id, whatever the worker order
        catalog = sorted((r for res in results for r in res["catalog"]), key=key)
        noise = sorted((r for res in results for r in res["noise"]), key=lambda r: (r["id"], r["survey"]))
        galaxies = sorted((r for res in results for r in res["galaxies"]), key=key)
        _write_table(catalog, tmp / "catalog.ecsv", {"ra": "deg", "dec": "deg"},
                     "Simulated galaxies: id (file stem), sky position, seen by both surveys or one")
        (tmp / "truth").mkdir(exist_ok=True)
        _write_table(noise, tmp / "truth" / "noise.ecsv", {"psf_fwhm": "arcsec"},
                     "Per-image, per-band sky noise sigma (native units per pixel) and PSF FWHM")
        _write_table(galaxies, tmp / "truth" / "galaxies.ecsv",
                     {"ra": "deg", "dec": "deg", "bulge_hlr": "arcsec", "disk_hlr": "arcsec", "pa": "deg",
                      "neighbour_east": "arcsec", "neighbour_north": "arcsec"},
                     "Intrinsic galaxy parameters (AB magnitudes; pa east of north)")
        seconds = time.perf_counter() - start
        n_files = 2 * sum(len(s.split(",")) for s in (row["surveys"] for row in catalog))
        meta = {
            "format": "s2s-simulation/1",
            "version": __version__,
            "config": config.to_dict(),
            "surveys": {"a": survey_a.to_dict(), "b": survey_b.to_dict()},
            "conditions": {s.name: asdict(conditions_of(s, config.conditions)) for s in (survey_a, survey_b)},
            "counts": {"paired": config.n_paired, "unpaired_a": config.n_unpaired_a,
                       "unpaired_b": config.n_unpaired_b, "fits_files": n_files},
            "noise_model": "Gaussian sky noise (sigma per image and band in truth/noise.ecsv)"
            + ("; the sources' Poisson noise from the registry's sky brightness ("
               + ", ".join(s.name for s in (survey_a, survey_b) if s.sky_brightness) + ")"
               if config.source_noise else "; no source Poisson noise"),
            "seconds": round(seconds, 3),
            "workers": workers,
        }
        (tmp / "simulation.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return SimulationResult(out=out, config=config, n_files=n_files, seconds=seconds, workers=workers)
