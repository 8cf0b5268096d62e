"""Measure how good translated cutouts are against reference cutouts of the same survey.

  s2s evaluate --pred out/ours --ref data/cfht --out report/
  s2s evaluate --pred ours=out/ours --pred cyclegan=out/cg --ref data/cfht --band r
  s2s evaluate --pred out/ours --ref sim/cfht --truth sim/truth/cfht --metrics photometry,noise

Files are matched by object id (the file name, ignoring a survey suffix such as
'.cfht'), else by sky position (WCS centres within 1 arcsec).  Prints a table per band
(median ± robust spread over the images, and the ideal value of each quantity) and writes
metrics.json, per_image.csv, arrays.npz and PNG plots into the report directory.

Metrics (default: all that apply; those measured against the noise-free images need
--truth): {metrics}.

Exit codes: 0 all files matched and measured; 1 some files failed to read or match (one
line each, the rest is measured); 2 misuse (no match at all, unknown metric or band).
"""

from __future__ import annotations

from typing import List, Optional

import typer

from survey2survey.metrics import metric_names

# The metric list comes from the registry (survey2survey.metrics), like --metrics' check.
__doc__ = __doc__.format(metrics=", ".join(metric_names()))

#: Unmatched files listed on the terminal per category (all of them go to metrics.json).
_MAX_LISTED = 20


def _parse_pred(values: list[str]) -> dict[str, list[str]]:
    """``NAME=PATH`` or ``PATH`` (named after the directory) -> {name: [paths]}."""
    import re
    from pathlib import Path

    from survey2survey.errors import UsageError

    out: dict[str, list[str]] = {}
    for value in values:
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9_.+-]*)=(.*)$", value)
        if m and not Path(value).exists():
            name, path = m.group(1), m.group(2)
            if not path:
                raise UsageError(f"--pred {value!r}: give a directory, file or glob after '='")
            if name in out:  # two sets under one name would be measured as one
                raise UsageError(f"--pred name {name!r} is given twice ({name}={out[name][0]}, {value}): "
                                 "give each set of predictions its own name")
            out[name] = [path]
            continue
        # unnamed: called after its directory, made unique ("out", "out-2")
        base = Path(value.rstrip("/\\")).name or "pred"
        base = base if base not in (".", "..") else "pred"
        name, k = base, 1
        while name in out:
            k += 1
            name = f"{base}-{k}"
        out[name] = [value]
    return out


