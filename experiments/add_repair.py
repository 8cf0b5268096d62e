"""Give a finished ``ours-phys`` model's generators the speck repair, without training.

    python -m experiments.add_repair --model models/sdss-cfht --out models/sdss-cfht --bands u,z --overwrite

Each physics-residual generator without one gets :class:`survey2survey.nets.repair.SpeckRepair`
(peaks narrower than the target's PSF smoothed away, every band's flux kept), built from the
target survey's typical PSF in the registry.  It has no weights: the model's weights file stays
the same, and its config.json records the repair's PSFs in the generator's ``kwargs`` and which
directions got it (``repair_added``).
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
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    from experiments._generators import modify_generators
    from survey2survey.methods.ours_phys import survey_with_physics
    from survey2survey.nets.repair import SpeckRepair, repair_config

    def add(direction, spec, generator) -> bool:
        if generator.repair is not None:
            return False
        config = repair_config(survey_with_physics(spec.target), generator.bands,
                               args.bands.split(",") if args.bands else None)
        generator.repair = SpeckRepair(config["fwhm_px"], config["profile"], config["beta"], config.get("bands"))
        generator.init_kwargs["repair"] = config
        return True

    added = modify_generators(args.model, args.out, add, "repair_added",
                              "no physics-residual generator without the speck repair", overwrite=args.overwrite)
    print(f"wrote {args.out}: speck repair added to {', '.join(added)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
