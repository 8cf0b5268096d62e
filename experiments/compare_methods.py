"""The method comparison of docs/results.md in one command: prepare, train, translate, evaluate.

    python -m experiments.compare_methods --dataset DATASET_DIR --out RUN_DIR \\
        [--methods ours,pix2pix,...] [--iterations N] [--batch-size B] [--lr LR] \\
        [--device auto] [--band r] [--seed S] [--ours-budget per-step|split] \\
        [--simulate N_PAIRS --unpaired N [--n-test T] [--sim-seed 2026]]

    # tiny CPU check (a few minutes on 2 cores)
    python -m experiments.compare_methods --simulate 24 --unpaired 24 --dataset runs/sim-tiny \\
        --out runs/compare-tiny --methods ours,aecnn,pix2pix --iterations 4 --batch-size 2

(from the repository root, which makes ``experiments`` and, unless installed, ``survey2survey``
importable).

The protocol (docs/results.md): one dataset, every method trained with the same budget and
seed, the same held-out test pairs translated by each model both ways, and ONE evaluation
per direction with every method, so that tables and plots overlay the methods.  Every step
is a call of the toolkit's public library -- :func:`survey2survey.data.build.prepare`,
:func:`survey2survey.train.train`, :func:`survey2survey.pipelines.translate.translate`,
:func:`survey2survey.evaluate.evaluate` -- and is listed in ``RUN_DIR/results.md`` as the
``s2s`` command that does the same, so the run can be reproduced from the command line.

Steps and what they write under ``RUN_DIR``:

1. *(with --simulate)* ``s2s prepare --simulate N ... --regrid --out DATASET_DIR``: a GalSim
   survey pair with its noise-free truth; the dataset is then ``DATASET_DIR/dataset``.
   Skipped when that simulation is already there.
2. ``test/<survey>/`` and, for a simulated dataset, ``test/truth/<survey>/``: the held-out
   test pairs (:meth:`~survey2survey.data.loader.PreparedDataset.test_pairs`).  Their FITS
   files are hard links to (or copies of) the cutouts the dataset was built from
   (:func:`~survey2survey.data.loader.source_paths`; for a simulation its truth is
   ``SIMDIR/truth/<survey>/<id>.fits``), else they are written from the dataset's
   ``test_*`` arrays (native units, WCS from the pair's position); without a simulation
   there is no truth, and the photometry and noise metrics are left out.
3. ``models/<method>/`` (one-way methods: ``models/<method>/<a>-to-<b>/``, one per
   direction, each with the full budget): training.  A model that is complete for this
   budget is skipped; an interrupted one is continued with ``resume`` (from its last
   checkpoint; ``--checkpoint-every`` sets how often one is written); so re-running the
   same command resumes the comparison.  Wall times are kept in ``state.json``.
4. ``pred/<method>/<survey>/``: the test cutouts translated both ways with seed 1 (redone
   each time: translation is cheap next to training).
5. ``eval/<a>-to-<b>/``: one evaluation of every method against ``test/<b>`` [with
   ``test/truth/<b>``] in ``--band``: metrics.json, per_image.csv and the plots.
6. ``results.md`` and ``results.json``: a table per direction (and band) of the key
   metrics, median +- spread (sigma_MAD) as the evaluation reports them, the budget, wall
   times, the equivalent commands and links to the plots.

The budget of ``ours``, which trains in two steps: ``--iterations`` is the budget of one
training run, as ``s2s train --iterations`` means "iterations per step".  With
``--ours-budget per-step`` (default, the paper's recipe: 60,000 iterations per step for
every method) ``ours`` runs N iterations in step 1 and N in step 2, i.e. 2N in all; with
``split`` it runs N/2 + N/2.  One-way methods (pix2pix, aecnn) get N iterations per
direction.  The choice is stated in results.md.  ``--lr`` is given to the Adam methods
only: aecnn keeps its Adadelta learning rate (1.0) unless ``--lr-aecnn`` is given.

Exit code 0 when every step succeeded, 1 when some method failed (the others are still
evaluated; the failures are listed in results.md), 2 on misuse.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, NoReturn

from experiments.compare_report import TRANSLATE_SEED, budget_of, budget_sentence, collect, model_config, write_results
from survey2survey.data.loader import PreparedDataset, open_dataset, source_paths
from survey2survey.errors import S2SError, UsageError
from survey2survey.methods import get_method, method_names




# --- the steps, logged as the commands that do the same -----------------------------------------


class Log:
    """Times each library call and keeps it as the equivalent ``s2s`` command line.

    The command keeps the paths as the user gave them (relative paths stay relative), so
    that results.md can be copied and re-run from the same directory.
    """

    def __init__(self):
        self.entries: list[dict] = []  # every step of this invocation

    @staticmethod
    def shown(args: list) -> str:
        return shlex.join(["s2s", *(str(a) for a in args)])

    def __call__(self, args: list, what: str, call: Callable[[], Any]) -> tuple[int, Any]:
        """Run ``call``; exit code 0 (done), 1 (done, some inputs failed: ``exit_code``) or 2 (refused)."""
        shown = self.shown(args)
        print(f"\n$ {shown}", flush=True)
        t0 = time.perf_counter()
        result, rc = None, 2
        try:
            result = call()
            rc = int(getattr(result, "exit_code", 0) or 0)
        except S2SError as exc:
            print(f"  {what}: {exc}", flush=True)
            rc = exc.exit_code
        seconds = time.perf_counter() - t0
        print(f"  [{what}: exit {rc}, {seconds:.1f} s]", flush=True)
        self.entries.append({"what": what, "command": shown, "exit": rc, "seconds": round(seconds, 2)})
        return rc, result


def fail(message: str) -> NoReturn:
    """Stop on misuse or an unusable input (exit 2, as ``s2s`` does), before more work is done."""
    print(f"compare_methods: error: {message}", file=sys.stderr)
    raise SystemExit(2)


# --- dataset and test set -------------------------------------------------------------------


def prepare_simulation(args, log: Log, state: dict) -> Path:
    """Simulate into ``--dataset`` and prepare its dataset, unless that simulation is already there."""
    from survey2survey.data.build import prepare

    sim_dir = Path(args.dataset)
    if sim_dir.name == "dataset" and not (sim_dir / "simulation.json").exists():
        sim_dir = sim_dir.parent  # given SIMDIR/dataset: prepare writes SIMDIR/dataset itself
    unp_a = args.unpaired if args.unpaired_a is None else args.unpaired_a
    unp_b = args.unpaired if args.unpaired_b is None else args.unpaired_b
    cmd = ["prepare", "--simulate", args.simulate]
    cmd += ["--unpaired-a", unp_a] if unp_a is not None else []
    cmd += ["--unpaired-b", unp_b] if unp_b is not None else []
    cmd += ["--n-test", args.n_test] if args.n_test is not None else []
    cmd += ["--regrid", "--seed", args.sim_seed, "--out", sim_dir]  # --regrid: cyclegan, augcgan need it
    cmd += ["-j", args.workers] if args.workers else []
    if (sim_dir / "dataset" / "dataset.json").exists():
        made = _simulation_config(sim_dir)
        if made is None:
            fail(f"{sim_dir}: a dataset that is not a simulation is there; leave out --simulate")
        from survey2survey.data.simulate import EARLIER_VALUES

        made = EARLIER_VALUES | made  # a simulation without a later key had that key's earlier value
        want = {"n_paired": args.simulate, "seed": args.sim_seed, "n_unpaired_a": unp_a, "n_unpaired_b": unp_b,
                "source_noise": True}  # what --simulate makes now
        differ = {k: (made.get(k), v) for k, v in want.items() if v is not None and made.get(k) != v}
        if differ:
            fail(f"{sim_dir}: holds another simulation ({differ}, as (there, asked)); "
                 "give another --dataset or leave out --simulate")
        print(f"{sim_dir}: the simulation and its dataset are there already; not re-made")
        state.setdefault("prepare", {"command": log.shown(cmd), "seconds": None})  # what made it
        return sim_dir / "dataset"
    rc, _ = log(cmd, "prepare", lambda: prepare(
        sim_dir, simulate=args.simulate, unpaired_a=unp_a, unpaired_b=unp_b, n_test=args.n_test, regrid=True,
        seed=args.sim_seed, workers=args.workers, progress=not args.quiet))  # fmt: skip
    if rc not in (0, 1):  # 1: some cutouts refused (listed), the dataset is made
        sys.exit(f"prepare failed (exit {rc})")
    state["prepare"] = {"command": log.entries[-1]["command"], "seconds": log.entries[-1]["seconds"]}
    return sim_dir / "dataset"


def _simulation_config(sim_dir: Path) -> dict | None:
    """The configuration a simulation directory was made with (its ``simulation.json``), or None."""
    try:
        return dict(json.loads((sim_dir / "simulation.json").read_text(encoding="utf-8"))["config"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resolve_dataset(path: str | Path) -> PreparedDataset:
    """The prepared dataset: ``path`` itself or, for a simulation dir, path/dataset."""
    p = Path(path)
    for cand in (p, p / "dataset"):
        if (cand / "dataset.json").exists():
            try:
                return open_dataset(cand)
            except UsageError as exc:
                fail(str(exc))
    fail(f"{p}: no dataset.json there nor in {p / 'dataset'} (run s2s prepare, or give --simulate N)")


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard link (no space, survives moving RUN_DIR), else a copy (another file system)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_test_set(ds: PreparedDataset, out: Path) -> dict:
    """Materialise the held-out test pairs as FITS under ``out`` (= RUN_DIR/test).

    Returns ``{"surveys": {"a": name, "b": name}, "n": pairs, "truth": bool, "source": how}``,
    also written as ``out/test.json``; an existing ``out`` made from the same dataset is
    reused, one made from another dataset is refused.
    """
    marker = out / "test.json"
    if marker.exists():
        made = json.loads(marker.read_text())
        if made.get("fingerprint") != ds.fingerprint:
            fail(f"{out}: test set of another dataset (fingerprint {made.get('fingerprint', '?')[:12]}...); "
                 "use another --out")
        print(f"{out}: {made['n']} test pairs already there ({made['source']})")
        return made
    try:
        pairs = ds.test_pairs()
    except UsageError as exc:
        fail(str(exc))
    if not pairs:
        fail(f"{ds.root}: no test pairs (s2s prepare --n-test)")
    sim_dir = ds.root.parent
    simulated = _simulation_config(sim_dir) is not None
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)

    def sources(row: dict) -> list[Path] | None:
        files = source_paths(ds, row)
        return files if all(f.is_file() for f in files) else None

    found = {d: [sources(p[d]) for p in pairs] for d in "ab"}
    from_files = all(f is not None for d in "ab" for f in found[d])
    listing = []
    for k, pair in enumerate(pairs):
        entry = {}
        for d in "ab":
            survey, row = ds.surveys[d], pair[d]
            if from_files:
                for f in found[d][k]:
                    _link_or_copy(f, tmp / survey.name / f.name)
                entry[survey.name] = ";".join(f.name for f in found[d][k])
            else:
                entry[survey.name] = _write_from_array(ds, d, k, row, tmp / survey.name)
            if simulated:  # the simulation's documented layout: SIMDIR/truth/<survey>/<id>.fits
                truth = sim_dir / "truth" / survey.name / f"{row['id']}.fits"
                if not truth.is_file():
                    fail(f"{truth}: truth file of a test object missing")
                _link_or_copy(truth, tmp / "truth" / survey.name / truth.name)
        listing.append(entry)
    made = {
        "dataset": str(ds.root),
        "fingerprint": ds.fingerprint,
        "surveys": {d: ds.surveys[d].name for d in "ab"},
        "n": len(pairs),
        "truth": simulated,
        "source": "links to the dataset's input FITS files" if from_files
        else "written from the dataset's test arrays (input files not found)",
        "files": listing,
    }
    (tmp / "test.json").write_text(json.dumps(made, indent=1) + "\n")
    if out.exists():
        shutil.rmtree(out)  # a half-made test set without its marker
    tmp.rename(out)
    print(f"{out}: {len(pairs)} test pairs ({made['source']}{', with truth' if simulated else ', no truth'})")
    return made


def _write_from_array(ds: PreparedDataset, domain: str, index: int, row: dict, folder: Path) -> str:
    """Test pair ``index`` of the dataset's arrays back to a native-unit FITS cube with a WCS."""
    import numpy as np

    from survey2survey.fits_io import make_wcs, write_cutout
    from survey2survey.surveys import to_native

    survey = ds.surveys[domain]
    data = to_native(np.asarray(ds.arrays[f"test_{domain}"][index]), survey)
    wcs = make_wcs(float(row["ra"]), float(row["dec"]), survey.pixel_scale, data.shape[-2:])
    name = f"{row['id']}.fits"
    write_cutout(folder / name, data, survey, wcs=wcs, fsync=False,
                 history=[f"test pair {index} of dataset {ds.fingerprint[:16]} (from its arrays)"])
    return name


