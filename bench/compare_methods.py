"""The method comparison of docs/results.md in one command: prepare, train, translate, evaluate.

    python bench/compare_methods.py --dataset DATASET_DIR --out RUN_DIR \\
        [--methods ours,pix2pix,...] [--iterations N] [--batch-size B] [--lr LR] \\
        [--device auto] [--band r] [--seed S] [--ours-budget per-step|split] \\
        [--simulate N_PAIRS --unpaired N [--n-test T] [--sim-seed 2026]]

    # tiny CPU check (a few minutes on 2 cores)
    python bench/compare_methods.py --simulate 24 --unpaired 24 --dataset runs/sim-tiny \\
        --out runs/compare-tiny --methods ours,aecnn,pix2pix --iterations 4 --batch-size 2

The protocol (docs/results.md): one dataset, every method trained with the same budget and
seed, the same held-out test pairs translated by each model both ways, and ONE
``s2s evaluate`` per direction with every method as ``--pred NAME=DIR``, so that tables and
plots overlay the methods.  Everything is done through the ``s2s`` command line, as a user
would type it; each command is printed before it runs and listed in ``RUN_DIR/results.md``,
so the run can be reproduced by copying the commands.

Steps and what they write under ``RUN_DIR``:

1. *(with --simulate)* ``s2s prepare --simulate N ... --regrid --out DATASET_DIR``: a GalSim
   survey pair with its noise-free truth; the dataset is then ``DATASET_DIR/dataset``.
   Skipped when that simulation is already there.
2. ``test/<survey>/`` and, for a simulated dataset, ``test/truth/<survey>/``: the held-out
   test pairs (rows of ``manifest.csv`` with ``split == test``).  Their FITS files are hard
   links to (or copies of) the cutouts the dataset was built from -- for a simulation
   ``SIMDIR/<survey>/<id>.fits`` and ``SIMDIR/truth/<survey>/<id>.fits`` -- else they are
   written from the dataset's ``test_*.npy`` arrays (native units, WCS from the manifest's
   position) with :func:`survey2survey.fits_io.write_cutout`; without a simulation there is
   no truth, and the photometry and noise metrics are left out.
3. ``models/<method>/`` (one-way methods: ``models/<method>/<a>-to-<b>/``, one per
   direction, each with the full budget): ``s2s train``.  A model that is complete for
   this budget is skipped; an interrupted one is continued with ``--resume`` (from its
   last checkpoint; ``--checkpoint-every`` sets how often one is written); so re-running
   the same command resumes the comparison.  Wall times are kept in ``state.json``.
4. ``pred/<method>/<survey>/``: ``s2s translate ... --seed 1`` of the test cutouts both
   ways.  Files written by another model (``S2SHASH`` differs) are redone.
5. ``eval/<a>-to-<b>/``: ``s2s evaluate --pred m1=... --pred m2=... --ref test/<b>
   [--truth test/truth/<b>] --band r``: metrics.json, per_image.csv and the plots.
6. ``results.md`` and ``results.json``: a table per direction (and band) of the key
   metrics, median +- spread (sigma_MAD) as evaluate reports them, the budget, wall times,
   the exact commands and links to the plots.

The budget of ``ours``, which trains in two steps: ``--iterations`` is the budget of one
training run, as ``s2s train --iterations`` means "iterations per step".  With
``--ours-budget per-step`` (default, the paper's recipe: 60,000 iterations per step for
every method) ``ours`` runs N iterations in step 1 and N in step 2, i.e. 2N in all; with
``split`` it runs N/2 + N/2.  One-way methods (pix2pix, aecnn) get N iterations per
direction.  The choice is stated in results.md.  ``--lr`` is given to the Adam methods
only: aecnn keeps its Adadelta learning rate (1.0) unless ``--lr-aecnn`` is given.

Exit code 0 when every step succeeded, 1 when some method failed (the others are still
evaluated; the failures are listed in results.md), 2 on misuse.  Run heavy CPU runs under
``nice``: the children inherit it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from survey2survey import __version__  # noqa: E402
from survey2survey.methods import get_method, method_names  # noqa: E402

#: ``s2s translate --seed``: each object's noise comes from (seed, object id), the same for
#: every method, as in the model card.
TRANSLATE_SEED = 1

#: The key metrics of the tables: (column title, metric, "per_image" or "set", quantity, ideal).
#: Names are those of metrics.json (``results.<method>.<band>.<metric>``).
KEY_METRICS = [
    ("Σ\\|pred−ref\\| / σΣ", "flux", "per_image", "flux_absdiff_norm", "1.41"),
    ("(F_pred − F_true) / F_true", "photometry", "per_image", "rel_dflux_pred", "0"),
    ("σ(pred−true) / σ(ref−true)", "noise", "per_image", "noise_sigma_ratio", "1"),
    ("HF amplitude pred/ref", "fourier", "per_image", "hf_amp_ratio", "1"),
    ("Fourier stack distance (dex)", "fourier", "set", "stack_distance", "0"),
    ("MSSIM", "ssim", "per_image", "mssim", "1"),
]
#: Further numbers kept in results.json (not in the markdown table).
EXTRA_METRICS = [
    ("noise", "set", "ps_distance"),
    ("photometry", "per_image", "rel_dflux_ref"),
    ("photometry", "set", "scatter_ratio"),
    ("magnitude", "per_image", "dmag"),
    ("snr", "per_image", "snr_rel_diff"),
    ("profile", "per_image", "profile_dev"),
    ("ssim", "per_image", "l_mean"),
    ("ssim", "per_image", "c_mean"),
    ("ssim", "per_image", "s_mean"),
    ("fourier", "set", "stack_amp_ratio"),
]


# --- running s2s ----------------------------------------------------------------------------


def s2s_executable() -> list[str]:
    """How to call ``s2s``: the one next to this Python (a venv), else PATH, else ``-m``."""
    here = Path(sys.executable).parent / "s2s"
    if here.exists():
        return [str(here)]
    found = shutil.which("s2s")
    return [found] if found else [sys.executable, "-m", "survey2survey"]


class Runner:
    """Runs ``s2s`` commands, printing each one first and logging what ran.

    The command shown and logged starts with ``s2s`` and keeps the paths as the user gave
    them (relative paths stay relative), so that results.md can be copied and re-run from
    the same directory, and holds no machine-specific path.
    """

    def __init__(self, quiet: bool):
        self.exe = s2s_executable()
        self.quiet = quiet
        self.log: list[dict] = []  # every command of this invocation

    def _args(self, args: list) -> list[str]:
        args = [str(a) for a in args]
        if self.quiet and args[0] in ("prepare", "train", "translate", "evaluate"):
            args.append("-q")  # progress bars are noise in a log file
        return args

    def shown(self, args: list) -> str:
        return shlex.join(["s2s", *self._args(args)])

    def __call__(self, args: list, what: str) -> tuple[int, float]:
        args = self._args(args)
        shown = shlex.join(["s2s", *args])
        print(f"\n$ {shown}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(self.exe + args).returncode
        seconds = time.perf_counter() - t0
        print(f"  [{what}: exit {rc}, {seconds:.1f} s]", flush=True)
        self.log.append({"what": what, "command": shown, "exit": rc, "seconds": round(seconds, 2)})
        return rc, seconds


def fail(message: str) -> NoReturn:
    """Stop on misuse or an unusable input (exit 2, as ``s2s`` does), before more work is done."""
    print(f"compare_methods: error: {message}", file=sys.stderr)
    raise SystemExit(2)


# --- dataset and test set -------------------------------------------------------------------


def prepare_simulation(args, run: Runner, state: dict) -> Path:
    """``s2s prepare --simulate`` into ``--dataset`` unless that simulation is already there."""
    sim_dir = Path(args.dataset)
    if sim_dir.name == "dataset" and not (sim_dir / "simulation.json").exists():
        sim_dir = sim_dir.parent  # given SIMDIR/dataset: prepare writes SIMDIR/dataset itself
    unp_a = args.unpaired if args.unpaired_a is None else args.unpaired_a
    unp_b = args.unpaired if args.unpaired_b is None else args.unpaired_b
    cmd = ["prepare", "--simulate", args.simulate]
    if unp_a is not None:
        cmd += ["--unpaired-a", unp_a]
    if unp_b is not None:
        cmd += ["--unpaired-b", unp_b]
    if args.n_test is not None:
        cmd += ["--n-test", args.n_test]
    cmd += ["--regrid", "--seed", args.sim_seed, "--out", sim_dir]  # --regrid: cyclegan, augcgan need it
    if args.workers:
        cmd += ["-j", args.workers]
    if (sim_dir / "dataset" / "dataset.json").exists():
        if not (sim_dir / "simulation.json").exists():
            fail(f"{sim_dir}: a dataset that is not a simulation is there; leave out --simulate")
        meta = json.loads((sim_dir / "simulation.json").read_text())["config"]
        want = {"n_paired": args.simulate, "seed": args.sim_seed}
        if unp_a is not None:
            want["n_unpaired_a"] = unp_a
        if unp_b is not None:
            want["n_unpaired_b"] = unp_b
        differ = {k: (meta.get(k), v) for k, v in want.items() if meta.get(k) != v}
        if differ:
            fail(f"{sim_dir}: holds another simulation ({differ}, as (there, asked)); "
                 "give another --dataset or leave out --simulate")
        print(f"{sim_dir}: the simulation and its dataset are there already; not re-made")
        state.setdefault("prepare", {"command": run.shown(cmd), "seconds": None})  # what made it
        return sim_dir / "dataset"
    rc, seconds = run(cmd, "prepare")
    if rc not in (0, 1):  # 1: some cutouts refused (listed), the dataset is made
        sys.exit(f"s2s prepare failed (exit {rc})")
    state["prepare"] = {"command": run.log[-1]["command"], "seconds": round(seconds, 1)}
    return sim_dir / "dataset"


def resolve_dataset(path: str | Path) -> Path:
    """The prepared dataset directory: ``path`` itself or, for a simulation dir, path/dataset."""
    p = Path(path)
    for cand in (p, p / "dataset"):
        if (cand / "dataset.json").exists():
            return cand
    fail(f"{p}: no dataset.json there nor in {p / 'dataset'} (run s2s prepare, or give --simulate N)")


def read_test_pairs(dataset: Path) -> list[dict]:
    """The test pairs, in row order: row k of test_a.npy and of test_b.npy is one galaxy."""
    rows = {"a": {}, "b": {}}
    with open(dataset / "manifest.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["split"] == "test":
                rows[r["domain"]][int(r["index"])] = r
    if not rows["a"] or len(rows["a"]) != len(rows["b"]):
        fail(f"{dataset}/manifest.csv: {len(rows['a'])} test rows of a, {len(rows['b'])} of b "
             "(need as many, and at least one: s2s prepare --n-test)")
    return [{"a": rows["a"][k], "b": rows["b"][k]} for k in sorted(rows["a"])]


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard link (no space, survives moving RUN_DIR), else a copy (another file system)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_test_set(dataset: Path, info: dict, out: Path) -> dict:
    """Materialise the held-out test pairs as FITS under ``out`` (= RUN_DIR/test).

    Returns ``{"surveys": {"a": name, "b": name}, "n": pairs, "truth": bool, "source": how}``,
    also written as ``out/test.json``; an existing ``out`` made from the same dataset is
    reused, one made from another dataset is refused.
    """
    marker = out / "test.json"
    if marker.exists():
        made = json.loads(marker.read_text())
        if made.get("fingerprint") != info["fingerprint"]:
            fail(f"{out}: test set of another dataset (fingerprint {made.get('fingerprint', '?')[:12]}...); "
                 "use another --out")
        print(f"{out}: {made['n']} test pairs already there ({made['source']})")
        return made
    from survey2survey.surveys import get_survey

    pairs = read_test_pairs(dataset)
    surveys = {d: get_survey(info["surveys"][d]["name"]) for d in "ab"}
    sim_dir = dataset.parent
    simulated = (sim_dir / "simulation.json").exists()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    listing = []

    # Source files: for a simulation the documented layout (SIMDIR/<survey>/<id>.fits and its
    # truth); else the manifest's source_file (relative to the dataset or absolute; in an
    # s2s-dataset/1 set relative to wherever `s2s prepare` ran) -- when the files are gone,
    # the arrays are the fallback.
    from survey2survey.data.loader import source_paths

    def sources(d: str, row: dict) -> list[Path] | None:
        if simulated:
            files = [sim_dir / surveys[d].name / f"{row['id']}.fits"]
        else:
            files = source_paths(dataset, row, info.get("format"))
        return files if all(f.is_file() for f in files) else None

    found = {d: [sources(d, p[d]) for p in pairs] for d in "ab"}
    from_files = all(f is not None for d in "ab" for f in found[d])
    for k, pair in enumerate(pairs):
        entry = {}
        for d in "ab":
            name = surveys[d].name
            row = pair[d]
            if from_files:
                for f in found[d][k]:
                    _link_or_copy(f, tmp / name / f.name)
                entry[name] = ";".join(f.name for f in found[d][k])
            else:
                entry[name] = _write_from_array(dataset, info, d, int(row["index"]), row, surveys[d], tmp / name)
            if simulated:
                truth = sim_dir / "truth" / name / f"{row['id']}.fits"
                if not truth.is_file():
                    fail(f"{truth}: truth file of a test object missing")
                _link_or_copy(truth, tmp / "truth" / name / truth.name)
        listing.append(entry)
    made = {
        "dataset": str(dataset),
        "fingerprint": info["fingerprint"],
        "surveys": {d: surveys[d].name for d in "ab"},
        "n": len(pairs),
        "truth": simulated,
        "source": "links to the dataset's input FITS files" if from_files
        else "written from the dataset's test_*.npy arrays (input files not found)",
        "files": listing,
    }
    (tmp / "test.json").write_text(json.dumps(made, indent=1) + "\n")
    if out.exists():
        shutil.rmtree(out)  # a half-made test set without its marker
    tmp.rename(out)
    print(f"{out}: {len(pairs)} test pairs ({made['source']}{', with truth' if simulated else ', no truth'})")
    return made


def _write_from_array(dataset: Path, info: dict, domain: str, index: int, row: dict, survey, folder: Path) -> str:
    """Row ``index`` of test_<domain>.npy back to a native-unit FITS cube with a WCS."""
    import numpy as np

    from survey2survey.fits_io import make_wcs, write_cutout
    from survey2survey.surveys import to_native

    arr = np.load(dataset / info["arrays"][f"test_{domain}"]["file"], mmap_mode="r")
    data = to_native(np.asarray(arr[index]), survey)
    wcs = make_wcs(float(row["ra"]), float(row["dec"]), survey.pixel_scale, data.shape[-2:])
    name = f"{row['id']}.fits"
    write_cutout(folder / name, data, survey, wcs=wcs, fsync=False,
                 history=[f"test pair {index} of dataset {info['fingerprint'][:16]} (from its arrays)"])
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

    complete: config.json says every step ran exactly ``iterations`` with this batch size
    and seed; resume: checkpoints to continue from (an interrupted run, or a finished one
    with fewer iterations, which ``--resume`` extends); fresh: nothing there; stale: a
    model that does not fit this budget, which is not overwritten.
    """
    config = model_dir / "config.json"
    keys = [f"step{s}" for s in run["steps"]] if run["steps"] != (None,) else ["train"]
    if config.exists():
        try:
            cfg = json.loads(config.read_text())
        except ValueError:
            cfg = {}
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
    if any((model_dir / "train").rglob("ckpt-*.pt")):
        return "resume"
    return "fresh"


