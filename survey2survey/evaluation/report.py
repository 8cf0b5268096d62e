"""The report of an evaluation: metrics.json, per_image.csv, arrays.npz, the plots, the terminal table.

:func:`aggregate` turns the measured columns into the content of metrics.json (median and
robust spread of every per-image quantity, per method and band, plus the set-level
quantities); :func:`write_report` writes the files atomically; :func:`table_rows` gives
the rows of the terminal table.  Each metric class draws its own plots
(:func:`draw_plots`).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from survey2survey import __version__
from survey2survey.atomic import write_bytes
from survey2survey.errors import UsageError, write_failure

__all__ = [
    "EVALUATE_FORMAT",
    "REPORT_FILES",
    "aggregate",
    "per_image_csv",
    "check_report_dir",
    "write_report",
    "draw_plots",
    "table_rows",
]

#: ``format`` field of metrics.json.
EVALUATE_FORMAT = "s2s-evaluate/1"

#: The files of every report; the plots written are listed in its metrics.json ("files").
REPORT_FILES = ("metrics.json", "per_image.csv", "arrays.npz")


def _quantities(metric_classes) -> dict[str, Any]:
    out = {}
    for cls in metric_classes:
        for q in cls.columns:
            out[q.name] = (cls.name, "image", q)
        for q in cls.set_quantities:
            out[f"{cls.name}.{q.name}"] = (cls.name, "set", q)
    return out


def aggregate(evaluation: Evaluation, classes) -> None:
    """Summaries per method and band of ``classes``' quantities, and ``evaluation.report``."""
    from survey2survey.metrics.stats import summarize

    quantities = _quantities(classes)
    flux_unit = evaluation.survey.flux_unit
    results: dict[str, Any] = {}
    notes: dict[str, Any] = {}
    for name, mres in evaluation.methods.items():
        per_band: dict[str, Any] = {}
        for b, band in enumerate(evaluation.bands):
            entry: dict[str, Any] = {"n_images": len(mres.pairs)}
            for cls in classes:
                per_image = {
                    q.name: summarize(mres.columns[q.name][:, b]) for q in cls.columns if q.name in mres.columns
                }
                mr = mres.results.get(cls.name)
                set_values = dict(mr.values.get(band, {})) if mr is not None else {}
                entry[cls.name] = {"per_image": per_image, "set": set_values}
                if mr is not None and mr.notes:
                    notes[cls.name] = mr.notes
            per_band[band] = entry
        mres.summaries = per_band
        results[name] = per_band
    evaluation.report = {
        "format": EVALUATE_FORMAT,
        "version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "survey": evaluation.survey.to_dict(),
        "flux_unit": flux_unit,
        "bands": list(evaluation.bands),
        "metrics": list(evaluation.metrics),
        "inputs": evaluation.inputs,
        **evaluation.notes,
        "parameters": evaluation.parameters,
        "quantities": {
            key: {
                "metric": metric,
                "level": level,
                "label": q.label,
                "unit": q.unit_for(flux_unit),
                "ideal": q.ideal,
                "description": q.description,
            }
            for key, (metric, level, q) in quantities.items()
        },
        "matching": {
            name: {
                "pairs_measured": len(m.pairs),
                "matched_by_id": m.matching.by_id if m.matching else 0,
                "matched_by_position": m.matching.by_position if m.matching else 0,
                "unmatched_pred": [str(s.path) for s in (m.matching.unmatched if m.matching else [])],
                "reference_without_pred": evaluation.unused_ref.get(name, []),
            }
            for name, m in evaluation.methods.items()
        },
        "reference_without_truth": evaluation.ref_without_truth,
        "failures": [{"file": f, "reason": r} for f, r in evaluation.failures],
        "results": results,
        "notes": notes,
        "timings_s": {k: round(v, 3) for k, v in evaluation.timings.items()},
    }


def _atomic_bytes(path: Path, data: bytes) -> None:
    try:
        write_bytes(path, data)
    except OSError as exc:  # the report cannot be written at all: a bad --out (2) or a full disk (1)
        raise write_failure(path, exc) from None


def _fmt(x: float) -> str:
    return "" if not np.isfinite(x) else f"{x:.7g}"


