"""Give a finished ``ours-phys`` model's generators the speck repair, or the dark-pixel lift, without training.

    python -m experiments.add_repair --model models/sdss-cfht --out models/sdss-cfht --bands u,z --overwrite
    python -m experiments.add_repair --model models/sdss-cfht --out models/sdss-cfht --lift 3 --overwrite

Each physics-residual generator without one gets :class:`survey2survey.nets.repair.SpeckRepair`
(peaks narrower than the target's PSF smoothed away, every band's flux kept), built from the
target survey's typical PSF in the registry, with ``--bands`` and ``--lift SIGMA`` the lift of
pixels darker than that many sky sigma (:func:`survey2survey.nets.repair.lift_dark`) too; with
``--lift`` alone, the lift is added to the generators that have the repair without it.  Neither has
weights: the model's weights file stays the same, and its config.json records the repair in the
generator's ``kwargs`` and which directions got it (``repair_added``, ``lift_added``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--bands", default=None, help="the target bands repaired, comma-separated (default all)")
    parser.add_argument("--lift", type=float, default=None,
                        help="also raise pixels darker than this many sky sigma (alone: add it to a model's repair)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if args.lift is not None and not args.lift > 0:
        parser.error(f"--lift must be a positive number of sky sigma, not {args.lift:g}")
    from experiments._generators import modify_generators
    from survey2survey.methods.ours_phys import survey_with_physics
    from survey2survey.nets.repair import SpeckRepair, repair_config

    lift_only = args.lift is not None and args.bands is None

    def add(direction, spec, generator) -> bool:
        if generator.repair is None and not lift_only:
            config = repair_config(survey_with_physics(spec.target), generator.bands,
                                   args.bands.split(",") if args.bands else None, args.lift)
        elif generator.repair is not None and lift_only and generator.repair.lift is None:
            config = dict(generator.init_kwargs["repair"], lift=args.lift)
        else:
            return False
        generator.repair = SpeckRepair.from_config(config)
        generator.init_kwargs["repair"] = config
        return True

    record, nothing, what = (
        ("lift_added", "no physics-residual generator with the speck repair and without the lift",
         f"lift of pixels below -{args.lift:g} sky sigma") if lift_only else
        ("repair_added", "no physics-residual generator without the speck repair", "speck repair"))
    added = modify_generators(args.model, args.out, add, record, nothing, overwrite=args.overwrite)
    print(f"wrote {args.out}: {what} added to {', '.join(added)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
