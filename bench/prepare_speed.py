"""How fast ``prepare_dataset`` ingests FITS cutouts (target: >= 1,000 cutouts/s on 16 cores).

    python bench/prepare_speed.py [--sdss 2000] [--cfht 400] [--workers 1 2 ...] [--regrid]

Writes synthetic cutouts (random noise with a WCS, 5:1 SDSS:CFHT like the paper's sample,
one CFHT cutout in two cross-matched with an SDSS one) to a temporary directory, then times
the dataset build for each worker count and prints, measured: cutouts/s of the ingest
pass (read, check, model space, write to the memory-mapped arrays) and the total time
(plus cross-match, split, row moves, manifest).  The pixel content does not change the
cost of reading, so the inputs are not GalSim galaxies (see bench/simulate_speed.py).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from survey2survey.data import default_workers
from survey2survey.data.prepare import prepare_dataset
from survey2survey.fits_io import make_wcs, write_cutout
from survey2survey.surveys import get_survey


def _write_inputs(root: Path, n_sdss: int, n_cfht: int) -> None:
    rng = np.random.default_rng(0)
    for name, n, offset in (("sdss", n_sdss, 0), ("cfht", n_cfht, 0)):
        survey = get_survey(name)
        size = survey.cutout_size
        sigma = 0.05 / survey.flux_factor * (survey.pixel_scale / 0.396)
        for i in range(n):
            # CFHT object i is SDSS object 2i: half the CFHT cutouts are paired
            k = 2 * i if name == "cfht" else i
            ra, dec = 150.0 + (k % 100) * 40 / 3600, 2.0 + (k // 100) * 40 / 3600
            data = (rng.standard_normal((5, size, size)) * sigma).astype(np.float32)
            write_cutout(root / name / f"obj{k:07d}.fits", data, survey, wcs=make_wcs(ra, dec, survey.pixel_scale,
                                                                                        (size, size)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdss", type=int, default=2000, help="SDSS cutouts")
    parser.add_argument("--cfht", type=int, default=400, help="CFHT cutouts")
    parser.add_argument("--workers", type=int, nargs="*", help="worker counts to try (default: 1 and all cores)")
    parser.add_argument("--regrid", action="store_true", help="also regrid CFHT onto the SDSS grid")
    args = parser.parse_args()
    cores = default_workers()
    counts = args.workers or sorted({1, cores})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        _write_inputs(root, args.sdss, args.cfht)
        print(f"cores available: {cores}; wrote {args.sdss} SDSS + {args.cfht} CFHT cutouts in "
              f"{time.perf_counter() - t:.1f} s")
        for workers in counts:
            result = prepare_dataset([root / "sdss"], [root / "cfht"], root / f"ds{workers}", workers=workers,
                                     regrid=args.regrid)
            n = args.sdss + args.cfht
            c = result.counts
            print(f"workers={workers}: ingest {result.cutouts_per_second:,.0f} cutouts/s "
                  f"({n} cutouts in {result.ingest_seconds:.2f} s), total {result.seconds:.2f} s; "
                  f"pairs {c['train'] + c['test']}, regrid={'on' if args.regrid else 'off'}")


if __name__ == "__main__":
    main()
