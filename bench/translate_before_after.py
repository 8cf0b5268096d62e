"""``s2s translate`` of one source tree against another, in one run: speed ratio and identical data.

    python bench/translate_before_after.py --old OLD_TREE [--n 200] [--rounds 3]

``OLD_TREE`` is a checkout of the earlier version (``git worktree add /tmp/old <commit>``);
the new one is this repository.  Both translate the same inputs with the command line
(``python -m survey2survey translate``, CPU, fp32, the shipped model, seed 0), one after
the other, ``--rounds`` times in alternation, so that a shared machine's load falls on
both alike.  Inputs: the 8 example cutouts of each survey copied under new names up to
``--n``.  Reports, per direction, the best and median cutouts/s of each tree and their
ratio (new / old), the least CPU time (all processes) of each and its ratio, and checks that every output's data (all HDUs) are the same bytes.
"""

from __future__ import annotations

import argparse
import os
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


def run(tree: Path, inputs: Path, target: str, out: Path, python: str) -> tuple[float, float]:
    """Wall and CPU seconds (all processes) of one ``s2s translate`` run, process start and
    model load included.  On a shared machine the CPU time is the steadier of the two."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [python, "-m", "survey2survey", "translate", str(inputs), "--to", target, "--out", str(out),
           "--device", "cpu", "--precision", "fp32", "--seed", "0", "--quiet", "--model", str(tree / "models" / "sdss-cfht")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: s2s translate failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds, cpu


def same_data(a: Path, b: Path) -> tuple[int, list[str]]:
    """Number of output files compared, and those whose data differ."""
    from astropy.io import fits

    names = sorted(p.relative_to(a) for p in a.rglob("*.fits"))
    differ = []
    for name in names:
        with fits.open(a / name) as ha, fits.open(b / name) as hb:
            if len(ha) != len(hb) or any(
                (x.data is None) != (y.data is None) or (x.data is not None and not np.array_equal(x.data, y.data))
                for x, y in zip(ha, hb)
            ):
                differ.append(str(name))
    missing = sorted({str(p.relative_to(b)) for p in b.rglob("*.fits")} ^ {str(n) for n in names})
    return len(names), differ + missing


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", type=Path, required=True, help="source tree of the earlier version")
    p.add_argument("--n", type=int, default=200, help="input cutouts per direction")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--directions", default="sdss->cfht,cfht->sdss")
    p.add_argument("--python", default=sys.executable)
    args = p.parse_args(argv)
    old = args.old.resolve()
    print(f"s2s translate, {args.n} cutouts, CPU fp32, {os.cpu_count()} cores, {args.rounds} rounds; old {old.name}, new {NEW.name}")
    status = 0
    for direction in args.directions.split(","):
        src, tgt = direction.split("->")
        with tempfile.TemporaryDirectory(prefix="s2s-before-after-") as tmp:
            tmp = Path(tmp)
            inputs = make_inputs(tmp, src, args.n)
            times: dict[str, list[float]] = {"old": [], "new": []}
            cpus: dict[str, list[float]] = {"old": [], "new": []}
            for r in range(args.rounds):
                for label, tree in (("old", old), ("new", NEW)):
                    wall, cpu = run(tree, inputs, tgt, tmp / f"out-{label}-{r}", args.python)
                    times[label].append(wall)
                    cpus[label].append(cpu)
            n_files, differ = same_data(tmp / "out-old-0", tmp / "out-new-0")
            rates = {k: [args.n / s for s in v] for k, v in times.items()}
            best = {k: max(v) for k, v in rates.items()}
            median = {k: statistics.median(v) for k, v in rates.items()}
            cpu = {k: min(v) for k, v in cpus.items()}
            print(f"\n{direction}:")
            for k in ("old", "new"):
                print(f"  {k}: best {best[k]:6.1f} cutouts/s, median {median[k]:6.1f}  ({', '.join(f'{x:.1f}' for x in rates[k])}); "
                      f"least CPU {cpu[k]:.1f} s")
            print(f"  ratio new/old: wall best {best['new'] / best['old']:.3f}, median {median['new'] / median['old']:.3f}; "
                  f"CPU time old/new {cpu['old'] / cpu['new']:.3f}")
            print(f"  data: {n_files} files compared, {len(differ)} differ" + (f" ({', '.join(differ[:5])})" if differ else ""))
            status |= bool(differ)
    return status


if __name__ == "__main__":
    sys.exit(main())
