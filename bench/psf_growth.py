"""Which PSF profile a survey's frames have: growth curves of their stars against PSF families.

    python bench/psf_growth.py FRAME [FRAME ...] --survey sdss
    python bench/psf_growth.py frames/frame-r-*.fits.bz2 --survey sdss --families kolmogorov moffat2.5 moffat3

Not a speed test.  The registry gives each survey a PSF profile and FWHM (``psf_profile``,
``psf_beta``, ``psf_fwhm``); the physics translator, the photometry anchor and the simulator
all draw from them.  This reads whole frames of a survey (FITS, also ``.fits.gz`` and
``.fits.bz2``; the first image HDU; the band from ``--band`` or from the file name's
``frame-<band>-``), finds bright, isolated, unsaturated point sources, measures each one's
growth curve (flux in circles of 0.5-6" over the flux in 6", sky from an 8-12" annulus), and per
frame fits the FWHM of each family (pixel-convolved GalSim profiles) to the frame's median curve
over 0.5-5".  It prints per frame and family the rms residual and the FWHM, and per band their
medians over frames: the family with the smallest residual is the one the frames favour, and its
FWHM is the width the registry would carry for it.

Stars: peaks of the frame smoothed by a 1-px Gaussian between 100x and 2000x the frame's sigma
(``--min-peak``, ``--max-peak``), 40 px from the edges, nothing brighter than 2 % of the peak
plus 5 sigma within 12" outside its own 2.4", and among those the most compact: half-maximum areas within
15 % of the frame's 20th percentile (galaxies are wider).  Frames with fewer than 5 such stars
are left out.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from psf_families import psf as psf_model  # noqa: E402  (kolmogorov, gaussian, moffatBETA)

#: growth-curve radii (arcsec); the last one normalises
RADII = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0])
SKY_ANNULUS = (8.0, 12.0)
MIN_STARS = 5


def read_frame(path: Path) -> np.ndarray:
    """The first image HDU of ``path`` (FITS, gzip or bzip2 compressed) as float64."""
    from astropy.io import fits

    raw = path.read_bytes()
    if path.suffix == ".bz2":
        raw = bz2.decompress(raw)
    elif path.suffix == ".gz":
        raw = gzip.decompress(raw)
    with fits.open(io.BytesIO(raw)) as hdul:
        images = [h.data for h in hdul if h.data is not None and h.data.ndim == 2]
        if not images:
            raise SystemExit(f"{path}: no 2-D image HDU")
        return np.asarray(images[0], dtype=np.float64)


def growth(image: np.ndarray, x: float, y: float, pixel_scale: float, sky: bool = True) -> np.ndarray:
    """Flux in circles of :data:`RADII` about (x, y) over the flux in the last, sky subtracted."""
    from photutils.aperture import CircularAnnulus, CircularAperture, aperture_photometry

    apertures = [CircularAperture((x, y), r / pixel_scale) for r in RADII]
    table = aperture_photometry(image, apertures)
    level = 0.0
    if sky:
        annulus = CircularAnnulus((x, y), *(r / pixel_scale for r in SKY_ANNULUS))
        mask = annulus.to_mask(method="center")
        level = float(np.median(mask.get_values(image)))
    flux = np.array([table[f"aperture_sum_{i}"][0] - level * a.area for i, a in enumerate(apertures)])
    return flux / flux[-1]


def find_stars(image: np.ndarray, pixel_scale: float, min_peak: float, max_peak: float) -> list[tuple[float, float]]:
    """Centres (x, y) of the bright, isolated, compact point sources of ``image`` (module docstring)."""
    from scipy import ndimage

    sigma = 1.4826 * np.median(np.abs(image - np.median(image)))
    smooth = ndimage.gaussian_filter(image, 1.0)
    peaks = (smooth == ndimage.maximum_filter(smooth, 21)) & (smooth > 0.5 * min_peak * sigma)
    far, core = int(round(12.0 / pixel_scale)), 2.4 / pixel_scale
    yy, xx = np.mgrid[-far : far + 1, -far : far + 1]
    outside = np.hypot(yy, xx) >= core
    found = []
    for y, x in zip(*np.nonzero(peaks)):
        if min(y, x) < max(40, far) or y >= image.shape[0] - max(40, far) or x >= image.shape[1] - max(40, far):
            continue
        stamp = image[y - 15 : y + 16, x - 15 : x + 16]
        peak = stamp.max()
        if not min_peak * sigma <= peak <= max_peak * sigma:
            continue
        around = image[y - far : y + far + 1, x - far : x + far + 1]
        if around[outside].max() > 0.02 * peak + 5 * sigma:
            continue
        local = stamp - np.median(around)
        core_pixels = np.clip(local, 0, None) * (local > 0.2 * local.max())
        cy, cx = ndimage.center_of_mass(core_pixels)
        found.append((float((local > 0.5 * local.max()).sum()), x - 15 + cx, y - 15 + cy))
    if not found:
        return []
    areas = np.array([f[0] for f in found])
    compact = np.percentile(areas, 20) * 1.15
    return [(x, y) for area, x, y in found if area <= compact]


def model_growth(family: str, fwhm: float, pixel_scale: float) -> np.ndarray:
    """The growth curve of a pixel-convolved ``family`` PSF drawn on the centre of a pixel."""
    n = int(np.ceil(2 * RADII[-1] / pixel_scale)) + 16
    image = psf_model(family, fwhm).drawImage(nx=n, ny=n, scale=pixel_scale).array
    return growth(image, (n - 1) / 2, (n - 1) / 2, pixel_scale, sky=False)


def fit(curve: np.ndarray, family: str, pixel_scale: float) -> tuple[float, float]:
    """(FWHM, rms residual) of ``family`` fitted to ``curve`` over all radii but the last."""
    from scipy.optimize import minimize_scalar

    def cost(fwhm):
        return float(np.sum((model_growth(family, fwhm, pixel_scale)[:-1] - curve[:-1]) ** 2))

    best = minimize_scalar(cost, bounds=(0.3, 4.0), method="bounded", options={"xatol": 1e-3})
    return float(best.x), float(np.sqrt(best.fun / (len(RADII) - 1)))


def measure(frames: dict, families: list[str], pixel_scale: float, min_peak: float, max_peak: float) -> dict:
    """Per band, per frame: star count, median growth curve, and each family's (FWHM, rms).

    ``frames`` maps a frame's name to (band, image).
    """
    out: dict = {}
    for name, (band, image) in frames.items():
        stars = find_stars(image, pixel_scale, min_peak, max_peak)
        if len(stars) < MIN_STARS:
            print(f"{name}: {len(stars)} stars, left out", file=sys.stderr)
            continue
        curve = np.median([growth(image, x, y, pixel_scale) for x, y in stars], axis=0)
        out.setdefault(band, {})[name] = {"n": len(stars), "curve": curve,
                                          "fits": {f: fit(curve, f, pixel_scale) for f in families}}
    return out


def band_of(path: Path, band: str | None) -> str:
    if band:
        return band
    match = re.search(r"frame-([A-Za-z])-", path.name)
    if not match:
        raise SystemExit(f"{path}: no band in the name (frame-<band>-...): give --band")
    return match.group(1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames", nargs="+", type=Path)
    parser.add_argument("--survey", default="sdss", help="registry survey (its pixel scale and PSF)")
    parser.add_argument("--band", help="band of every frame (default: from the file names)")
    parser.add_argument("--families", nargs="+", default=["kolmogorov", "moffat2.5", "moffat3", "moffat3.5", "gaussian"])
    parser.add_argument("--min-peak", type=float, default=100.0, help="peak over the frame's sigma, at least")
    parser.add_argument("--max-peak", type=float, default=2000.0, help="... and at most (saturation)")
    args = parser.parse_args(argv)
    from survey2survey.surveys import get_survey

    survey = get_survey(args.survey)
    for family in args.families:
        psf_model(family, 1.0)  # an unknown family fails before the frames are read
    frames = {path.name: (band_of(path, args.band), read_frame(path)) for path in args.frames}
    result = measure(frames, args.families, survey.pixel_scale, args.min_peak, args.max_peak)
    profile = survey.psf_profile + (f" beta {survey.psf_beta:g}" if survey.psf_profile == "moffat" else "")
    print(f"{args.survey}: registry PSF {profile}; growth curves of stars, median per frame, normalised at {RADII[-1]:g}\"")
    print("radius (arcsec) " + " ".join(f"{r:6.1f}" for r in RADII))
    for band, per_frame in sorted(result.items()):
        registry = survey.psf_fwhm[survey.band_index(band)] if band in survey.bands else float("nan")
        print(f"\nband {band} (registry FWHM {registry:.2f}\"): {len(per_frame)} frames, "
              f"{sum(v['n'] for v in per_frame.values())} stars")
        for name, v in per_frame.items():
            print(f"  {name[:32]:32s} {v['n']:3d} stars " + " ".join(f"{c:6.3f}" for c in v["curve"]))
            print(f"  {'':32s} " + "; ".join(f"{f} {v['fits'][f][0]:.2f}\" rms {1000 * v['fits'][f][1]:.1f}e-3"
                                             for f in args.families))
        for family in args.families:
            fwhm = np.median([v["fits"][family][0] for v in per_frame.values()])
            rms = np.median([v["fits"][family][1] for v in per_frame.values()])
            print(f"  median over frames: {family:12s} FWHM {fwhm:.2f}\"  rms residual {1000 * rms:.1f}e-3")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
