"""Physics translator accuracy on freshly simulated pairs with noise-free truth.

    python bench/physics_accuracy.py               # 100 pairs, seed 1000 (not the bundled seed 14)
    python bench/physics_accuracy.py --n 500

Per direction: summed |pred - ref| / (sqrt(2) x the reference's summed noise, Lin & Fouchez
Fig. 5's ideal with noise) per band, median over objects; the total and 2" aperture r flux
bias of the noise-free translation against the truth (median); the colour metric
(aperture colours of adjacent bands, prediction vs truth).  The translator uses the
registry's typical seeing (the noisy cutouts carry no seeing keyword), so the truth's
per-image seeing is part of what is measured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args(argv)
    from survey2survey.data.simulate import SimulationConfig, simulate_object
    from survey2survey.fits_io import make_wcs
    from survey2survey.metrics.apertures import aperture_sum
    from survey2survey.metrics.base import MetricContext
    from survey2survey.metrics.colour import ColourMetric
    from survey2survey.physics.translator import PhysicsTranslator
    from survey2survey.surveys import get_survey

    config = SimulationConfig(n_paired=args.n, seed=args.seed)
    objects = [simulate_object(config, i) for i in range(args.n)]
    for source, target in (("cfht", "sdss"), ("sdss", "cfht")):
        t, tgt = PhysicsTranslator(source, target), get_survey(target)
        ratio, total, aper, preds, truths = [], [], [], [], []
        for i, obj in enumerate(objects):
            obs = obj.observations[source]
            wcs = make_wcs(obs.ra_center, obs.dec_center, get_survey(source).pixel_scale, obj.truth[source].shape[1:])
            pred, _, _ = t.translate(obj.image(source), get_survey(source).bands, wcs, seed=i)
            clean, _, _ = t.translate(obj.image(source), get_survey(source).bands, wcs, seed=i, noise=False)
            ref, truth = obj.image(target), obj.truth[target]
            if pred.shape != ref.shape:  # footprints of the two grids differ by a rounding
                continue
            floor = np.sqrt(2.0) * np.abs(ref - truth).sum(axis=(1, 2))
            ratio.append(np.abs(pred - ref).sum(axis=(1, 2)) / floor)
            r = tgt.band_index("r")
            total.append(clean[r].sum() / truth[r].sum() - 1)
            radius = 2.0 / tgt.pixel_scale
            aper.append(aperture_sum(clean[r], radius) / aperture_sum(truth[r], radius) - 1)
            preds.append(pred)
            truths.append(truth)
        colour = ColourMetric(MetricContext(bands=tgt.bands, pixel_scale=tgt.pixel_scale))
        colour.update(np.array(preds), np.array(truths), np.array(truths))
        res = colour.result()
        print(f"{source} -> {target}: {len(ratio)} objects")
        print("  summed |pred - ref| / sqrt2 floor, per band " + " ".join(
            f"{b} {v:.3f}" for b, v in zip(tgt.bands, np.median(ratio, axis=0))))
        print(f"  r flux bias (noise-free translation vs truth): total {np.median(total):+.4f}, "
              f"2\" aperture {np.median(aper):+.4f}")
        print("  colour bias / scatter (mag, pred vs truth): " + ", ".join(
            f"{a}-{b} {res.values[a]['colour_bias']:+.3f}/{res.values[a]['colour_scatter']:.3f}"
            for a, b in zip(tgt.bands[:-1], tgt.bands[1:])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