def per_image_csv(evaluation: Evaluation) -> str:
    """The per-image table (one row per method, object and band) as CSV text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    cols: list[str] = []
    for m in evaluation.methods.values():
        cols += [c for c in m.columns if c not in cols]
    writer.writerow(
        ["method", "object_id", "band", "pred_file", "ref_file", "truth_file", "matched_by", "separation_arcsec",
         "n_masked"] + cols
    )
    for name, m in evaluation.methods.items():
        for i, pair in enumerate(m.pairs):
            for b, band in enumerate(evaluation.bands):
                writer.writerow(
                    [name, pair.object_id, band, str(pair.pred.path), str(pair.ref.path),
                     str(pair.truth.path) if pair.truth is not None else "", pair.how,
                     "" if pair.separation is None else f"{pair.separation:.3f}",
                     int(m.n_masked[i, b]) if m.n_masked is not None else 0]
                    + [_fmt(m.columns[c][i, b]) if c in m.columns else "" for c in cols]
                )
    return buf.getvalue()


def _arrays(evaluation: Evaluation) -> dict[str, np.ndarray]:
    out = {"bands": np.array(evaluation.bands)}
    for name, m in evaluation.methods.items():
        for metric, res in m.results.items():
            for key, arr in res.arrays.items():
                out[f"{name}/{metric}/{key}"] = np.asarray(arr)
    return out


def check_report_dir(out: str | os.PathLike, overwrite: bool, plotted: Sequence[str] = ()) -> None:
    """Refuse (``UsageError``) an ``out`` that holds an earlier report, unless ``overwrite``.

    A report is recognised by its files (:data:`REPORT_FILES`).  A PNG that one of the
    ``plotted`` metrics would write (``flux.png``, ``fourier_<band>.png``, ...) and that s2s did
    not write is the user's, and refused too; other files in the directory do not count and are
    never touched.
    """
    from survey2survey.plots import PLOT_NAMES, is_s2s_png

    out = Path(out)
    found = [name for name in REPORT_FILES if (out / name).exists()]
    if found and not overwrite:
        raise UsageError(f"{out}: holds an earlier report ({', '.join(found)}): use --overwrite to replace it "
                         "or choose another --out")
    names = {f"{m}.png" for m in plotted if m in PLOT_NAMES and m != "fourier"}

    def would_write(name: str) -> bool:
        return name in names or ("fourier" in plotted and re.fullmatch(r"fourier_[^_]+\.png", name) is not None)

    theirs = sorted(p.name for p in out.glob("*.png") if would_write(p.name) and not is_s2s_png(p))
    if theirs and not overwrite:
        shown = ", ".join(theirs[:3]) + (f" and {len(theirs) - 3} more" if len(theirs) > 3 else "")
        raise UsageError(f"{out}: holds {shown}, which the report's plots would replace: use --overwrite to "
                         "replace them or choose another --out")


def _earlier_report_files(out: Path) -> set[str]:
    """Plain file names (in ``out``) of the report there before, from its metrics.json."""
    try:
        report = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        names = set(report.get("files", {}).values()) if report.get("format") == EVALUATE_FORMAT else set()
    except (OSError, ValueError, AttributeError):
        return set()
    return {n for n in names if isinstance(n, str) and n == Path(n).name and n not in (".", "..")}


def write_report(evaluation: Evaluation, out: str | os.PathLike, plots: bool = True) -> dict[str, str]:
    """Write metrics.json, per_image.csv, arrays.npz and the plots into ``out``.

    Every file is written to a temporary name in ``out`` and renamed into place.  The
    files of an earlier report there (listed in its metrics.json) that this one does not
    write again are removed; nothing else in ``out`` is touched.  Interrupted (Ctrl-C,
    SIGTERM, a full disk), the files it had added are removed again, so the same command
    can be run again.

    Returns
    -------
    dict
        File kind -> path written.
    """
    out = Path(out)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{out}: cannot create the report directory ({exc.strerror or exc})") from None
    before = {e.name for e in out.iterdir()}
    try:
        return _write_report_files(evaluation, out, plots)
    except BaseException:  # Ctrl-C, a full disk: no half report left to block the same command again
        _remove_new_report_files(out, before, created)
        raise


def _remove_new_report_files(out: Path, before: set[str], created: bool) -> None:
    """Remove the report files (and s2s's PNGs) that appeared in ``out`` since ``before``."""
    from survey2survey.plots import is_s2s_png

    for entry in out.iterdir():
        if entry.name not in before and (entry.name in REPORT_FILES or (entry.suffix == ".png" and is_s2s_png(entry))):
            entry.unlink(missing_ok=True)
    if created:
        with contextlib.suppress(OSError):
            out.rmdir()  # only when empty


def _write_report_files(evaluation: Evaluation, out: Path, plots: bool) -> dict[str, str]:
    earlier = _earlier_report_files(out)
    files: dict[str, str] = {}
    csv_path = out / "per_image.csv"
    _atomic_bytes(csv_path, per_image_csv(evaluation).encode("utf-8"))
    files["per_image_csv"] = str(csv_path)
    npz_path = out / "arrays.npz"
    buf = io.BytesIO()
    np.savez_compressed(buf, **_arrays(evaluation))
    _atomic_bytes(npz_path, buf.getvalue())
    files["arrays"] = str(npz_path)
    if plots:
        for kind, path in draw_plots(evaluation, out).items():
            files[f"plot_{kind}"] = str(path)
    evaluation.files = files
    evaluation.report["files"] = {k: Path(v).name for k, v in files.items()}
    json_path = out / "metrics.json"
    text = json.dumps(evaluation.report, indent=2, allow_nan=False, default=_json_default)
    _atomic_bytes(json_path, (text + "\n").encode("utf-8"))
    files["metrics_json"] = str(json_path)
    for name in earlier - {Path(p).name for p in files.values()}:  # a plot of the earlier report only
        (out / name).unlink(missing_ok=True)
    return files


def draw_plots(evaluation: Evaluation, out: str | os.PathLike) -> dict[str, Path]:
    """Draw each evaluated metric's plots (its class's ``plot``) into the directory ``out``.

    Returns
    -------
    dict
        Plot kind (``flux``, ``fourier_r``, ...) -> path written.
    """
    from survey2survey.errors import first_line
    from survey2survey.metrics import get_metric_class

    done: dict[str, Path] = {}
    if not any(m.pairs for m in evaluation.methods.values()):
        evaluation.warnings.append("nothing measured: every matched pair failed (each listed): no plots")
        return done
    for name in evaluation.metrics:
        try:
            done.update(get_metric_class(name).plot(evaluation, Path(out)))
        except OSError as exc:  # the report directory cannot be written: the whole report fails
            raise write_failure(exc.filename or out, exc) from None
        except Exception as exc:  # data a plot cannot show (all values <= 0 on a log axis, ...)
            evaluation.warnings.append(f"{name} plot not drawn ({first_line(exc, with_type=True)}); "
                                       "the measurements are in the report")
    return done


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        v = obj.item()
        return v if not (isinstance(v, float) and not np.isfinite(v)) else None
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --- the terminal table -------------------------------------------------------------


def _format_value(x: float | None, digits: int = 3) -> str:
    """A number for the terminal table: 3 significant digits, no needless exponents."""
    if x is None or not np.isfinite(x):
        return "—"
    ax = abs(x)
    if ax == 0:
        return "0"
    if ax < 1e-3 or ax >= 1e6:
        return f"{x:.{digits - 1}e}"
    if ax >= 10 ** digits:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def table_rows(evaluation: Evaluation, band: str) -> list[tuple[str, str, str, str, list[str]]]:
    """Headline rows for one band: (metric, label, unit, ideal, [value per method]).

    Per-image quantities read ``median ± spread`` (spread = sigma_MAD over the images);
    set-level quantities are one number.
    """
    from survey2survey.metrics import get_metric_class

    rows: list[tuple[str, str, str, str, list[str]]] = [
        ("", "images measured", "", "", [str(len(m.pairs)) for m in evaluation.methods.values()])
    ]
    flux_unit = evaluation.survey.flux_unit
    for metric in evaluation.metrics:
        cls = get_metric_class(metric)
        for q in cls.columns:
            if not q.headline:
                continue
            cells = []
            for m in evaluation.methods.values():
                s = m.summaries.get(band, {}).get(metric, {}).get("per_image", {}).get(q.name)
                if not s or s.get("median") is None:
                    cells.append("—")
                else:
                    cells.append(f"{_format_value(s['median'])} ± {_format_value(s['spread'], 2)}")
            rows.append((metric, q.label, q.unit_for(flux_unit), q.ideal, cells))
        for q in cls.set_quantities:
            if not q.headline:
                continue
            cells = [
                _format_value(m.summaries.get(band, {}).get(metric, {}).get("set", {}).get(q.name))
                for m in evaluation.methods.values()
            ]
            rows.append((metric, q.label, q.unit_for(flux_unit), q.ideal, cells))
    return rows
