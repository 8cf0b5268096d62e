"""FITS read and write per cutout: the astropy-based ``fits_io`` against an earlier version, in one run.

    python bench/fits_speed.py [--n 300] [--repeat 3] [--before REV]

For 5x136x136 (CFHT) and 5x64x64 (SDSS) float32 cutouts, times per cutout over ``--n``
distinct files (``median``: of a pass, the best of ``--repeat`` passes; ``fastest``: the
fastest call, the cost on an idle core), the two versions' passes alternating, page cache
warm, no fsync:

* ``read``  -- ``read_cutout(path, survey)``: open, data, bands, units, WCS;
* ``write`` -- ``write_cutout`` of a translation (WCS cards, provenance, 3 HISTORY lines,
  2 extra keywords), checksums included;
* ``fits->fits`` -- read, ``rescale_wcs`` + ``wcs_cards`` onto the same grid, write: the
  per-cutout I/O of a FITS-to-FITS translator, the budget left to its physics being
  ``1 / (target rate per core) - this``;
* ``verify`` -- ``verify_fits`` of an existing output (what a re-run does per output).

``--before REV`` (default: the commit before ``fits_io`` became a package) loads
``survey2survey/fits_io.py`` of that revision from git as a second module and times it on
the same files; ratios are after / before (above 1: slower now).  Run from the
repository root with the package importable (``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from survey2survey import fits_io
from survey2survey.surveys import get_survey

#: The last commit with the byte-level single-file fits_io.
DEFAULT_BEFORE = "8420ecc"


def _load_before(rev: str, where: Path) -> ModuleType | None:
    try:
        text = subprocess.run(["git", "show", f"{rev}:survey2survey/fits_io.py"], capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"no 'before' module ({rev}: {exc}); timing the current one only", file=sys.stderr)
        return None
    path = where / "fits_io_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("fits_io_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _timed(fn, items, repeat: int) -> tuple[float, float]:
    """Per-item seconds of ``fn``: (median over ``items`` of the best of ``repeat`` passes, fastest call).

    The median keeps a pass's figure from the moments other processes took the CPU (a shared
    machine); the fastest call is the cost on an idle core.  One warm-up call comes first.
    """
    fn(items[0])
    best, fastest = float("inf"), float("inf")
    for _ in range(repeat):
        times = []
        for item in items:
            t = time.perf_counter()
            fn(item)
            times.append(time.perf_counter() - t)
        best, fastest = min(best, float(np.median(times))), min(fastest, min(times))
    return best, fastest


def _cases(io: ModuleType, survey, inputs: list[Path], out: Path, data: np.ndarray) -> dict:
    size = survey.cutout_size
    wcs = io.make_wcs(150.0, 2.0, survey.pixel_scale, (size, size))
    cards = io.wcs_cards(wcs)
    prov = io.Provenance(model="bench-model", model_sha256="ab" * 32, method="physics", direction="sdss->cfht",
                         source_file="input/obj0000001.fits", source_survey="sdss", target_survey=survey.name, seed=1,
                         backend="numpy/cpu", noise="yes")
    history = ["s2s translate sdss->cfht (bench)", "F = G + NE in model space (bench)", "converted to native units"]
    extra = [("S2SOBJ", "obj0000001", "object id"), ("S2SNSAMP", 1, "noise realisations")]

    def read(path):
        return io.read_cutout(path, survey)

    def write(path):
        io.write_cutout(out / path.name, data, survey, wcs=cards, provenance=prov, history=history,
                        header_cards=extra, overwrite=True, fsync=False)

    def fits_to_fits(path):
        cut = io.read_cutout(path, survey)
        grid = io.wcs_cards(io.rescale_wcs(cut.wcs, cut.data.shape[1:], cut.data.shape[1:]))
        io.write_cutout(out / path.name, cut.data, survey, wcs=grid, provenance=prov, history=history,
                        header_cards=extra, overwrite=True, fsync=False)

    def verify(path):
        io.verify_fits(out / path.name)

    return {"read": read, "write": write, "fits->fits": fits_to_fits, "verify": verify}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="files per size")
    parser.add_argument("--repeat", type=int, default=3, help="passes (the best one counts)")
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision to compare with ('' for none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        before = _load_before(args.before, root) if args.before else None
        modules = {"after": fits_io} | ({"before": before} if before else {})
        rng = np.random.default_rng(0)
        print(f"{'cutout':<10} {'step':<19} " + " ".join(f"{name + ' ms':>10}" for name in modules)
              + (f" {'after/before':>13}" if before else ""))
        for name in ("cfht", "sdss"):
            survey = get_survey(name)
            size = survey.cutout_size
            data = (rng.standard_normal((survey.n_bands, size, size)) * 0.1).astype(np.float32)
            inputs = []
            for i in range(args.n):  # the inputs: written as s2s writes cutouts (the current writer)
                wcs = fits_io.make_wcs(150.0 + i * 1e-3, 2.0, survey.pixel_scale, (size, size))
                inputs.append(fits_io.write_cutout(root / "in" / name / f"obj{i:07d}.fits", data, survey, wcs=wcs,
                                                   fsync=False))
            cases = {}
            for label, io in modules.items():
                out = root / "out" / label / name
                out.mkdir(parents=True)
                cases[label] = _cases(io, survey, inputs, out, data)
            times: dict = {}
            for step in ("read", "write", "fits->fits", "verify"):
                for _ in range(args.repeat):  # passes alternate between the modules: same machine load
                    for label in modules:
                        med, fast = _timed(cases[label][step], inputs, 1)
                        old_med, old_fast = times.get((label, step), (med, fast))
                        times[(label, step)] = (min(med, old_med), min(fast, old_fast))
            for step in ("read", "write", "fits->fits", "verify"):
                for k, kind in enumerate(("median", "fastest")):
                    cells = " ".join(f"{times[(label, step)][k] * 1e3:>10.3f}" for label in modules)
                    ratio = f" {times[('after', step)][k] / times[('before', step)][k]:>13.2f}" if before else ""
                    print(f"{survey.n_bands}x{size}x{size:<4} {step + ' ' + kind:<19} {cells}{ratio}")
            for k, kind in enumerate(("median", "fastest")):
                per_core = 1.0 / times[("after", "fits->fits")][k]
                print(f"{'':<10} fits->fits I/O alone ({kind}): {per_core:.0f} cutouts/s per core (after)")


if __name__ == "__main__":
    main()
