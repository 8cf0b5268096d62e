"""Field stars of the simulated sky: point sources with colours on the stellar locus.

A star is part of the sky around a simulated galaxy, like its neighbour: its offset from the
galaxy, r magnitude and colours are drawn once from the object's random stream, so both
surveys of a pair see it at the same sky position with the same SED, each through its own
per-image PSF (:func:`survey2survey.data.simulate.render_galaxy`).

Colours follow a piecewise-linear approximation of the SDSS main-sequence stellar locus
(Covey et al. 2007, AJ 134, 2398; Ivezic et al. 2008, ApJ 684, 287), parametrised by
``g - r`` in [0.3, 1.4] (F to early M dwarfs); it is within about 0.1-0.2 mag of the
locus, enough for stars whose colours differ from the galaxies':

* ``u - g = min(0.95 + 1.8 (g - r - 0.3), 2.55)`` (the u - g of K/M dwarfs saturates);
* ``r - i = 0.10 + 0.40 (g - r - 0.3) + 1.5 max(g - r - 1.2, 0)`` (r - i climbs steeply
  for M dwarfs while g - r saturates near 1.4);
* ``i - z = 0.5 (r - i)``; ``z - y = 0.4 (i - z)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from survey2survey.data.galaxies import CANONICAL_BANDS, band_key

__all__ = ["Star", "STAR_MAG_RANGE", "STAR_EXCLUSION", "stellar_sed", "draw_stars"]

#: r-band AB magnitude range of field stars (uniform): some outshine the target galaxy.
STAR_MAG_RANGE = (15.0, 22.0)
#: No star within this distance (arcsec) of the target galaxy's centre.
STAR_EXCLUSION = 3.0
_G_R_RANGE = (0.3, 1.4)


@dataclass(frozen=True)
class Star:
    """One field star: offset (east, north) in arcsec from the galaxy, r magnitude, SED.

    ``sed`` holds magnitudes relative to r in u, g, r, i, z, y order (as a galaxy's SEDs).
    """

    east: float
    north: float
    mag_r: float
    sed: tuple[float, ...]

    def magnitude(self, band: str) -> float:
        """AB magnitude of the star in ``band``."""
        return float(self.mag_r + self.sed[CANONICAL_BANDS.index(band_key(band))])


def stellar_sed(g_r: float) -> tuple[float, ...]:
    """Magnitudes relative to r (u, g, r, i, z, y) of a main-sequence star of colour ``g - r``."""
    u_g = min(0.95 + 1.8 * (g_r - 0.3), 2.55)
    r_i = 0.10 + 0.40 * (g_r - 0.3) + 1.5 * max(g_r - 1.2, 0.0)
    i_z = 0.5 * r_i
    z_y = 0.4 * i_z
    i_r = -r_i
    z_r = i_r - i_z
    return (u_g + g_r, g_r, 0.0, i_r, z_r, z_r - z_y)


def draw_stars(rng: np.random.Generator, mean: float, half_width: float) -> tuple[Star, ...]:
    """Field stars around a galaxy: a Poisson number with mean ``mean``.

    Each is placed uniformly in the square of half-width ``half_width`` arcsec centred on
    the galaxy (the cutout footprint), outside :data:`STAR_EXCLUSION` of its centre, with r
    uniform in :data:`STAR_MAG_RANGE` and ``g - r`` uniform in [0.3, 1.4].
    """
    if mean <= 0:  # draws nothing from rng: a simulation without stars is unchanged
        return ()
    stars = []
    for _ in range(int(rng.poisson(mean))):
        while True:
            east, north = rng.uniform(-half_width, half_width, size=2)
            if math.hypot(east, north) >= STAR_EXCLUSION:
                break
        mag_r = float(rng.uniform(*STAR_MAG_RANGE))
        sed = stellar_sed(float(rng.uniform(*_G_R_RANGE)))
        stars.append(Star(east=float(east), north=float(north), mag_r=mag_r, sed=sed))
    return tuple(stars)