def train_command(args, dataset: Path, run: dict, model_dir: Path, iterations: int) -> list:
    cmd = ["train", dataset, "--method", run["method"], "--out", model_dir,
           "--iterations", iterations, "--batch-size", args.batch_size, "--seed", args.seed,
           "--device", args.device]
    if run["direction"]:
        cmd += ["--direction", run["direction"]]
    lr = args.lr_aecnn if run["method"] == "aecnn" else args.lr
    if lr is not None:
        cmd += ["--lr", lr]
    if args.lr_decay_every is not None:
        cmd += ["--lr-decay-every", args.lr_decay_every]
    if args.checkpoint_every is not None:
        cmd += ["--checkpoint-every", args.checkpoint_every]
    if args.compile is not None:  # short GPU runs: compiling each method's networks can cost more than it saves
        cmd += ["--compile", args.compile]
    return cmd


def train_all(args, dataset: Path, info: dict, runs: list[dict], run: Runner, state: dict, out: Path) -> dict:
    """Train every run not yet complete; returns {key: "ok" | "ok (trained earlier)" | "failed: ..."}."""
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
            print(f"\n{r['key']}: {status[r['key']][8:]}")
            continue
        if r["regridded"] and not info.get("regridded"):
            status[r["key"]] = "failed: the dataset has no regridded arrays (s2s prepare --regrid)"
            print(f"\n{r['key']}: {status[r['key']][8:]}")
            continue
        cmd = train_command(args, dataset, r, model_dir, its)
        if how == "resume":
            cmd.append("--resume")  # continues from the last checkpoint (or extends a finished run)
        entry = trained.setdefault(r["key"], {"commands": [], "wall_s": 0.0})
        t0 = time.perf_counter()
        rc = None
        try:
            rc, _ = run(cmd, f"train {r['key']}")
        finally:  # also when stopped (SIGTERM, Ctrl-C): a resumed run's wall time adds up
            entry["commands"].append(run.log[-1]["command"] if rc is not None else run.shown(cmd))
            entry["wall_s"] = round(entry["wall_s"] + time.perf_counter() - t0, 1)
            save_state(out, state)
        status[r["key"]] = "ok" if rc == 0 else f"failed: s2s train exit {rc}"
    return status


