"""How fast the GalSim survey pair renders and writes (target: >= 200 pairs/s on 16 cores).

    python bench/simulate_speed.py [--pairs 200] [--workers 1 2 ...] [--psf kolmogorov]
                                   [--population default realistic]

Prints, measured on this machine: the render time of one pair in this process (10 draws:
5 SDSS bands + 5 CFHT bands, no I/O), then for each worker count the end-to-end rate of
``simulate_survey_pair`` (render, 4 FITS files per pair written atomically, tables) in
pairs/s, for each population named (the ``realistic`` preset adds field stars and varied
bulges).  Output goes to a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from survey2survey.data import default_workers
from survey2survey.data.simulate import POPULATIONS, SimulationConfig, simulate_object, simulate_survey_pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200, help="paired galaxies per run")
    parser.add_argument("--workers", type=int, nargs="*", help="worker counts to try (default: 1 and all cores)")
    parser.add_argument("--psf", default="kolmogorov", choices=("kolmogorov", "moffat"))
    parser.add_argument("--population", nargs="*", default=["default"], choices=sorted(POPULATIONS),
                        help="galaxy populations to time, one after the other in this run")
    args = parser.parse_args()
    cores = default_workers()
    counts = args.workers or sorted({1, cores})

    print(f"cores available: {cores}; psf: {args.psf}")
    for population in args.population:
        config = SimulationConfig.for_population(population, n_paired=args.pairs, seed=123, psf=args.psf)
        for i in range(5):  # GalSim's first draws build lookup tables (one per bulge index)
            simulate_object(config, i)
        n = min(50, args.pairs)
        t = time.perf_counter()
        for i in range(n):
            simulate_object(config, i)
        per_pair = (time.perf_counter() - t) / n
        print(f"[{population}] render only, 1 process: {per_pair * 1e3:.1f} ms per pair (10 draws) "
              f"= {1 / per_pair:.1f} pairs/s")
        for workers in counts:
            with tempfile.TemporaryDirectory() as tmp:
                result = simulate_survey_pair(config, Path(tmp) / "sim", workers=workers)
            print(f"[{population}] workers={workers}: {args.pairs / result.seconds:.1f} pairs/s end to end "
                  f"({args.pairs} pairs, {result.n_files} FITS files, {result.seconds:.1f} s)")


if __name__ == "__main__":
    main()
