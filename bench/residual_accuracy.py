"""A learned model against the physics translation, both ways, on fresh simulated pairs with truth.

    python bench/residual_accuracy.py --model models/sdss-cfht-phys --n 200
    python bench/residual_accuracy.py --model runs/m --n 200 --seed 5000 --population realistic

What is measured: ``experiments/against_physics.py``.  Model and physics in the same run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=5000, help="simulation seed (not a training seed)")
    parser.add_argument("--population", default="realistic", help="simulator population (default realistic)")
    args = parser.parse_args(argv)
    from experiments.against_physics import compare, report, simulate_pairs
    from survey2survey.model import load_model

    model = load_model(args.model)
    print(f"model {args.model}; {args.n} pairs, population {args.population}, seed {args.seed}")
    print(report(compare(model, simulate_pairs(args.n, args.seed, args.population), args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