# --- translation and evaluation -------------------------------------------------------------


def _stale_predictions(folder: Path, weights_sha: str | None) -> bool:
    """True if a file in ``folder`` was written by other weights or another seed."""
    if not folder.is_dir():
        return False
    from astropy.io import fits

    for f in folder.glob("*.fits"):
        try:
            h = fits.getheader(f)
        except OSError:
            return True
        if (weights_sha and h.get("S2SHASH") != weights_sha) or h.get("S2SSEED") != TRANSLATE_SEED:
            return True
    return False


def translate_all(args, runs: list[dict], train_status_: dict, surveys: dict, run: Runner, out: Path) -> dict:
    """Translate the test set both ways with every trained model.

    Returns ``{direction "a->b": {method: prediction dir}}`` for the translations that worked.
    """
    preds: dict[str, dict[str, Path]] = {}
    for src, dst in ((surveys["a"], surveys["b"]), (surveys["b"], surveys["a"])):
        direction = f"{src}->{dst}"
        preds[direction] = {}
        for r in runs:
            if r["direction"] not in (None, direction) or train_status_[r["key"]].startswith("failed"):
                continue
            model_dir = out / "models" / r["dir"]
            pred_dir = out / "pred" / r["method"] / dst
            cfg = json.loads((model_dir / "config.json").read_text())
            cmd = ["translate", out / "test" / src, "--to", dst, "--model", model_dir, "--out", pred_dir,
                   "--seed", TRANSLATE_SEED, "--device", args.device]
            if _stale_predictions(pred_dir, cfg.get("weights_sha256")):
                cmd.append("--overwrite")  # the model changed since these files were written
            rc, _ = run(cmd, f"translate {r['method']} {direction}")
            if rc in (0, 1):  # 1: some inputs failed (named); evaluate reports what is missing
                preds[direction][r["method"]] = pred_dir
            else:
                train_status_.setdefault(f"translate {r['method']} {direction}", f"failed: exit {rc}")
    return preds