def main(
    pred: List[str] = typer.Option(
        ..., "--pred", "-p", metavar="[NAME=]DIR",
        help="Translated cutouts (directory, file or glob). Repeat with NAME=DIR to compare methods in one table.",
    ),
    ref: List[str] = typer.Option(
        ..., "--ref", "-r", metavar="DIR", help="Reference (real) cutouts of the same survey (repeatable)."
    ),
    truth: Optional[List[str]] = typer.Option(
        None, "--truth", metavar="DIR",
        help="Noise-free reference images (as the simulator writes them): enables the metrics measured against them.",
    ),
    metrics: Optional[str] = typer.Option(
        None, "--metrics", "-m", metavar="LIST",
        help=f"Comma-separated: {','.join(metric_names())} (default: all that apply).",
    ),
    band: str = typer.Option("all", "--band", "-b", metavar="BAND|all", help="Band(s) to evaluate: r, g,r or all."),
    survey: Optional[str] = typer.Option(
        None, "--survey", help="Survey of the cutouts (default: from the headers, SURVEY / S2STGTSV)."
    ),
    out: str = typer.Option(
        "evaluation", "--out", "-o", metavar="REPORT_DIR", help="Report directory (metrics.json, per_image.csv, plots)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an earlier report in REPORT_DIR (only the files a report consists of)."
    ),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw the PNG plots."),
    r_max: Optional[float] = typer.Option(
        None, "--r-max", metavar="PX", help="Radius for magnitude, S/N and profile (default: half the cutout)."
    ),
    aperture: Optional[float] = typer.Option(
        None, "--aperture", metavar="ARCSEC", help="Photometry aperture radius (default 2 arcsec)."
    ),
    match_radius: float = typer.Option(
        1.0, "--match-radius", metavar="ARCSEC", help="Largest separation when matching by sky position."
    ),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", metavar="N", help="Threads (default: up to 2)."),
    align: bool = typer.Option(
        False, "--align", help="Shift each prediction onto its reference's pixel grid, as their WCSs place them "
        "(a Fourier shift: no smoothing); without it the offset counts as error and a warning says when it is large.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    from rich.console import Console

    from survey2survey.errors import EXIT_PARTIAL
    from survey2survey.evaluate import evaluate
    from survey2survey.progress import table_console

    pred_sets = _parse_pred(list(pred))
    err = Console(stderr=True, highlight=False)
    console = table_console()  # a log keeps every column of a wide table

    progress_cb = None
    bar = None
    if not quiet and err.is_terminal:
        from survey2survey.progress import progress_bar

        bar = progress_bar(transient=True, elapsed=False)
        tasks: dict[str, int] = {}

        def progress_cb(method: str, done: int, total: int) -> None:
            if method not in tasks:
                tasks[method] = bar.add_task(f"evaluating {method}", total=total)
            bar.update(tasks[method], completed=done)

    if bar is not None:
        bar.start()
    try:
        result = evaluate(
            pred_sets, list(ref), list(truth) if truth else None, metrics=metrics, band=band, survey=survey,
            out=out, overwrite=overwrite, plots=plots, match_radius=match_radius, r_max=r_max, aperture_radius=aperture, jobs=jobs,
            progress=progress_cb, align=align,
        )
    finally:
        if bar is not None:
            bar.stop()

    _print_tables(console, result)
    _print_problems(err, result)
    if result.files:
        console.print(f"report: {result.files.get('metrics_json')} , per_image.csv, arrays.npz, "
                      f"{sum(1 for k in result.files if k.startswith('plot_'))} plot(s) in {out}")
    if result.exit_code:
        raise typer.Exit(EXIT_PARTIAL)


def _print_tables(console, result) -> None:
    from rich.table import Table

    from survey2survey.evaluate import table_rows

    methods = list(result.methods)
    for band in result.bands:
        table = Table(
            title=f"{result.survey.name} {band} band: median ± spread over images (spread = σ_MAD)",
            title_justify="left",
        )
        table.add_column("metric", style="dim")
        table.add_column("quantity", min_width=18)
        table.add_column("unit")
        table.add_column("ideal", justify="center", no_wrap=True)
        for m in methods:
            table.add_column(m, justify="right")
        previous = None
        for metric, label, unit, ideal, cells in table_rows(result, band):
            if previous is not None and metric != previous:
                table.add_section()
            table.add_row(metric if metric != previous else "", label, unit, ideal, *cells)
            previous = metric
        console.print(table)
    from survey2survey.metrics import get_metric_class

    notes = ["ideal: value of a perfect translation ('lower'/'higher': the better direction)."]
    for name in result.metrics:
        notes += get_metric_class(name).table_notes(result.notes)
    for line in notes:
        console.print(f"[dim]{line}[/dim]")


def _print_problems(err, result) -> None:
    def warn(text: str) -> None:
        err.print(f"s2s: warning: {text}", markup=False, soft_wrap=True)

    for path, reason in result.failures:
        warn(f"{path}: {reason}")
    for line in result.warnings:
        warn(line)
    groups = [
        ([f"{path}: [{m}] no reference matched (by id or within "
          f"{result.parameters.get('match_radius_arcsec', 1.0):g} arcsec)" for m, path in result.unmatched]),
        ([f"{path}: no prediction of {m} for this reference"
          for m, paths in result.unused_ref.items() for path in paths]),
        ([f"{path}: no truth image for this reference (not measured)" for path in result.ref_without_truth]),
    ]
    for lines in groups:
        for line in lines[:_MAX_LISTED]:
            warn(line)
        if len(lines) > _MAX_LISTED:
            warn(f"... and {len(lines) - _MAX_LISTED} more like this (all listed in metrics.json)")