# --- training -------------------------------------------------------------------------------


def model_runs(methods: list[str], surveys: dict) -> list[dict]:
    """One entry per training run: two-way methods once, one-way methods once per direction."""
    a, b = surveys["a"], surveys["b"]
    runs = []
    for m in methods:
        cls = get_method(m)
        if cls.one_way:
            for src, dst in ((a, b), (b, a)):
                runs.append({"method": m, "key": f"{m} {src}->{dst}", "dir": Path(m) / f"{src}-to-{dst}",
                             "direction": f"{src}->{dst}", "steps": cls.steps, "regridded": cls.regridded})
        else:
            runs.append({"method": m, "key": m, "dir": Path(m), "direction": None,
                         "steps": cls.steps, "regridded": cls.regridded})
    return runs


def iterations_per_step(args, run: dict) -> int:
    multi = len(run["steps"]) > 1
    return args.iterations // len(run["steps"]) if multi and args.ours_budget == "split" else args.iterations


def train_status(model_dir: Path, run: dict, iterations: int, args) -> str:
    """What to do with ``model_dir``: "complete", "resume", "fresh", or "stale: why".

    complete: the model says every step ran exactly ``iterations`` with this batch size
    and seed; resume: checkpoints to continue from (an interrupted run, or a finished one
    with fewer iterations, which ``resume`` extends); fresh: nothing there; stale: a model
    that does not fit this budget, which is not overwritten.
    """
    from survey2survey.train import list_checkpoints

    cfg = model_config(model_dir)
    keys = [f"step{s}" for s in run["steps"]] if run["steps"] != (None,) else ["train"]
    if cfg is not None:
        if cfg.get("dataset_fingerprint") not in (None, args.fingerprint):
            return "stale: a model of another dataset"
        done = cfg.get("steps", {})
        for k in keys:
            opts = done.get(k, {}).get("options", {})
            if opts and (opts.get("batch_unpaired"), opts.get("seed")) != (args.batch_size, args.seed):
                return (f"stale: {k} was trained at batch {opts.get('batch_unpaired')}, seed {opts.get('seed')} "
                        f"(asked: {args.batch_size}, {args.seed})")
            if done.get(k, {}).get("iterations", 0) > iterations:
                return f"stale: {k} has {done[k]['iterations']} iterations, more than the {iterations} asked"
        if cfg.get("method") == run["method"] and all(done.get(k, {}).get("iterations", 0) == iterations for k in keys):
            return "complete"
    run_dirs = [model_dir / "train" / (f"step{s}" if s is not None else "") for s in run["steps"]]
    if any(list_checkpoints(d) for d in run_dirs):
        return "resume"
    return "fresh"