def evaluate_all(args, preds: dict, surveys: dict, test: dict, run: Runner, out: Path) -> dict:
    """One ``s2s evaluate`` per direction with every method; returns {direction: report dir}."""
    reports = {}
    for direction, by_method in preds.items():
        if not by_method:
            continue
        src, dst = direction.split("->")
        report = out / "eval" / f"{src}-to-{dst}"
        cmd = ["evaluate"]
        for m, d in by_method.items():
            cmd += ["--pred", f"{m}={d}"]
        cmd += ["--ref", out / "test" / dst]
        if test["truth"]:
            cmd += ["--truth", out / "test" / "truth" / dst]
        cmd += ["--band", args.band, "--out", report]
        rc, _ = run(cmd, f"evaluate {direction}")
        if rc in (0, 1) and (report / "metrics.json").exists():
            reports[direction] = report
    return reports


# --- results --------------------------------------------------------------------------------


def _pick(block: dict, metric: str, level: str, name: str):
    """A number of metrics.json: {"median", "spread"} for per-image quantities, a float for set ones."""
    part = (block.get(metric) or {}).get(level) or {}
    value = part.get(name)
    if value is None:
        return None
    if level == "per_image":
        return {"median": value.get("median"), "spread": value.get("spread"), "n": value.get("n")}
    return value


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, dict):
        if v.get("median") is None:
            return "n/a"
        return f"{v['median']:.3g} ± {v['spread']:.2g}" if v.get("spread") is not None else f"{v['median']:.3g}"
    return f"{v:.3g}"


