"""Which prediction goes with which reference: by object id, else by sky position.

Each prediction is matched to its reference by object id -- the file name without a
suffix naming a survey, so ``obj42.cfht.fits`` (what ``s2s translate`` writes) matches
``obj42.fits`` -- and, for the files left over, by sky position (WCS centres within
``radius_arcsec``).  Unmatched files are reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from survey2survey.errors import CutoutError

__all__ = ["MATCH_RADIUS_ARCSEC", "Pair", "Matching", "normalize_object_id", "match_sources"]

#: Largest separation (arcsec) of two WCS centres matched by position.
MATCH_RADIUS_ARCSEC = 1.0


def _survey_suffixes() -> list[str]:
    from survey2survey.surveys import list_surveys

    names: set[str] = set()
    for s in list_surveys():
        names.add(s.name.lower())
        names.update(a.lower() for a in s.aliases)
    return sorted(names, key=len, reverse=True)


def normalize_object_id(object_id: str, survey_names: Sequence[str] | None = None) -> str:
    """Object id without a trailing suffix naming a survey.

    ``obj42.cfht``, ``obj42_cfht``, ``obj42-CFHT``, ``obj42.sdss2cfht`` and
    ``obj42_sdss_to_cfht`` all become ``obj42``.

    Parameters
    ----------
    object_id : str
        File name stem (as :func:`~survey2survey.fits_io.find_cutouts` gives it).
    survey_names : sequence of str, optional
        Names to strip; default every registered survey name and alias.
    """
    names = list(survey_names) if survey_names is not None else _survey_suffixes()
    alt = "|".join(re.escape(n) for n in names)
    if not alt:
        return object_id
    pattern = re.compile(rf"[._-](?:(?:{alt})(?:2|[._-]to[._-]))?(?:{alt})$", re.IGNORECASE)
    stripped = object_id
    while True:  # "obj.sdss.cfht" -> "obj"
        new = pattern.sub("", stripped)
        if new == stripped or not new:
            return stripped
        stripped = new


@dataclass
class Pair:
    """One prediction matched to its reference (and truth).

    Attributes
    ----------
    object_id : str
        Normalised object id (of the reference).
    pred, ref : CutoutSource
    truth : CutoutSource or None
    how : str
        ``"id"`` or ``"position"``.
    separation : float or None
        Arcsec between the WCS centres when matched by position.
    """

    object_id: str
    pred: Any
    ref: Any
    truth: Any = None
    how: str = "id"
    separation: float | None = None


@dataclass
class Matching:
    """Result of matching one set of files to the references."""

    pairs: list[tuple[Any, Any, str, float | None]] = field(default_factory=list)
    unmatched: list[Any] = field(default_factory=list)  # sources of the matched set left over
    unused_ref: list[Any] = field(default_factory=list)  # references nothing matched
    failures: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) read for position

    @property
    def by_id(self) -> int:
        return sum(1 for p in self.pairs if p[2] == "id")

    @property
    def by_position(self) -> int:
        return sum(1 for p in self.pairs if p[2] == "position")


def _centres(sources, survey) -> tuple[list[Any], np.ndarray, list[tuple[str, str]]]:
    """WCS centres (deg) of the sources that have one; failures for those that cannot be read."""
    from survey2survey.fits_io import read_cutout

    kept, coords, failures = [], [], []
    for src in sources:
        try:
            cut = read_cutout(src, survey)
        except CutoutError as exc:
            failures.append((str(exc.path), exc.reason))
            continue
        radec = cut.center_radec()
        if radec is not None:
            kept.append(src)
            coords.append(radec)
    return kept, np.array(coords, dtype=np.float64).reshape(-1, 2), failures


def match_sources(
    items: Sequence[Any],
    refs: Sequence[Any],
    survey=None,
    *,
    radius_arcsec: float = MATCH_RADIUS_ARCSEC,
    by_position: bool = True,
) -> Matching:
    """Match cutout sources to reference sources: by object id, then by sky position.

    Parameters
    ----------
    items, refs : sequence of CutoutSource
    survey : Survey, optional
        Passed to the reader when WCS centres are needed.
    radius_arcsec : float
        Largest separation of a position match.
    by_position : bool
        Try the WCS centres of the files left after matching by id.

    Returns
    -------
    Matching
        ``pairs`` of (item, ref, how, separation_arcsec), one reference per item at most.
    """
    names = _survey_suffixes()
    ref_by_id: dict[str, Any] = {}
    ambiguous: set[str] = set()
    for r in refs:
        key = normalize_object_id(r.object_id, names)
        if key in ref_by_id:
            ambiguous.add(key)
        ref_by_id[key] = r
    result = Matching()
    used: set[int] = set()
    left: list[Any] = []
    for it in items:
        key = normalize_object_id(it.object_id, names)
        ref = ref_by_id.get(key) if key not in ambiguous else None
        if ref is not None and id(ref) not in used:
            used.add(id(ref))
            result.pairs.append((it, ref, "id", None))
        else:
            left.append(it)
    free_refs = [r for r in refs if id(r) not in used]
    if left and free_refs and by_position:
        left_kept, left_xy, fail_a = _centres(left, survey)
        ref_kept, ref_xy, fail_b = _centres(free_refs, survey)
        result.failures += fail_a + fail_b
        failed = {f for f, _ in fail_a}
        if len(left_kept) and len(ref_kept):
            from astropy import units as u
            from astropy.coordinates import SkyCoord

            a = SkyCoord(left_xy[:, 0] * u.deg, left_xy[:, 1] * u.deg)
            b = SkyCoord(ref_xy[:, 0] * u.deg, ref_xy[:, 1] * u.deg)
            idx, sep, _ = a.match_to_catalog_sky(b)
            sep_arcsec = sep.to(u.arcsec).value
            # closest first, so that a reference claimed twice goes to the nearer file
            taken: set[int] = set()
            matched: set[int] = set()
            for i in np.argsort(sep_arcsec, kind="stable"):
                j = int(idx[i])
                if sep_arcsec[i] <= radius_arcsec and j not in taken:
                    taken.add(j)
                    matched.add(int(i))
                    result.pairs.append((left_kept[i], ref_kept[j], "position", float(sep_arcsec[i])))
                    used.add(id(ref_kept[j]))
        else:
            matched = set()
        matched_ids = {id(left_kept[i]) for i in matched} if len(left_kept) else set()
        result.unmatched = [it for it in left if id(it) not in matched_ids and str(it.path) not in failed]
    else:
        result.unmatched = left
    result.unused_ref = [r for r in refs if id(r) not in used]
    return result
