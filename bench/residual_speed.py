"""FITS-to-FITS speed of the residual (physics + network) model against the faithful model and the physics.

    python bench/residual_speed.py --model models/sdss-cfht-ours-phys --faithful models/sdss-cfht-ours --files 400

One run, the same SDSS input files, ``s2s translate`` into CFHT with each translator in turn,
``--rounds`` times interleaved (the machine is shared: compare within a round).  Prints
cutouts/s per translator and round, and the ratios residual / faithful and residual / physics.
Target (issue 14): the residual model >= 50 cutouts/s SDSS -> CFHT on 2 cores.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _inputs(folder: Path, n: int) -> None:
    from survey2survey.data.simulate import SimulationConfig, simulate_object
    from survey2survey.fits_io import make_wcs, write_cutout
    from survey2survey.surveys import get_survey

    sdss = get_survey("sdss")
    config = SimulationConfig.for_population("realistic", n_paired=min(n, 50), seed=77)
    objects = [simulate_object(config, i) for i in range(config.n_paired)]
    for i in range(n):  # a few distinct galaxies, repeated: speed does not depend on the image
        obj = objects[i % len(objects)]
        obs = obj.observations["sdss"]
        wcs = make_wcs(obs.ra_center + i * 1e-3, obs.dec_center, sdss.pixel_scale, obj.truth["sdss"].shape[1:])
        write_cutout(folder / f"J{i:05d}.fits", obj.image("sdss"), sdss, wcs=wcs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the residual model (ours-phys)")
    parser.add_argument("--faithful", default=None, help="the faithful model (default: models/sdss-cfht-ours)")
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    from survey2survey.pipelines.translate import translate

    root = Path(__file__).resolve().parent.parent
    faithful = args.faithful or str(root / "models" / "sdss-cfht-ours")
    runs = {"residual": args.model, "faithful": faithful, "physics": "physics"}
    work = Path(tempfile.mkdtemp(prefix="s2s-residual-speed-"))
    try:
        (work / "in").mkdir()
        _inputs(work / "in", args.files)
        rates: dict[str, list[float]] = {k: [] for k in runs}
        for r in range(args.rounds):
            for name, model in runs.items():
                out = work / f"out-{name}"
                shutil.rmtree(out, ignore_errors=True)
                report = translate(sorted((work / "in").glob("*.fits")), "cfht", out_dir=out, model_dir=model,
                                   seed=1, workers=args.workers)
                rates[name].append(report.rate)
                print(f"round {r + 1}: {name:9s} {report.rate:7.1f} cutouts/s ({report.translated} files)")
        for r in range(args.rounds):
            res, fai, phy = (rates[k][r] for k in ("residual", "faithful", "physics"))
            print(f"round {r + 1}: residual / faithful {res / fai:.2f}x, residual / physics {res / phy:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