def train_options(args, run: dict, iterations: int, resume: bool) -> tuple[list, Any]:
    """The ``s2s train`` arguments (after DATASET) and the :class:`~survey2survey.train.TrainOptions` of a run."""
    from survey2survey.train import TrainOptions

    lr = args.lr_aecnn if run["method"] == "aecnn" else args.lr
    opts = TrainOptions(method=run["method"], iterations=iterations, batch_unpaired=args.batch_size,
                        batch_paired=args.batch_size, seed=args.seed, device=args.device, direction=run["direction"],
                        lr=lr, lr_decay_every=args.lr_decay_every, resume=resume, progress=not args.quiet)  # fmt: skip
    cmd = ["--method", run["method"], "--iterations", iterations, "--batch-size", args.batch_size,
           "--seed", args.seed, "--device", args.device]  # fmt: skip
    cmd += ["--direction", run["direction"]] if run["direction"] else []
    cmd += ["--lr", lr] if lr is not None else []
    cmd += ["--lr-decay-every", args.lr_decay_every] if args.lr_decay_every is not None else []
    if args.checkpoint_every is not None:
        opts.checkpoint_every = args.checkpoint_every
        cmd += ["--checkpoint-every", args.checkpoint_every]
    if args.compile is not None:  # short GPU runs: compiling each method's networks can cost more than it saves
        opts.compile = args.compile
        cmd += ["--compile", args.compile]
    cmd += ["--resume"] if resume else []  # continues from the last checkpoint (or extends a finished run)
    return cmd, opts


