"""The results of a method comparison (``experiments/compare_methods.py``): results.json and results.md.

Reads the evaluations' reports (:attr:`survey2survey.evaluate.Evaluation.report`, the
content of metrics.json) and the models' configurations; writes a table per direction
and band of the key metrics, the budget, wall times, the equivalent commands and links
to the plots.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path

from survey2survey import __version__
from survey2survey.errors import S2SError

__all__ = ["KEY_METRICS", "EXTRA_METRICS", "TRANSLATE_SEED", "collect", "budget_of", "budget_sentence",
           "model_config", "write_results"]

#: Each object's noise comes from (seed, object id), the same for every method, as in the
#: model card.
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


def collect(evaluations: dict, preds: dict) -> dict:
    """{direction: {"report", "bands": {band: {method: {quantity: value}}}, "plots", "backend"}}."""
    results = {}
    for direction, (report, ev) in evaluations.items():
        m = ev.report
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
                              "backend": {meth: backend for meth, (_, backend) in preds[direction].items()},
                              "matching": m.get("matching", {}), "failures": m.get("failures", [])}
    return results


def _model_timing(model_dir: Path) -> dict:
    cfg = model_config(model_dir) or {}
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


def write_results(args, out: Path, ds, test: dict, runs: list[dict], status: dict, results: dict, state: dict,
                  commands: list[dict], wall: float) -> None:  # fmt: skip
    """RUN_DIR/results.json and RUN_DIR/results.md (paths in it are relative to RUN_DIR).

    ``ds`` is the :class:`~survey2survey.data.loader.PreparedDataset`; each of ``runs`` has
    its ``iterations_per_step``; ``commands`` are this invocation's steps.
    """
    training = {}
    for r in runs:
        model_dir = out / "models" / r["dir"]
        t = state.get("train", {}).get(r["key"], {})
        training[r["key"]] = {
            "method": r["method"],
            "model": str(model_dir.relative_to(out)),
            "status": status.get(r["key"], "?"),
            "iterations_per_step": r["iterations_per_step"],
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
        "dataset": {"path": str(ds.root), "fingerprint": ds.fingerprint, "counts": ds.info.get("counts", {}),
                    "simulation": state.get("prepare")},
        "test": {k: v for k, v in test.items() if k != "files"},
        "budget": budget_of(args),
        "training": training,
        "results": results,
        "failures": {k: v for k, v in status.items() if v.startswith("failed")},
        "commands": commands,  # this invocation's (training commands of earlier ones: "training")
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


def budget_sentence(b: dict) -> str:
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
        f"Made by `experiments/compare_methods.py` on {doc['created']} (s2s {doc['version']}, "
        f"commit {doc['git'] or 'unknown'}, Python {doc['python']}, {doc['cpu_count']} CPU cores visible).",
        "",
        f"Dataset `{ds['path']}` (fingerprint `{ds['fingerprint'][:16]}...`): {counts.get('train', '?')} train "
        f"pairs, {counts.get('unpaired_a', '?')} + {counts.get('unpaired_b', '?')} unpaired; "
        f"**{test['n']} held-out test pairs** ({test['source']}; "
        + ("noise-free truth from the simulation)." if test["truth"] else "no truth: photometry and noise n/a)."),
        "",
        "**Budget.** " + budget_sentence(b),
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
              "The library calls of this comparison, as the `s2s` commands that do the same; run from the "
              "directory the comparison was started in (paths are relative to it where they were given so):",
              "", "```"]
    if ds.get("simulation"):
        lines.append(ds["simulation"]["command"])
    for t in doc["training"].values():
        lines += t["commands"]
    lines += [c["command"] for c in doc["commands"] if c["what"].startswith(("translate", "evaluate"))]
    lines += ["```", ""]
    return "\n".join(lines)


def model_config(model_dir: Path) -> dict | None:
    """The configuration of the model in ``model_dir`` (:func:`survey2survey.model.load_model`), or None."""
    from survey2survey.model import load_model

    if not model_dir.is_dir():
        return None
    try:
        loaded = load_model(model_dir, device="cpu")
    except S2SError:
        return None
    return dict(loaded.config, weights_sha256=loaded.weights_sha256)
