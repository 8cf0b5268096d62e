"""Sky positions of cutouts and the cross-match that pairs two surveys' cutouts.

Lin & Fouchez (2021) cross-matched their SDSS and CFHT cutouts by RA and Dec and found
5,057 pairs.  :func:`crossmatch` does the same with :class:`astropy.coordinates.SkyCoord`:
a pair is two cutouts that are each other's nearest neighbour in the other survey and lie
within the match radius (default 1 arcsec).  Anything else is unpaired, including a
cutout whose nearest neighbour prefers another cutout.

Positions come from a user's catalog (:func:`read_catalog`: CSV, ECSV or a FITS table with
an id and RA/Dec in degrees; the id is the cutout's object id, i.e. its file name without
band and suffix) or from each cutout's WCS centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from survey2survey.errors import UsageError

__all__ = ["Match", "crossmatch", "read_catalog", "ID_COLUMNS", "RA_COLUMNS", "DEC_COLUMNS"]

#: Accepted column names, compared case-insensitively, first match wins.
ID_COLUMNS = ("id", "object_id", "objid", "name", "object", "objname")
RA_COLUMNS = ("ra", "ra_deg", "raj2000", "alpha_j2000", "ra_icrs")
DEC_COLUMNS = ("dec", "dec_deg", "decj2000", "dej2000", "delta_j2000", "dec_icrs")


@dataclass
class Match:
    """Result of :func:`crossmatch`.

    Attributes
    ----------
    index_a, index_b : ndarray of int
        Row ``k`` pairs entry ``index_a[k]`` of the first list with ``index_b[k]`` of the
        second; sorted by ``index_a``.
    separation : ndarray of float
        Separation of each pair in arcsec.
    """

    index_a: np.ndarray
    index_b: np.ndarray
    separation: np.ndarray

    def __len__(self) -> int:
        return len(self.index_a)


def crossmatch(
    ra_a: np.ndarray,
    dec_a: np.ndarray,
    ra_b: np.ndarray,
    dec_b: np.ndarray,
    radius: float = 1.0,
) -> Match:
    """One-to-one sky cross-match: mutual nearest neighbours closer than ``radius``.

    Parameters
    ----------
    ra_a, dec_a : array_like
        Positions of the first list (deg).
    ra_b, dec_b : array_like
        Positions of the second list (deg).
    radius : float
        Largest separation of a pair (arcsec).  A separation equal to the radius matches.

    Returns
    -------
    Match
    """
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    if not radius > 0:
        raise UsageError(f"--match-radius must be positive, got {radius}")
    ra_a, dec_a = np.asarray(ra_a, float), np.asarray(dec_a, float)
    ra_b, dec_b = np.asarray(ra_b, float), np.asarray(dec_b, float)
    empty = Match(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, float))
    if len(ra_a) == 0 or len(ra_b) == 0:
        return empty
    a = SkyCoord(ra=ra_a * u.deg, dec=dec_a * u.deg)
    b = SkyCoord(ra=ra_b * u.deg, dec=dec_b * u.deg)
    # nearest b for every a, nearest a for every b (KD-trees on the unit sphere)
    nearest_b, sep_ab, _ = a.match_to_catalog_sky(b)
    nearest_a, _, _ = b.match_to_catalog_sky(a)
    sep = sep_ab.to_value(u.arcsec)
    index_a = np.arange(len(a))
    mutual = nearest_a[nearest_b] == index_a
    keep = mutual & (sep <= radius)
    return Match(index_a[keep].astype(np.int64), np.asarray(nearest_b)[keep].astype(np.int64), sep[keep])


def _find_column(colnames: list[str], candidates: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in colnames}
    for cand in candidates:
        if cand in lowered:
            return lowered[cand]
    return None


def read_catalog(path: str | Path) -> dict[str, tuple[float, float]]:
    """Read a position catalog: object id -> (RA, Dec) in degrees.

    Parameters
    ----------
    path : path
        CSV, ECSV or FITS table with an id column (``id``, ``object_id``, ``objid``,
        ``name``, ...) and RA/Dec columns (``ra``/``dec``, ``ra_deg``/``dec_deg``,
        ``RAJ2000``/``DEJ2000``, ...), in degrees unless the column carries a unit.

    Raises
    ------
    UsageError
        Unreadable file, missing column, non-numeric or out-of-range coordinates, duplicate
        ids (one line naming the file and the problem).
    """
    from astropy import units as u
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: catalog not found")
    name = path.name.lower()
    fmt = None
    if name.endswith(".ecsv"):
        fmt = "ascii.ecsv"
    elif name.endswith((".csv", ".csv.gz")):
        fmt = "ascii.csv"
    elif name.endswith((".fits", ".fit", ".fits.gz", ".fts")):
        fmt = "fits"
    try:
        table = Table.read(path, format=fmt) if fmt else Table.read(path)
    except Exception as exc:  # astropy raises many types for unreadable tables
        raise UsageError(f"{path}: cannot read catalog ({type(exc).__name__}: {exc})") from None
    columns = list(table.colnames)
    found = {}
    for what, candidates in (("id", ID_COLUMNS), ("ra", RA_COLUMNS), ("dec", DEC_COLUMNS)):
        col = _find_column(columns, candidates)
        if col is None:
            raise UsageError(
                f"{path}: no {what} column (looked for {', '.join(candidates)}; found {', '.join(columns)})"
            )
        found[what] = col

    def _degrees(col: str) -> np.ndarray:
        column = table[col]
        try:
            if column.unit is not None:
                values = (np.asarray(column, float) * column.unit).to_value(u.deg)
            else:
                values = np.asarray(column, float)
        except (TypeError, ValueError, u.UnitConversionError) as exc:
            raise UsageError(f"{path}: column {col!r} is not an angle in degrees ({exc})") from None
        return values

    ra, dec = _degrees(found["ra"]), _degrees(found["dec"])
    bad = ~np.isfinite(ra) | ~np.isfinite(dec) | (np.abs(dec) > 90)
    if bad.any():
        row = int(np.argmax(bad))
        raise UsageError(f"{path}: row {row + 1} has an invalid position (ra={ra[row]}, dec={dec[row]})")
    ids = [str(v).strip() for v in table[found["id"]]]
    positions: dict[str, tuple[float, float]] = {}
    for i, key in enumerate(ids):
        if key in positions:
            raise UsageError(f"{path}: id {key!r} appears more than once")
        positions[key] = (float(ra[i] % 360.0), float(dec[i]))
    return positions
