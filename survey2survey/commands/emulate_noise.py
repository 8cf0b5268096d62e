"""Sample noise maps from a model's noise emulator (or the survey's registry noise) into a FITS cube (native units)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import typer


def main(
    band: str = typer.Option(..., "--band", help="Band of the survey, or 'all'."),
    n: int = typer.Option(..., "--n", metavar="N", help="Noise maps per band."),
    survey: Optional[str] = typer.Option(
        None, "--survey", metavar="SURVEY", help="Whose noise; default the model's first noise-emulated survey."
    ),
    model: Optional[str] = typer.Option(
        None, "--model", metavar="DIR|physics",
        help="Model directory (default $S2S_MODEL, else the shipped models/sdss-cfht), or 'physics': the survey's "
        "registry noise (sky sigma or its noise-model file), no training; needs --survey.",
    ),
    size: Optional[Tuple[int, int]] = typer.Option(
        None, "--size", metavar="H W", help="Map size in pixels; default the survey's cutout size."
    ),
    seed: int = typer.Option(
        0, "--seed", metavar="S", help="Map i is drawn from (seed, i); with --model physics band k's from (seed, k, i)."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", metavar="FILE", help="Output FITS file; default noise-<survey>-<band>.fits."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
) -> None:
    from survey2survey.pipelines.emulate import emulate_noise

    report = emulate_noise(
        band, n, survey=survey, model_dir=model, size=tuple(size) if size else None, seed=seed, out=out,
        overwrite=overwrite, device=device,
    )
    h, w = report.shape
    typer.echo(
        f"wrote {report.path}: {report.n} x {len(report.bands)} {report.survey} noise map(s) of {h}x{w} px "
        f"in {report.seconds:.2f} s ({report.maps_per_second:.0f} maps/s)"
    )
    for band_name in report.bands:
        a = report.amplitude[band_name]
        if model is not None and model.strip().lower() == "physics":
            typer.echo(f"  {band_name}: model sigma {a['mean']:.4g}; median pixel RMS {report.rms_native[band_name]:.4g} (native)")
            continue
        # one amplitude for every map (a registry noise) has float32 rounding for its spread: say 0
        std = a["std"] if a["max"] - a["min"] > 1e-6 * abs(a["mean"]) else 0.0
        typer.echo(
            f"  {band_name}: amplitude (model space) median {a['median']:.4g}, mean {a['mean']:.4g}, "
            f"std {std:.3g}, range {a['min']:.4g}..{a['max']:.4g}; median pixel RMS {report.rms_native[band_name]:.4g} (native)"
        )