def train_all(args, ds: PreparedDataset, runs: list[dict], log: Log, state: dict, out: Path) -> dict:
    """Train every run not yet complete; returns {key: "ok" | "ok (trained earlier)" | "failed: ..."}."""
    from survey2survey.train import train

    status = {}
    trained = state.setdefault("train", {})
    for r in runs:
        model_dir = out / "models" / r["dir"]
        its = iterations_per_step(args, r)
        how = train_status(model_dir, r, its, args)
        if how == "complete":
            print(f"\n{r['key']}: trained already ({model_dir}), skipped")
            status[r["key"]] = "ok (trained earlier)"
            continue
        if how.startswith("stale"):
            status[r["key"]] = f"failed: {model_dir} holds {how[7:]}; use another --out"
        elif r["regridded"] and not ds.regridded:
            status[r["key"]] = "failed: the dataset has no regridded arrays (s2s prepare --regrid)"
        if r["key"] in status:
            print(f"\n{r['key']}: {status[r['key']][8:]}")
            continue
        cmd, opts = train_options(args, r, its, resume=how == "resume")
        cmd = ["train", ds.root, *cmd, "--out", model_dir]
        entry = trained.setdefault(r["key"], {"commands": [], "wall_s": 0.0})
        t0 = time.perf_counter()
        try:
            rc, _ = log(cmd, f"train {r['key']}", lambda: train(ds.root, model_dir, opts))
        finally:  # also when stopped (SIGTERM, Ctrl-C): a resumed run's wall time adds up
            entry["commands"].append(log.shown(cmd))
            entry["wall_s"] = round(entry["wall_s"] + time.perf_counter() - t0, 1)
            save_state(out, state)
        status[r["key"]] = "ok" if rc == 0 else f"failed: training exit {rc}"
    return status


