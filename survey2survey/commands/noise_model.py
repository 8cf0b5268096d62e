"""Measure a survey's sky noise (sigma and power spectrum per band) from its cutouts, no training."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer


def main(
    inputs: List[Path] = typer.Argument(..., metavar="INPUT...", help="FITS cutouts of one survey: files, directories, globs."),
    survey: str = typer.Option(..., "--survey", metavar="SURVEY", help="The survey the cutouts come from."),
    out: Path = typer.Option(..., "--out", metavar="FILE", help="Noise model file to write (.npz)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    from survey2survey.physics.noise import lag1_correlation, measure_noise_model, sample_noise

    model, skipped = measure_noise_model(inputs, survey)
    path = model.save(out, overwrite=overwrite)
    h, w = model.spectrum.shape[1:]
    typer.echo(f"wrote {path}: {model.survey} noise from {model.n_cutouts} cutout(s) of {h}x{w} px")
    for j, band in enumerate(model.bands):
        maps = sample_noise(model.survey, band, 32, (h, w), seed=0, noise_model=model)
        typer.echo(f"  {band}: sigma {model.sigma[j]:.4g} (native / pixel), lag-1 correlation {lag1_correlation(maps):+.3f}")
    for line in skipped:
        typer.echo(f"s2s: warning: skipped {line}", err=True)
    typer.echo(f'use it: noise_model = "{path}" in the [{model.survey}] table of your --surveys TOML file')
    if skipped:
        raise typer.Exit(1)
