"""Make the default model: per direction, the trained network where it beats the physics, else the physics.

    python -m experiments.ship_default --model runs/ours-phys --out models/sdss-cfht \\
        --simulation SIMDIR/simulation.json [--n 200] [--seed 5000] [--overwrite]

Both are run on ``--n`` freshly simulated pairs with truth (``experiments/against_physics.py``;
the seed is not a training seed).  A direction keeps its network when, against the physics on
those pairs, it has

* a lower summed |pred - ref| / floor summed over bands, and a lower one in every band;
* |r 2" aperture flux bias| <= 1 % (or no worse than the physics's);
* every colour bias no worse than the physics's by more than 0.01 mag;
* a border median within 0.3 sky sigma of the physics's (no pedestal or frame).

Otherwise the direction is left to the physics translator
(:func:`survey2survey.model.leave_to_physics`); ``s2s translate`` then says so, with the
reason written here.  The measurements go to ``OUT/selection.json``.  The training set's
simulation record (``--simulation``) gives the model's ``training_range`` (r magnitudes, largest
disk half-light radius: ``s2s translate`` warns about inputs outside it), the population the
pairs are drawn from, and the one-line ``validity`` that translate prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

#: Largest |r aperture flux bias| a network may have (unless the physics's is larger).
MAX_BIAS = 0.01
#: How much worse than the physics's a colour bias may be (mag).
COLOUR_SLACK = 0.01
#: Largest |border median - physics's| in target sky sigmas.
MAX_BORDER = 0.3


def verdict(res: dict) -> tuple[bool, str]:
    """``(network wins, one-line reason)`` for one direction's :func:`~experiments.against_physics.compare` result."""
    m, p = res["model"], res["physics"]
    fails = []
    if not (m["ratio"].sum() < p["ratio"].sum() and np.all(m["ratio"] < p["ratio"])):
        fails.append(f"|pred-ref|/floor summed over {len(m['ratio'])} bands (1.41 each a perfect translation) "
                     f"{m['ratio'].sum():.2f} vs physics {p['ratio'].sum():.2f} "
                     f"(lower in {int((m['ratio'] < p['ratio']).sum())} of {len(m['ratio'])} bands)")
    if abs(m["aper"]) > max(MAX_BIAS, abs(p["aper"])):
        fails.append(f"r aperture flux bias {m['aper']:+.3f} vs physics {p['aper']:+.3f}")
    worse = [k for k in m["colour"] if k in p["colour"] and abs(m["colour"][k]) > abs(p["colour"][k]) + COLOUR_SLACK]
    if worse:
        fails.append("colour bias worse in " + ", ".join(f"{k} ({m['colour'][k]:+.3f} vs {p['colour'][k]:+.3f})" for k in worse))
    if abs(m.get("border", 0.0)) > MAX_BORDER:
        fails.append(f"border {m['border']:+.2f} sky sigma from the physics's")
    n = res["n"]
    if fails:
        return False, f"the network did not beat the physics on {n} held-out pairs: " + "; ".join(fails)
    return True, (f"the network beat the physics on {n} held-out pairs: |pred-ref|/floor summed over "
                  f"{len(m['ratio'])} bands (1.41 each a perfect translation) {m['ratio'].sum():.2f} vs "
                  f"{p['ratio'].sum():.2f}, r aperture bias {m['aper']:+.3f}")


def _jsonable(res: dict) -> dict:
    out = {}
    for direction, r in res.items():
        out[direction] = {"n": r["n"]}
        for name in ("physics", "model"):
            s = dict(r[name])
            for k, v in s.items():  # per-band arrays: ratio, noise_hk_sky, noise_hk_galaxy
                if isinstance(v, np.ndarray):
                    s[k] = dict(zip(r["target"].bands, (round(float(x), 4) for x in v)))
            out[direction][name] = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in s.items()}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained model directory (e.g. ours-phys)")
    parser.add_argument("--out", required=True, help="the model directory to write")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--simulation", required=True, help="simulation.json of the training set (s2s prepare --simulate)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from experiments.against_physics import compare, report, simulate_pairs
    from survey2survey.model import leave_to_physics, load_model

    sim = json.loads(Path(args.simulation).read_text(encoding="utf-8"))["config"]
    population = "realistic" if sim.get("star_fraction") else "default"  # for the validity line
    model = load_model(args.model)
    results = compare(model, simulate_pairs(args.n, args.seed, sim), args.seed)
    print(report(results))
    verdicts = {d: verdict(r) for d, r in results.items()}
    physics = {d: why for d, (wins, why) in verdicts.items() if not wins}
    for d, (wins, why) in verdicts.items():
        print(f"{d}: {'network' if wins else 'physics'}: {why}")
    lo, hi = sim["mag_range"]
    extra = {
        "training_range": {"band": "r", "mag": [lo, hi], "half_light_radius": [0.0, sim.get("max_hlr", 6.0)]},
        "validity": (f"trained on simulated SDSS/CFHT pairs (GalSim, {population} population): galaxies of r "
                     f"{lo:g}-{hi:g}, disk half-light radius up to {sim.get('max_hlr', 6.0):g}\", typical seeing; "
                     + "; ".join(f"{d}: {'network' if w else 'physics'}" for d, (w, _) in verdicts.items())),
    }
    out = leave_to_physics(args.model, args.out, physics, overwrite=args.overwrite, extra=extra)
    selection = {"model": Path(args.model).name, "n": args.n, "seed": args.seed, "population": population,
                 "choice": {d: ("network" if w else "physics") for d, (w, _) in verdicts.items()},
                 "reasons": {d: why for d, (_, why) in verdicts.items()}, "results": _jsonable(results)}
    (out / "selection.json").write_text(json.dumps(selection, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