# --- translation and evaluation -------------------------------------------------------------


def translate_all(args, runs: list[dict], status: dict, surveys: dict, log: Log, out: Path) -> dict:
    """Translate the test set both ways with every trained model.

    Returns ``{direction "a->b": {method: (prediction dir, backend)}}`` for the translations that worked.
    """
    from survey2survey.pipelines.translate import translate

    preds: dict[str, dict[str, tuple[Path, str]]] = {}
    for src, dst in ((surveys["a"], surveys["b"]), (surveys["b"], surveys["a"])):
        direction = f"{src}->{dst}"
        preds[direction] = {}
        for r in runs:
            if r["direction"] not in (None, direction) or status[r["key"]].startswith("failed"):
                continue
            model_dir, pred_dir, inputs = out / "models" / r["dir"], out / "pred" / r["method"] / dst, out / "test" / src
            cmd = ["translate", inputs, "--to", dst, "--model", model_dir, "--out", pred_dir,
                   "--seed", TRANSLATE_SEED, "--device", args.device, "--overwrite"]  # fmt: skip
            rc, report = log(cmd, f"translate {r['method']} {direction}", lambda: translate(
                [str(inputs)], dst, model_dir=model_dir, out_dir=pred_dir, seed=TRANSLATE_SEED, device=args.device,
                overwrite=True))  # fmt: skip
            if rc in (0, 1):  # 1: some inputs failed (named); the evaluation reports what is missing
                preds[direction][r["method"]] = (pred_dir, report.backend)
            else:
                status.setdefault(f"translate {r['method']} {direction}", f"failed: exit {rc}")
    return preds


