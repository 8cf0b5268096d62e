"""Give a finished ``ours-phys`` model's generators the photometry anchor, without training.

    python -m experiments.add_anchor --model models/sdss-cfht-ours-phys --out models/sdss-cfht-ours-phys --overwrite

Each physics-residual generator without an anchor gets one
(:class:`survey2survey.nets.anchor.PhotometryAnchor`, built from the surveys the model records
for its directions, their PSF and noise from the registry where the model has none); its weights
and the noise emulators stay as they are.  config.json keeps the training record and says which
directions got the anchor afterwards (``anchor_added``).  For models trained
before generators had the anchor (``s2s train --method ours-phys`` builds it in).
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
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    from experiments._generators import modify_generators
    from survey2survey.methods.ours_phys import survey_with_physics
    from survey2survey.nets.anchor import PhotometryAnchor

    def add(direction, spec, generator) -> bool:
        if generator.anchor is not None:
            return False
        source, target = survey_with_physics(spec.source), survey_with_physics(spec.target)
        if not PhotometryAnchor.fits(target, generator.out_size):
            print(f"{direction}: a {generator.out_size[1]}x{generator.out_size[0]} cutout is too small for the anchor")
            return False
        generator.anchor = PhotometryAnchor.from_surveys(source, target, generator.bands, generator.physics,
                                                         generator.out_size)
        generator.init_kwargs["anchor"] = True
        return True

    added = modify_generators(args.model, args.out, add, "anchor_added",
                              "no physics-residual generator without an anchor", overwrite=args.overwrite)
    print(f"wrote {args.out}: anchor added to {', '.join(added)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