def _backend(pred_dir: Path) -> str | None:
    """The inference backend a prediction was made with (``S2SBACK``, e.g. torch/cuda/bf16)."""
    from astropy.io import fits

    first = next(iter(sorted(pred_dir.glob("*.fits"))), None)
    return fits.getheader(first).get("S2SBACK") if first else None


def collect(reports: dict, preds: dict) -> dict:
    """{direction: {"report", "bands": {band: {method: {quantity: value}}}, "plots", "backend"}}."""
    results = {}
    for direction, report in reports.items():
        m = json.loads((report / "metrics.json").read_text())
        bands = {}
        for method, per_band in m["results"].items():
            for band, block in per_band.items():
                row = {"n_images": block.get("n_images")}
                for _, metric, level, name, _ in KEY_METRICS:
                    row[name] = _pick(block, metric, level, name)
                for metric, level, name in EXTRA_METRICS:
                    row[name] = _pick(block, metric, level, name)
                bands.setdefault(band, {})[method] = row
        plots = [v for k, v in m.get("files", {}).items() if k.startswith("plot_")]
        results[direction] = {"report": str(report), "bands": bands, "plots": plots,
                              "backend": {meth: _backend(d) for meth, d in preds[direction].items()},
                              "matching": m.get("matching", {}), "failures": m.get("failures", [])}
    return results