def evaluate_all(args, preds: dict, test: dict, log: Log, out: Path) -> dict:
    """One evaluation per direction with every method; returns {direction: Evaluation}."""
    from survey2survey.evaluate import evaluate

    evaluations = {}
    for direction, by_method in preds.items():
        if not by_method:
            continue
        src, dst = direction.split("->")
        report, ref = out / "eval" / f"{src}-to-{dst}", out / "test" / dst
        truth = out / "test" / "truth" / dst if test["truth"] else None
        cmd = ["evaluate"] + [x for m, (d, _) in by_method.items() for x in ("--pred", f"{m}={d}")] + ["--ref", ref]
        cmd += ["--truth", truth] if truth is not None else []
        cmd += ["--band", args.band, "--out", report]
        rc, ev = log(cmd, f"evaluate {direction}", lambda: evaluate(
            {m: [str(d)] for m, (d, _) in by_method.items()}, [str(ref)], [str(truth)] if truth else None,
            band=args.band, out=report))  # fmt: skip
        if rc in (0, 1) and ev is not None:
            evaluations[direction] = (report, ev)
    return evaluations


# --- state ----------------------------------------------------------------------------------


def load_state(out: Path) -> dict:
    try:
        return json.loads((out / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def save_state(out: Path, state: dict) -> None:
    tmp = out / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    tmp.replace(out / "state.json")


# --- main -----------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, metavar="DIR",
                   help="prepared dataset (or a simulation dir holding DIR/dataset); with --simulate: "
                        "the simulation directory to make")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (models, predictions, reports)")
    p.add_argument("--methods", default=",".join(method_names()),
                   help="comma-separated (default: all ten, in the paper's order)")
    p.add_argument("--iterations", type=int, default=20000, metavar="N", help="iterations of every training run (default 20000)")
    p.add_argument("--batch-size", type=int, default=24, metavar="B", help="s2s train --batch-size (default 24)")
    p.add_argument("--lr", type=float, metavar="LR", help="learning rate of the Adam methods (default: s2s train's, 1e-4)")
    p.add_argument("--lr-aecnn", type=float, metavar="LR", help="learning rate of aecnn's Adadelta (default: s2s train's, 1.0)")
    p.add_argument("--lr-decay-every", type=int, metavar="N", help="s2s train --lr-decay-every (default: s2s train's, 20000)")
    p.add_argument("--ours-budget", choices=["per-step", "split"], default="per-step",
                   help="ours: --iterations in each of its two steps (default; the paper's recipe), or split over them")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help="s2s train --checkpoint-every (default: s2s train's, 5000)")
    p.add_argument("--compile", choices=["auto", "yes", "no"], help="s2s train --compile (default: s2s train's, auto)")
    p.add_argument("--device", default="auto", help="s2s train/translate --device (default auto)")
    p.add_argument("--band", default="r", help="s2s evaluate --band (default r; 'all' for every band)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="s2s train --seed (default 0)")
    p.add_argument("--quiet", action=argparse.BooleanOptionalAction, default=None,
                   help="no progress bars (default: when stdout is not a terminal)")
    g = p.add_argument_group("simulated dataset (s2s prepare --simulate ... --regrid)")
    g.add_argument("--simulate", type=int, metavar="N_PAIRS", help="simulate N pairs into --dataset first")
    g.add_argument("--unpaired", type=int, metavar="N", help="unpaired galaxies per survey (default: N_PAIRS)")
    g.add_argument("--unpaired-a", type=int, metavar="N", help="... of survey a only (overrides --unpaired)")
    g.add_argument("--unpaired-b", type=int, metavar="N", help="... of survey b only (overrides --unpaired)")
    g.add_argument("--n-test", type=int, metavar="N", help="test pairs (default: s2s prepare's, half the pairs)")
    g.add_argument("--sim-seed", type=int, default=2026, metavar="S", help="simulation and split seed (default 2026)")
    g.add_argument("--workers", "-j", type=int, metavar="N", help="s2s prepare -j (default: all cores)")
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in method_names()]
    if unknown or not args.methods:
        p.error(f"unknown method(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(method_names())}")
    if args.iterations < (2 if args.ours_budget == "split" and "ours" in args.methods else 1):
        p.error("--iterations too small")
    if args.simulate is None and any(v is not None for v in (args.unpaired, args.unpaired_a, args.unpaired_b,
                                                               args.n_test)):
        p.error("--unpaired, --unpaired-a/-b and --n-test go with --simulate")
    if args.quiet is None:
        args.quiet = not sys.stdout.isatty()
    return args


