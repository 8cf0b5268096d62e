"""A physics-residual model's 2" photometry under PSFs the registry does not assume.

    python bench/psf_families.py --model models/sdss-cfht-ours-phys --n 150
    python bench/psf_families.py --model runs/m --families kolmogorov gaussian moffat2.5 moffat4.5
    python bench/psf_families.py --families kolmogorov moffat2.5@0.82/kolmogorov moffat2.5@0.82/moffat2.5

Not a speed test.  The photometry anchor's estimate (``survey2survey.physics.photometry``) and
the network's sharpening assume the registry's PSFs (Kolmogorov for SDSS and CFHT); real and
other simulated surveys have other wings.  This draws bulge + disk galaxies with GalSim directly,
outside the project's simulator (r 15.5-20.5, per-image seeing log-normal about the registry's
per-band FWHM,
SDSS noise at the registry's sigma), through PSFs of each family, and prints per family the
median 2" aperture flux over the noise-free truth's (SDSS -> CFHT, centre of the cutout) of the
physics P, the anchor's estimate, the network without and with its anchor, and the colour biases
(mag) of the anchored network and of P.  A family that moves the estimate moves the anchored
fluxes with it: the numbers say by how much.

A family is one name for both surveys' PSFs at the registry's FWHM, or ``SOURCE[@SCALE]/TARGET[@SCALE]``
for each its own, SCALE multiplying the registry's FWHM: ``moffat2.5@0.82/kolmogorov`` is the
real SDSS PSF as ``bench/psf_growth.py`` measures it on SDSS frames (Moffat beta 2.5 of 1.15" in
r where the registry's Kolmogorov has 1.4") with the registry's CFHT.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: magnitudes relative to r (u g r i z) of a red bulge and a blue disk
BULGE_SED = np.array([2.4, 0.8, 0.0, -0.4, -0.75])
DISK_SED = np.array([1.3, 0.4, 0.0, -0.2, -0.35])


def psf(family: str, fwhm: float):
    """A GalSim PSF of ``family`` (kolmogorov, gaussian, moffatBETA) and ``fwhm`` arcsec."""
    import galsim

    if family == "kolmogorov":
        return galsim.Kolmogorov(fwhm=fwhm)
    if family == "gaussian":
        return galsim.Gaussian(fwhm=fwhm)
    if family.startswith("moffat") and family[6:].replace(".", "", 1).isdigit():
        return galsim.Moffat(beta=float(family[6:]), fwhm=fwhm)
    raise SystemExit(f"unknown PSF family {family!r}: kolmogorov, gaussian or moffatBETA (e.g. moffat2.5)")


def families(spec: str) -> tuple[tuple[str, float], tuple[str, float]]:
    """``((source family, FWHM scale), (target family, FWHM scale))`` of a ``--families`` entry."""
    parts = spec.split("/")
    if len(parts) > 2:
        raise SystemExit(f"PSF families {spec!r}: SOURCE[@SCALE]/TARGET[@SCALE] or one family")
    out = []
    for part in parts if len(parts) == 2 else parts * 2:
        name, _, scale = part.partition("@")
        try:
            value = float(scale) if scale else 1.0
        except ValueError:
            raise SystemExit(f"PSF families {spec!r}: {scale!r} is no FWHM scale") from None
        psf(name, 1.0)  # an unknown family fails here
        out.append((name, value))
    return out[0], out[1]


def draw_pairs(spec: str, n: int, seed: int, source, target):
    """``n`` noisy source cutouts (native units) and noise-free target truths (flux) through the
    PSFs of ``spec`` (:func:`families`)."""
    import galsim

    (src_family, src_scale), (tgt_family, tgt_scale) = families(spec)

    rng = np.random.default_rng(seed)
    bands = list(source.bands)
    sigma = np.array([source.typical_sky_sigma(b) for b in bands])
    xs = np.zeros((n, len(bands), source.cutout_size, source.cutout_size), np.float32)
    truth = np.zeros((n, len(bands), target.cutout_size, target.cutout_size))
    for k in range(n):
        mag, bt = rng.uniform(15.5, 20.5), rng.uniform(0.0, 0.7)
        hlr_b, hlr_d, q = rng.uniform(0.2, 1.2), rng.uniform(0.6, 3.0), rng.uniform(0.3, 1.0)
        beta = rng.uniform(0, np.pi) * galsim.radians
        shift, (dx, dy) = rng.normal(0, 0.1, len(bands)), rng.normal(0, 0.15, 2)
        seeing = np.exp(rng.normal(0, 0.15, 2))  # this image's seeing over the typical, per survey
        for b in range(len(bands)):
            f = 10 ** ((22.5 - mag) / 2.5)  # nanomaggies, the flux scale of model space
            gal = galsim.Add([
                galsim.DeVaucouleurs(half_light_radius=hlr_b, flux=f * bt * 10 ** (-0.4 * (BULGE_SED[b] + shift[b])))
                .shear(q=min(1.0, q + 0.3), beta=beta),
                galsim.Exponential(half_light_radius=hlr_d, flux=f * (1 - bt) * 10 ** (-0.4 * (DISK_SED[b] + shift[b])))
                .shear(q=q, beta=beta),
            ]).shift(dx, dy)
            src = galsim.Convolve(psf(src_family, src_scale * seeing[0] * source.psf_fwhm[b]), gal).drawImage(
                nx=source.cutout_size, ny=source.cutout_size, scale=source.pixel_scale).array
            xs[k, b] = src / source.flux_factor + rng.normal(0, sigma[b], src.shape)
            truth[k, b] = galsim.Convolve(psf(tgt_family, tgt_scale * seeing[1] * target.psf_fwhm[b]), gal).drawImage(
                nx=target.cutout_size, ny=target.cutout_size, scale=target.pixel_scale).array
    return xs, truth


def photometry(generator, xs, truth, source):
    """Per image and band the 2" fluxes over the truth's: P, estimate, network, anchored network."""
    import torch

    from survey2survey.nets.residual import unstretch
    from survey2survey.nets.sky import frame_sky
    from survey2survey.surveys import to_model_space

    anchor = generator.anchor
    x = torch.tensor(to_model_space(xs, source))
    with torch.no_grad():
        p, g0 = generator.unanchored(x)
        g1 = anchor(g0, p, unstretch(x))
        estimate = anchor.estimate(p, frame_sky(p)[1])

        def circle(im):
            return anchor.circle_flux(im, frame_sky(im)[1])

        true = (torch.as_tensor(truth, dtype=torch.float32) * anchor.aperture).sum((2, 3))
        return {name: (v / true).numpy() for name, v in
                (("physics", circle(p)), ("estimate", estimate), ("network", circle(g0)), ("anchored", circle(g1)))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/sdss-cfht-ours-phys")
    parser.add_argument("--direction", default="sdss->cfht")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--families", nargs="+", default=["kolmogorov", "gaussian", "moffat2.5", "moffat3.5"])
    args = parser.parse_args(argv)
    for spec in args.families:
        families(spec)  # a bad entry fails before any drawing
    from survey2survey.model import load_model
    from survey2survey.surveys import get_survey

    a, b = args.direction.split("->")
    source, target = get_survey(a), get_survey(b)
    generator = load_model(args.model).modules[f"generator_{a}_to_{b}"]
    if getattr(generator, "anchor", None) is None:
        raise SystemExit(f"{args.model}: generator_{a}_to_{b} has no photometry anchor")
    bands = list(source.bands)
    print(f"model {args.model}, {args.direction}: {args.n} GalSim bulge + disk pairs per PSF family, seed {args.seed}")
    print("2\" flux over the truth's, median, per band " + " ".join(bands) + "; colour bias (mag) of P and anchored")
    for family in args.families:
        ratios = photometry(generator, *draw_pairs(family, args.n, args.seed, source, target), source)
        print(f"{family}:")
        for name, r in ratios.items():
            print(f"  {name:9s} " + " ".join(f"{np.median(r[:, j]):.3f}" for j in range(len(bands))))
        for name in ("physics", "anchored"):
            mags = -2.5 * np.log10(np.clip(ratios[name], 1e-3, None))
            colours = [np.median(mags[:, j] - mags[:, j + 1]) for j in range(len(bands) - 1)]
            print(f"  colours {name:9s} " + " ".join(f"{bands[j]}-{bands[j + 1]} {c:+.3f}" for j, c in enumerate(colours)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