def _model_timing(model_dir: Path) -> dict:
    try:
        cfg = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return {"iterations": cfg.get("iterations"), "steps": cfg.get("steps", {}),
            "timings": cfg.get("timings", {}), "weights_sha256": cfg.get("weights_sha256")}


def budget_of(args) -> dict:
    """The training and evaluation settings shared by every method (results.json "budget")."""
    return {
        "iterations": args.iterations,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_aecnn": args.lr_aecnn,
        "lr_decay_every": args.lr_decay_every,
        "seed": args.seed,
        "device": args.device,
        "compile": args.compile,
        "ours_budget": args.ours_budget,
        "translate_seed": TRANSLATE_SEED,
        "band": args.band,
    }


def write_results(args, out: Path, dataset: Path, info: dict, test: dict, runs: list[dict], status: dict,
                  results: dict, state: dict, run: Runner, wall: float) -> None:
    """RUN_DIR/results.json and RUN_DIR/results.md (paths in it are relative to RUN_DIR)."""
    budget = budget_of(args)
    training = {}
    for r in runs:
        model_dir = out / "models" / r["dir"]
        t = state.get("train", {}).get(r["key"], {})
        training[r["key"]] = {
            "method": r["method"],
            "model": str(model_dir.relative_to(out)),
            "status": status.get(r["key"], "?"),
            "iterations_per_step": iterations_per_step(args, r),
            "wall_s": t.get("wall_s"),
            "commands": t.get("commands", []),
            **_model_timing(model_dir),
        }
    doc = {
        "format": "s2s-compare/1",
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "version": __version__,
        "git": _git_describe(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "dataset": {"path": str(dataset), "fingerprint": info["fingerprint"], "counts": info.get("counts", {}),
                    "simulation": state.get("prepare")},
        "test": {k: v for k, v in test.items() if k != "files"},
        "budget": budget,
        "training": training,
        "results": results,
        "failures": {k: v for k, v in status.items() if v.startswith("failed")},
        "commands": run.log,  # this invocation's (training commands of earlier ones: "training")
        "wall_s_this_invocation": round(wall, 1),
    }
    (out / "results.json").write_text(json.dumps(doc, indent=1, allow_nan=False, default=str) + "\n")
    (out / "results.md").write_text(_markdown(doc, out), encoding="utf-8")


def _git_describe() -> str | None:
    """The commit this ran from (and "+dirty" with local changes), or None outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def _budget_sentence(b: dict) -> str:
    n = b["iterations"]
    ours = (f"`ours` trains in two steps of {n} iterations each ({2 * n} in all; the paper's recipe counts "
            "iterations per step)" if b["ours_budget"] == "per-step"
            else f"`ours` splits them over its two steps ({n // 2} + {n // 2})")
    lr = "the methods' default learning rates" if b["lr"] is None else f"learning rate {b['lr']:g} (Adam methods)"
    lr += "; aecnn: Adadelta at its default 1.0" if b["lr_aecnn"] is None else f"; aecnn: {b['lr_aecnn']:g}"
    decay = "" if b["lr_decay_every"] is None else f", divided by 5 every {b['lr_decay_every']} iterations"
    return (f"Every training run: {n} iterations at batch {b['batch_size']} (unpaired per domain and pairs), "
            f"{lr}{decay}, seed {b['seed']}, device `{b['device']}`. {ours}. One-way methods (pix2pix, aecnn) "
            f"are trained once per direction, {n} iterations each. Test cutouts translated with "
            f"`--seed {b['translate_seed']}`.")


def _markdown(doc: dict, out: Path) -> str:
    b, ds, test = doc["budget"], doc["dataset"], doc["test"]
    counts = ds["counts"]
    lines = [
        "# Method comparison",
        "",
        f"Made by `bench/compare_methods.py` on {doc['created']} (s2s {doc['version']}, "
        f"commit {doc['git'] or 'unknown'}, Python {doc['python']}, {doc['cpu_count']} CPU cores visible).",
        "",
        f"Dataset `{ds['path']}` (fingerprint `{ds['fingerprint'][:16]}...`): {counts.get('train', '?')} train "
        f"pairs, {counts.get('unpaired_a', '?')} + {counts.get('unpaired_b', '?')} unpaired; "
        f"**{test['n']} held-out test pairs** ({test['source']}; "
        + ("noise-free truth from the simulation)." if test["truth"] else "no truth: photometry and noise n/a)."),
        "",
        "**Budget.** " + _budget_sentence(b),
        "",
    ]
    if doc["failures"]:
        lines += ["**Failed** (left out of the tables):", ""]
        lines += [f"- {k}: {v}" for k, v in doc["failures"].items()] + [""]
    for direction, res in doc["results"].items():
        src, dst = direction.split("->")
        report = Path(res["report"]).relative_to(out)
        for band, by_method in res["bands"].items():
            lines += [f"## {src.upper()} -> {dst.upper()}, {band} band", "",
                      f"Median ± spread (σ_MAD) over the test images; set-level quantities without spread. "
                      f"Report: [`{report}/metrics.json`]({report}/metrics.json).", ""]
            head = ["method", "n"] + [t for t, *_ in KEY_METRICS]
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            lines.append("| *ideal* | | " + " | ".join(ideal for *_, ideal in KEY_METRICS) + " |")
            for method, row in by_method.items():
                cells = [f"`{method}`", str(row.get("n_images", ""))]
                cells += [_fmt(row.get(name)) for _, _, _, name, _ in KEY_METRICS]
                lines.append("| " + " | ".join(cells) + " |")
            ref_bias = next((r.get("rel_dflux_ref") for r in by_method.values() if r.get("rel_dflux_ref")), None)
            lines.append("")
            lines.append("1.41 (√2) is a perfect translation with its own noise, 1 a noise-free copy of the truth.")
            backends = sorted({str(v) for v in res.get("backend", {}).values()})
            lines.append(f"Translated with backend {', '.join(f'`{x}`' for x in backends)} (`S2SBACK`).")
            if ref_bias:
                lines.append(f"The real {dst.upper()} cutouts' own aperture flux bias against the truth: {_fmt(ref_bias)}.")
            lines.append("")
        if res["plots"]:
            lines += [f"Plots ({src} -> {dst}): " + ", ".join(f"[{Path(p).stem}]({report}/{p})" for p in res["plots"]), ""]
            for p in res["plots"]:
                if Path(p).stem == "flux" or Path(p).stem.startswith("fourier"):
                    lines.append(f"![{src} -> {dst}: {Path(p).stem}]({report}/{p})")
            lines.append("")
    lines += ["## Training", "",
              "| run | model | status | iterations | wall time (s) | training time (s) | s / iteration |",
              "|---|---|---|---|---|---|---|"]
    for key, t in doc["training"].items():
        steps = t.get("steps") or {}
        per = " + ".join(f"{s.get('seconds', 0) / max(1, s.get('iterations', 1)):.2f}" for s in steps.values())
        secs = sum(s.get("seconds", 0) for s in steps.values())
        its = " + ".join(str(s.get("iterations")) for s in steps.values()) or "-"
        wall = f"{t['wall_s']:.0f}" if t.get("wall_s") is not None else "-"
        lines.append(f"| `{key}` | `{t['model']}` | {t['status']} | {its} | {wall} | {secs:.0f} | {per or '-'} |")
    lines += ["", "Wall time: the `s2s train` command(s) of this run directory, start-up and data loading "
              "included, summed over interrupted and resumed invocations (a run killed with SIGKILL loses "
              "its share); training time and s/iteration from the model's config.json (per step for "
              "`ours`; the first iterations include warm-up and, on a GPU, compilation).", ""]
    lines += ["## Commands", "",
              "Run from the directory the comparison was started in (paths are relative to it where they "
              "were given so):", "", "```"]
    if ds.get("simulation"):
        lines.append(ds["simulation"]["command"])
    for t in doc["training"].values():
        lines += t["commands"]
    lines += [c["command"] for c in doc["commands"] if c["what"].startswith(("translate", "evaluate"))]
    lines += ["```", ""]
    return "\n".join(lines)


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
                   help="pass -q to s2s (default: when stdout is not a terminal)")
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
    """SIGTERM (``timeout``, a batch system) -> SystemExit: subprocess.run then kills the
    running s2s child, and the wall time so far is saved; checkpoints are written atomically,
    so the next run of the same command resumes."""
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    t0 = time.perf_counter()
    out = Path(args.out)
    state = load_state(out)
    run = Runner(args.quiet)

    dataset = prepare_simulation(args, run, state) if args.simulate is not None else resolve_dataset(args.dataset)
    dataset = resolve_dataset(dataset)
    info = json.loads((dataset / "dataset.json").read_text())
    if state.get("fingerprint") not in (None, info["fingerprint"]):
        fail(f"{out}: a comparison on another dataset; use another --out")
    state["fingerprint"] = args.fingerprint = info["fingerprint"]
    out.mkdir(parents=True, exist_ok=True)  # only now: a misuse leaves nothing behind
    save_state(out, state)
    surveys = {d: info["surveys"][d]["name"] for d in "ab"}
    print(f"dataset {dataset}: {info['counts']['train']} train + {info['counts']['test']} test pairs, "
          f"{info['counts']['unpaired_a']} + {info['counts']['unpaired_b']} unpaired ({surveys['a']}, {surveys['b']})")

    test = build_test_set(dataset, info, out / "test")
    runs = model_runs(args.methods, surveys)
    print("\n" + _budget_sentence(budget_of(args)))
    status = train_all(args, dataset, info, runs, run, state, out)
    preds = translate_all(args, runs, status, surveys, run, out)
    reports = evaluate_all(args, preds, surveys, test, run, out)
    results = collect(reports, preds)
    for direction in preds:
        if direction not in reports:
            status[f"evaluate {direction}"] = "failed: no report"
    write_results(args, out, dataset, info, test, runs, status, results, state, run, time.perf_counter() - t0)
    wall = time.perf_counter() - t0
    print(f"\nwrote {out / 'results.md'} and {out / 'results.json'} ({wall:.0f} s in all)")
    print("\n" + (out / "results.md").read_text(encoding="utf-8").split("## Commands")[0])
    failed = {k: v for k, v in status.items() if v.startswith("failed")}
    for k, v in failed.items():
        print(f"FAILED {k}: {v}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
