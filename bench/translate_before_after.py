"""``s2s translate`` of one source tree against another, in one run: speed ratio and identical outputs.

    python bench/translate_before_after.py --old OLD_TREE [--n 200] [--rounds 3]
    python bench/translate_before_after.py --old OLD_TREE --model physics --n 1000 --workers 2

``OLD_TREE`` is a checkout of the earlier version (``git worktree add /tmp/old <commit>``);
the new one is this repository.  Both translate the same inputs with the command line
(``python -m survey2survey translate``, CPU, seed 0; the shipped model in fp32, or
``--model physics``), one after the other, ``--rounds`` times in alternation, so that a
shared machine's load falls on both alike.  Inputs: the 8 example cutouts of each survey
copied under new names up to ``--n``.  Reports, per direction, the best and median
cutouts/s of each tree and their ratio (new / old): the rate the command itself reports
(its pipeline: process start and imports left out) and the wall rate of the whole
command; the least CPU time (all processes) of each and its ratio; and checks that every
output's data (all HDUs) are the same bytes and its header cards the same, but for the
date written (``S2SDATE``, and the checksums and their dated comments, which follow it).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NEW = Path(__file__).resolve().parents[1]


def make_inputs(root: Path, survey: str, n: int) -> Path:
    """``n`` copies of the example cutouts of ``survey`` under new object names."""
    examples = sorted((NEW / "survey2survey" / "examples" / survey).glob("*.fits"))
    out = root / f"in-{survey}"
    out.mkdir(parents=True)
    for i in range(n):
        shutil.copyfile(examples[i % len(examples)], out / f"obj{i:05d}.fits")
    return out


def run(tree: Path, inputs: Path, target: str, out: Path, python: str, model: str,
        workers: int | None) -> tuple[float, float, float]:
    """Wall and CPU seconds (all processes) of one ``s2s translate`` run, process start and
    model load included, and the cutouts/s the command reports (its pipeline alone).  On a
    shared machine the CPU time is the steadier of the two."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [python, "-m", "survey2survey", "translate", str(inputs), "--to", target, "--out", str(out), "--seed", "0",
           "--quiet"]
    if model == "physics":
        cmd += ["--model", "physics"]
    else:
        cmd += ["--device", "cpu", "--precision", "fp32", "--model", str(tree / "models" / "sdss-cfht")]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: s2s translate failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    said = re.search(r"([0-9.]+) cutouts/s", done.stdout)
    return seconds, cpu, float(said.group(1)) if said else float("nan")


#: Header keywords that differ between two runs of the same translation: the date written,
#: and the checksums that cover it (their comments carry the date too).
DATED = ("S2SDATE", "CHECKSUM", "DATASUM")


def _cards(header) -> list[tuple]:
    return [(c.keyword, c.value, c.comment) for c in header.cards if c.keyword not in DATED]


def same_data(a: Path, b: Path) -> tuple[int, list[str], list[str]]:
    """Number of output files compared, those whose data differ (or that only one run wrote),
    and those whose header cards differ (but for :data:`DATED`)."""
    from astropy.io import fits

    names = sorted(p.relative_to(a) for p in a.rglob("*.fits"))
    differ, headers = [], []
    for name in names:
        with fits.open(a / name) as ha, fits.open(b / name) as hb:
            if len(ha) != len(hb) or any(
                x.data.tobytes() != y.data.tobytes() if x.data is not None and y.data is not None
                else (x.data is None) != (y.data is None)
                for x, y in zip(ha, hb)
            ):
                differ.append(str(name))
            if any(_cards(x.header) != _cards(y.header) for x, y in zip(ha, hb)):
                headers.append(str(name))
    missing = sorted({str(p.relative_to(b)) for p in b.rglob("*.fits")} ^ {str(n) for n in names})
    return len(names), differ + missing, headers


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", type=Path, required=True, help="source tree of the earlier version")
    p.add_argument("--n", type=int, default=200, help="input cutouts per direction")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--directions", default="sdss->cfht,cfht->sdss")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--model", default="shipped", choices=("shipped", "physics"),
                   help="the shipped learned model (CPU, fp32) or --model physics")
    p.add_argument("--workers", type=int, help="--workers of both commands (default: the command's)")
    args = p.parse_args(argv)
    old = args.old.resolve()
    what = "--model physics" if args.model == "physics" else "shipped model, CPU fp32"
    print(f"s2s translate, {args.n} cutouts, {what}, {os.cpu_count()} cores, workers "
          f"{'default' if args.workers is None else args.workers}, {args.rounds} rounds; old {old.name}, new {NEW.name}")
    status = 0
    for direction in args.directions.split(","):
        src, tgt = direction.split("->")
        with tempfile.TemporaryDirectory(prefix="s2s-before-after-") as tmp:
            tmp = Path(tmp)
            inputs = make_inputs(tmp, src, args.n)
            times: dict[str, list[float]] = {"old": [], "new": []}
            cpus: dict[str, list[float]] = {"old": [], "new": []}
            said: dict[str, list[float]] = {"old": [], "new": []}
            for r in range(args.rounds):
                for label, tree in (("old", old), ("new", NEW)):
                    wall, cpu, rate = run(tree, inputs, tgt, tmp / f"out-{label}-{r}", args.python, args.model,
                                          args.workers)
                    times[label].append(wall)
                    cpus[label].append(cpu)
                    said[label].append(rate)
                    if r:
                        shutil.rmtree(tmp / f"out-{label}-{r}")  # keep the disk's state alike for both
            n_files, differ, headers = same_data(tmp / "out-old-0", tmp / "out-new-0")
            walls = {k: [args.n / s for s in v] for k, v in times.items()}
            cpu = {k: min(v) for k, v in cpus.items()}
            print(f"\n{direction}:")
            for name, rates in (("pipeline", said), ("wall", walls)):
                best = {k: max(v) for k, v in rates.items()}
                median = {k: statistics.median(v) for k, v in rates.items()}
                for k in ("old", "new"):
                    print(f"  {name:<8} {k}: best {best[k]:6.1f} cutouts/s, median {median[k]:6.1f}  "
                          f"({', '.join(f'{x:.1f}' for x in rates[k])})")
                print(f"  {name:<8} ratio new/old: best {best['new'] / best['old']:.3f}, "
                      f"median {median['new'] / median['old']:.3f}")
            print(f"  least CPU time (all processes): old {cpu['old']:.1f} s, new {cpu['new']:.1f} s, "
                  f"old/new {cpu['old'] / cpu['new']:.3f}")
            print(f"  outputs: {n_files} files compared, data differ in {len(differ)}"
                  + (f" ({', '.join(differ[:5])})" if differ else "")
                  + f", header cards (but {'/'.join(DATED)}) differ in {len(headers)}"
                  + (f" ({', '.join(headers[:5])})" if headers else ""))
            status |= bool(differ or headers)
    return status


if __name__ == "__main__":
    sys.exit(main())