def _stop(signum, frame):
    """SIGTERM (``timeout``, a batch system) -> SystemExit: the wall time so far is saved;
    checkpoints are written atomically, so the next run of the same command resumes."""
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    t0 = time.perf_counter()
    out = Path(args.out)
    state = load_state(out)
    log = Log()

    given = prepare_simulation(args, log, state) if args.simulate is not None else Path(args.dataset)
    ds = resolve_dataset(given)
    if state.get("fingerprint") not in (None, ds.fingerprint):
        fail(f"{out}: a comparison on another dataset; use another --out")
    state["fingerprint"] = args.fingerprint = ds.fingerprint
    out.mkdir(parents=True, exist_ok=True)  # only now: a misuse leaves nothing behind
    save_state(out, state)
    counts = ds.info.get("counts", {})
    surveys = {d: ds.surveys[d].name for d in "ab"}
    print(f"dataset {ds.root}: {counts.get('train')} train + {counts.get('test')} test pairs, "
          f"{counts.get('unpaired_a')} + {counts.get('unpaired_b')} unpaired ({surveys['a']}, {surveys['b']})")

    test = build_test_set(ds, out / "test")
    runs = model_runs(args.methods, surveys)
    print("\n" + budget_sentence(budget_of(args)))
    status = train_all(args, ds, runs, log, state, out)
    preds = translate_all(args, runs, status, surveys, log, out)
    evaluations = evaluate_all(args, preds, test, log, out)
    results = collect(evaluations, preds)
    for direction in preds:
        if direction not in evaluations:
            status[f"evaluate {direction}"] = "failed: no report"
    for r in runs:
        r["iterations_per_step"] = iterations_per_step(args, r)
    write_results(args, out, ds, test, runs, status, results, state, log.entries, time.perf_counter() - t0)
    wall = time.perf_counter() - t0
    print(f"\nwrote {out / 'results.md'} and {out / 'results.json'} ({wall:.0f} s in all)")
    print("\n" + (out / "results.md").read_text(encoding="utf-8").split("## Commands")[0])
    failed = {k: v for k, v in status.items() if v.startswith("failed")}
    for k, v in failed.items():
        print(f"FAILED {k}: {v}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
