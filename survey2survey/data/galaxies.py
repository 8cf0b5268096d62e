"""The simulator's galaxy model: bulge, disk and star-forming knots with their own colours.

One galaxy (identical for every survey that sees it):

* a truncated Sersic bulge (de Vaucouleurs n = 4 by default, or n drawn from a few fixed
  values such as 2, 3, 4; ``trunc`` = 6 half-light radii), an exponential disk and, in
  about half of the galaxies, star-forming knots (:class:`galsim.RandomKnots`) spread like
  the disk;
* r magnitude uniform in a range, disk half-light radius log-normal around
  ``2.8" x 10**(-0.1 (r - 16))`` (clipped to 0.3" - ``max_hlr``, 6" by default: at r = 14
  the median is 4.4" and a 25" cutout holds only about 2 radii of a 6" disk), bulge radius
  a fraction of it; disk axis ratio uniform in [0.2, 1], bulge in [``bulge_q_min``, 1];
* a "redness" ``t`` in [0, 1] sets the bulge-to-total ratio and the colours: the bulge has
  an early-type ugriz SED, the disk one between a star-forming and an early-type SED, the
  knots a blue one; the band images of a galaxy therefore differ in shape, not just flux.

:mod:`survey2survey.data.simulate` draws the observing conditions and renders it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from survey2survey.errors import SurveyError
from survey2survey.surveys import BAND_WAVELENGTH

__all__ = ["BAND_WAVELENGTH", "CANONICAL_BANDS", "Galaxy", "draw_galaxy", "band_key", "galaxy_components", "band_profile"]

CANONICAL_BANDS = tuple(BAND_WAVELENGTH)  # "ugrizy": the order of the SED arrays below

#: SEDs as magnitudes relative to r in ``CANONICAL_BANDS`` order (u-r, g-r, 0, i-r, z-r, y-r).
#: Early type: u-g 1.75, g-r 0.78, r-i 0.40, i-z 0.35 (low-redshift red sequence);
#: star forming: u-g 1.05, g-r 0.40, r-i 0.22, i-z 0.12; knots (HII regions): bluer still.
_SED_EARLY = np.array([2.53, 0.78, 0.0, -0.40, -0.75, -0.90])
_SED_LATE = np.array([1.45, 0.40, 0.0, -0.22, -0.34, -0.40])
_SED_KNOTS = np.array([0.90, 0.15, 0.0, -0.05, -0.05, -0.05])

#: Sersic truncation of the bulge in half-light radii.  A fixed ratio (and a few fixed
#: indices n) lets GalSim reuse one cached Sersic table per n; truncation keeps a bulge
#: convolved with a PSF at a few ms per draw instead of ~100 ms for an untruncated
#: de Vaucouleurs profile.
_BULGE_TRUNC = 6.0


def band_key(band: str) -> str:
    key = band.lower()
    if key not in BAND_WAVELENGTH:
        raise SurveyError(
            f"cannot simulate band {band!r}: the simulator knows {', '.join(CANONICAL_BANDS)} only"
        )
    return key


@dataclass
class Galaxy:
    """Intrinsic parameters of one simulated galaxy (the same for every survey).

    Angles: ``beta`` is GalSim's position angle of the major axis in degrees, from +x
    (west, as images are drawn north up, east left) towards +y (north); the astronomical
    position angle east of north is ``beta - 90``.  Sizes are half-light radii in arcsec.
    SEDs are magnitudes relative to r in u, g, r, i, z, y order.
    """

    ra: float
    dec: float
    mag_r: float
    redness: float
    bulge_fraction: float
    disk_hlr: float
    bulge_hlr: float
    disk_q: float
    bulge_q: float
    beta: float
    knot_fraction: float
    n_knots: int
    knot_seed: int
    sed_bulge: np.ndarray
    sed_disk: np.ndarray
    sed_knots: np.ndarray
    neighbour: "Galaxy | None" = None
    neighbour_offset: tuple[float, float] = (0.0, 0.0)  # (east, north) arcsec from the galaxy
    bulge_n: float = 4.0  # Sersic index of the bulge
    stars: tuple = ()  # field stars (survey2survey.data.stars.Star) in the cutout around it

    def magnitude(self, band: str) -> float:
        """Total AB magnitude of the galaxy (without neighbour) in ``band``."""
        k = CANONICAL_BANDS.index(band_key(band))
        flux = (
            self.bulge_fraction * 10 ** (-0.4 * self.sed_bulge[k])
            + (1 - self.bulge_fraction) * (1 - self.knot_fraction) * 10 ** (-0.4 * self.sed_disk[k])
            + (1 - self.bulge_fraction) * self.knot_fraction * 10 ** (-0.4 * self.sed_knots[k])
        )
        return float(self.mag_r - 2.5 * math.log10(flux))


def draw_galaxy(
    rng: np.random.Generator,
    mag_range: tuple[float, float],
    knot_fraction: float,
    max_hlr: float = 6.0,
    bulge_q_min: float = 0.6,
) -> Galaxy:
    """Draw the intrinsic parameters of one galaxy (position 0, 0; no neighbour, bulge n = 4).

    Parameters
    ----------
    rng : numpy.random.Generator
    mag_range : (float, float)
        r-band AB magnitude range.
    knot_fraction : float
        Mean fraction of galaxies with star-forming knots.
    max_hlr : float
        Largest disk half-light radius (arcsec).
    bulge_q_min : float
        Smallest bulge axis ratio (the bulge's q is uniform in [bulge_q_min, 1]).
    """
    mag_r = float(rng.uniform(*mag_range))
    redness = float(rng.beta(1.2, 1.2))
    bulge_fraction = float(np.clip(0.85 * redness + rng.normal(0.0, 0.12), 0.0, 1.0))
    # brighter galaxies are bigger: ~3" disks at r = 16, ~0.9" at r = 21
    disk_hlr = float(np.clip(2.8 * 10 ** (-0.1 * (mag_r - 16.0)) * math.exp(rng.normal(0.0, 0.3)), 0.3, max_hlr))
    if bulge_fraction > 0.7:  # elliptical: the "bulge" is the galaxy
        bulge_hlr = disk_hlr * float(rng.uniform(0.5, 0.9))
    else:
        bulge_hlr = disk_hlr * float(rng.uniform(0.2, 0.5))
    bulge_hlr = max(bulge_hlr, 0.15)
    disk_q = float(rng.uniform(0.2, 1.0))
    bulge_q = float(rng.uniform(bulge_q_min, 1.0))
    beta = float(rng.uniform(0.0, 180.0))
    # knots are star formation: mostly in blue disks
    has_knots = rng.uniform() < min(1.0, 2.0 * knot_fraction * (1.0 - redness))
    n_knots = int(rng.integers(5, 21)) if has_knots else 0
    knots = float(rng.uniform(0.1, 0.3)) if has_knots else 0.0
    colour_scatter = rng.normal(0.0, 0.05, size=(3, len(CANONICAL_BANDS)))
    colour_scatter[:, CANONICAL_BANDS.index("r")] = 0.0  # SEDs are relative to r
    sed_bulge = _SED_EARLY + colour_scatter[0]
    # disks of red galaxies are redder too, never fully early-type
    sed_disk = _SED_LATE + 0.6 * redness * (_SED_EARLY - _SED_LATE) + colour_scatter[1]
    sed_knots = _SED_KNOTS + colour_scatter[2]
    return Galaxy(
        ra=0.0,
        dec=0.0,
        mag_r=mag_r,
        redness=redness,
        bulge_fraction=bulge_fraction,
        disk_hlr=disk_hlr,
        bulge_hlr=bulge_hlr,
        disk_q=disk_q,
        bulge_q=bulge_q,
        beta=beta,
        knot_fraction=knots,
        n_knots=n_knots,
        knot_seed=int(rng.integers(1, 2**31 - 1)),
        sed_bulge=sed_bulge,
        sed_disk=sed_disk,
        sed_knots=sed_knots,
    )



def galaxy_components(galaxy: Galaxy):
    """Unit-flux GalSim profiles (bulge, disk, knots) of a galaxy, centred on it."""
    import galsim

    beta = galaxy.beta * galsim.degrees
    bulge = galsim.Sersic(n=galaxy.bulge_n, half_light_radius=galaxy.bulge_hlr, trunc=_BULGE_TRUNC * galaxy.bulge_hlr)
    bulge = bulge.shear(q=galaxy.bulge_q, beta=beta)
    disk = galsim.Exponential(half_light_radius=galaxy.disk_hlr).shear(q=galaxy.disk_q, beta=beta)
    knots = None
    if galaxy.n_knots > 0:
        knots = galsim.RandomKnots(
            galaxy.n_knots, half_light_radius=galaxy.disk_hlr, flux=1.0, rng=galsim.BaseDeviate(galaxy.knot_seed)
        ).shear(q=galaxy.disk_q, beta=beta)
    return bulge, disk, knots


def band_profile(galaxy: Galaxy, parts, band_k: int, flux_nmgy_r: float):
    """The galaxy in one band: its components with their band fluxes (nanomaggies)."""
    bulge, disk, knots = parts
    f_bulge = flux_nmgy_r * galaxy.bulge_fraction * 10 ** (-0.4 * galaxy.sed_bulge[band_k])
    f_disk_r = flux_nmgy_r * (1 - galaxy.bulge_fraction)
    terms = []
    if f_bulge > 0:
        terms.append(bulge * f_bulge)
    f_disk = f_disk_r * (1 - galaxy.knot_fraction) * 10 ** (-0.4 * galaxy.sed_disk[band_k])
    if f_disk > 0:
        terms.append(disk * f_disk)
    if knots is not None:
        terms.append(knots * (f_disk_r * galaxy.knot_fraction * 10 ** (-0.4 * galaxy.sed_knots[band_k])))
    return terms
