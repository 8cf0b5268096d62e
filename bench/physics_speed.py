"""Physics translator speed: model only (arrays in memory) and FITS dir -> FITS dir, against the learned model.

    python bench/physics_speed.py                 # SDSS->CFHT and CFHT->SDSS, 5 bands, 200 cutouts
    python bench/physics_speed.py --n 1000 --repeats 5
    python bench/physics_speed.py --files 400 --workers 2 --no-model-only

FITS to FITS: ``--files`` copies of the bundled examples under new names are translated
directory to directory by ``translate(..., model_dir="physics")`` (``s2s translate --model
physics``) and, in the same run, by the faithful learned model ``models/sdss-cfht-ours`` (``translate()``, CPU), best
of ``--repeats`` passes each into a fresh output directory, the rows' passes in alternation
(after one cutout by each translator, so that imports and first-use caches are not in the
timed rows); the ratio is physics / learned.
A third row replaces the translation by a nearest resize in the workers: what reading and
writing FITS alone sustain (the ceiling of any per-cutout translator).  A fourth runs
physics again with an ``fsync`` of each output instead of one flush of the file system per
task (``survey2survey.atomic.AtomicGroup`` without ``syncfs``): the cost of flushing file
by file, in the same run.

Each row translates ``--n`` cutouts (the bundled examples with fresh jitter; noisy, native
units, with their WCS and header) one by one through ``PhysicsTranslator.translate``, or
``--batch`` at a time through ``translate_batch``, with and without noise, the best of
``--repeats`` passes (the machine is shared; the best pass is the least disturbed).  FITS reading and writing are not included: the FITS-to-FITS
rate comes from the translate pipeline once the translator is plugged in.  Issue 13's
target is 300 cutouts/s FITS to FITS on 2 cores, so about 3 ms of compute per cutout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402


def _inputs(survey: str, n: int):
    """n cutouts of ``survey``: the bundled examples, repeated with fresh noise."""
    from survey2survey.data import example_dir
    from survey2survey.fits_io import find_cutouts, read_cutout

    cutouts = [read_cutout(s, survey) for s in find_cutouts([example_dir() / survey], survey)]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        c = cutouts[i % len(cutouts)]
        jitter = rng.normal(0.0, 1e-3 * float(np.std(c.data)), c.data.shape).astype(np.float32)
        out.append((c.data + jitter, c.bands, c.wcs, c.header))
    return out


def _rate(translator, inputs, noise: bool, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i, (data, bands, wcs, header) in enumerate(inputs):
            translator.translate(data, bands, wcs, header, seed=i, noise=noise)
        best = min(best, time.perf_counter() - start)
    return best / len(inputs)


def _rate_batch(translator, inputs, noise: bool, repeats: int, batch: int) -> float:
    data = np.array([d for d, _, _, _ in inputs])
    bands = inputs[0][1]
    wcs = [w for _, _, w, _ in inputs]
    headers = [h for _, _, _, h in inputs]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(inputs), batch):
            translator.translate_batch(data[i : i + batch], bands, wcs[i : i + batch], headers[i : i + batch],
                                       seeds=list(range(i, min(i + batch, len(inputs)))), noise=noise)
        best = min(best, time.perf_counter() - start)
    return best / len(inputs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="cutouts per pass")
    parser.add_argument("--repeats", type=int, default=3, help="passes; the best is reported")
    parser.add_argument("--batch", type=int, default=16, help="cutouts per translate_batch call")
    parser.add_argument("--files", type=int, default=200, help="cutouts of the FITS-to-FITS rows (0: none)")
    parser.add_argument("--workers", type=int, help="worker processes of the FITS-to-FITS rows (default: translate's)")
    parser.add_argument("--no-model-only", action="store_true", help="skip the in-memory rows")
    args = parser.parse_args(argv)
    if not args.no_model_only:
        _model_only(args)
    if args.files:
        _fits_to_fits(args)
    return 0


#: The FITS-to-FITS rows: (name, what translates).
#: The learned model of the comparison: the faithful ``ours`` (the default model translates by the physics).
LEARNED = Path(__file__).resolve().parent.parent / "models" / "sdss-cfht-ours"

_ROWS = (("physics", "physics"), ("learned (ours, cpu)", "learned"), ("I/O alone (a resize)", "io"),
         ("physics, fsync per file", "physics-fsync"))


def _fits_to_fits(args) -> None:
    import shutil
    import tempfile

    from survey2survey.data import example_dir
    from survey2survey.pipelines.translate import translate

    print(f"\nFITS dir -> FITS dir, {args.files} cutouts, {os.cpu_count()} CPU core(s) visible, best of {args.repeats} "
          "(the rows' passes alternate)")
    print(f"{'direction':<12} {'translator':<26} {'workers':>7} {'cutouts/s':>10} {'physics/this row':>16}")
    with tempfile.TemporaryDirectory(prefix="s2s-physics-bench-") as tmp:
        for source, target in (("sdss", "cfht"), ("cfht", "sdss")):
            src = Path(tmp) / source
            src.mkdir()
            files = sorted((example_dir() / source).glob("*.fits"))
            for i in range(args.files):  # copies under new names: new object ids, new noise
                shutil.copyfile(files[i % len(files)], src / f"obj{i:06d}.fits")
            for model in ("physics", LEARNED):  # imports and first-use caches, outside the timed rows
                translate([src / "obj000000.fits"], target, model_dir=model, out_dir=Path(tmp) / "warm", workers=0)
            shutil.rmtree(Path(tmp) / "warm")
            rates: dict[str, float] = {}
            workers: dict[str, int] = {}
            for r in range(args.repeats):
                for name, what in _ROWS:
                    report = _fits_row(what, src, source, target, Path(tmp) / f"out-{source}", args.workers, r)
                    assert report.translated == args.files, report.failed[:3]
                    rates[name], workers[name] = max(rates.get(name, 0.0), report.rate), report.workers
            for name, _ in _ROWS:
                ratio = "" if name == "physics" else f"{rates['physics'] / rates[name]:.2f}x"
                print(f"{source + '->' + target:<12} {name:<26} {workers[name]:>7} {rates[name]:>10.1f} {ratio:>16}")


def _fits_row(what: str, src: Path, source: str, target: str, out: Path, workers, seed: int):
    """One pass of a FITS-to-FITS row into ``out`` (removed afterwards: the same free space for every row)."""
    import shutil

    from translate_speed import _PerCutoutResize  # bench/: the same resize as translate_speed's I/O row

    from survey2survey import atomic
    from survey2survey.pipelines.translate import translate, translate_with
    from survey2survey.surveys import get_survey

    syncfs = atomic._SYNCFS
    if what == "physics-fsync":  # the workers are forked: they flush as this process says
        atomic._SYNCFS = None
    try:
        if what == "io":  # the pipeline's reading and writing with a nearest resize in the workers
            return translate_with(_PerCutoutResize(get_survey(source), get_survey(target)), [src], out_dir=out,
                                  workers=workers, seed=seed)
        model = LEARNED if what == "learned" else "physics"
        return translate([src], target, model_dir=model, out_dir=out, workers=workers, seed=seed)
    finally:
        atomic._SYNCFS = syncfs
        shutil.rmtree(out, ignore_errors=True)


def _model_only(args) -> None:
    from survey2survey.physics.translator import PhysicsTranslator

    print(f"physics translator, model only, 1 process, {os.cpu_count()} CPU core(s) visible, {args.n} cutouts x "
          f"best of {args.repeats}")
    print(f"{'direction':<12} {'call':<10} {'noise':<6} {'ms/cutout':>10} {'cutouts/s':>10}")
    for source, target in (("sdss", "cfht"), ("cfht", "sdss")):
        inputs = _inputs(source, args.n)
        translator = PhysicsTranslator(source, target)
        translator.translate(*inputs[0][:4], seed=0)  # kernels and weights into their caches
        for noise in (True, False):
            for call in ("one", f"batch {args.batch}"):
                if call == "one":
                    seconds = _rate(translator, inputs, noise, args.repeats)
                else:
                    seconds = _rate_batch(translator, inputs, noise, args.repeats, args.batch)
                print(f"{source + '->' + target:<12} {call:<10} {'yes' if noise else 'no':<6} {seconds * 1e3:>10.2f} "
                      f"{1 / seconds:>10.0f}")


if __name__ == "__main__":
    raise SystemExit(main())
