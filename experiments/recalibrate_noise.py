"""Measure a finished ``ours-phys`` model's noise calibration again, without training.

    python -m experiments.recalibrate_noise --model models/sdss-cfht-ours-phys --dataset sim/dataset \\
        --out models/sdss-cfht-ours-phys --overwrite

The generators stay as they are; each noise emulator gets its calibration divided out (as
``s2s train --init`` does) and is scaled again by ``OursPhys.finalize`` on the training pairs of
``--dataset``, as a run finishing now would be.  config.json keeps the model's training record,
with the new scales under ``steps.step2.finalized`` and the old ones under
``steps.step2.finalized.recalibrated_from`` (with an earlier recalibration's record nested in
it) and the fingerprint of ``--dataset`` under ``recalibrated_on``.  For models calibrated
before the calibration measured on the sky alone, or on SDSS inputs noisier than the real ones
(the registry's SDSS noise was measured since): the calibration only scales an emulator down,
so each emulator is first rebased from the sky sigma its model was made with to the dataset's
(:func:`rebase`, ``rebased`` in config.json), then calibrated.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True, help="the model's training set (s2s prepare)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    from survey2survey.data.loader import open_dataset
    from survey2survey.methods.ours_phys import OursPhys
    from survey2survey.model import load_model, save_model

    loaded = load_model(args.model, device="cpu")
    if loaded.config.get("method") != OursPhys.name or loaded.config.get("step") != 2:
        raise SystemExit(f"{args.model}: not a finished ours-phys model")
    dataset = open_dataset(args.dataset)
    method = OursPhys(dataset.surveys, step=2)
    for name in loaded.modules:  # generators and noise emulators as they are ...
        method.nets[name].load_state_dict(loaded.modules[name].state_dict())
    config = copy.deepcopy(loaded.config)
    rebased = rebase(method, config)  # ... at the dataset's survey noise ...
    method.initialised_from(loaded, explicit=False)  # ... then the noise without its calibration
    scales = method.finalize(dataset)
    finalized = config["steps"]["step2"].get("finalized", {})
    earlier = {k: v for k, v in finalized.items() if k.startswith(("noise_scale_", "recalibrated_", "rebased"))}
    config["steps"]["step2"]["finalized"] = {**scales, "recalibrated_from": earlier,  # an earlier one nested
                                             "recalibrated_on": dataset.fingerprint,
                                             **({"rebased": rebased} if rebased else {})}
    save_model(args.out, {name: method.nets[name] for name in loaded.modules}, config, overwrite=args.overwrite)
    print(f"wrote {args.out}: noise scales " + "; ".join(f"{k} {v}" for k, v in scales.items()))
    return 0


def rebase(method, config: dict) -> dict:
    """Scale each noise emulator of ``method`` (a model's, loaded) from the sky sigma its model was
    made with (``config["surveys"]``) to its dataset survey's, per band, and write the new sigma
    into ``config``; returns ``{survey: [ratio per band]}`` for those that changed.

    The emulators started at their survey's registry noise; training shaped their spectrum, not
    this level.  A registry measured since (SDSS's) moves the level, and :meth:`OursPhys.finalize`
    can only scale an emulator down: without this an emulator louder than the survey stays so.
    """
    import torch

    changed = {}
    for spec in config["surveys"].values():
        survey = method.physics_survey(spec["name"])
        old = spec.get("sky_sigma") or {}
        ratio = [survey.typical_sky_sigma(b) / old[b] if old.get(b) else 1.0 for b in survey.bands]
        if all(abs(r - 1.0) < 1e-9 for r in ratio):
            continue
        with torch.no_grad():
            method.nets[method.NE(spec["name"])].kernel.mul_(torch.tensor(ratio).reshape(-1, 1, 1, 1))
        spec["sky_sigma"] = {b: survey.typical_sky_sigma(b) for b in survey.bands}
        changed[spec["name"]] = [round(r, 4) for r in ratio]
    return changed


if __name__ == "__main__":
    raise SystemExit(main())
