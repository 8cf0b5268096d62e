"""Build a training dataset from two surveys' cutouts, or simulate a survey pair.

Real cutouts: s2s prepare --a SDSS_DIR --b CFHT_DIR --out DATASET

Pairs are found by sky cross-match (--catalog positions, or each cutout's
WCS centre) and split into train and test; pixels go to model space (flux
factor, then the paper's stretch).  Bad cutouts are skipped and listed in
DATASET/report.csv (exit code 1).

Simulated pair: s2s prepare --simulate 1000 --out SIMDIR

GalSim renders the same galaxies as both surveys see them: SIMDIR/<a>/ and
SIMDIR/<b>/ (FITS cutouts), SIMDIR/catalog.ecsv and SIMDIR/truth/ (noise-free
cubes, noise sigma per image and band).  The dataset is then built from those
files, as from real ones, in SIMDIR/dataset/.  --population realistic draws
r 14-21 galaxies with varied bulges and field stars (--stars MEAN sets how many).

Both build under a temporary name and rename when complete: a killed run
leaves no partial output, and running the same command again finishes it.
"""

from __future__ import annotations

from typing import List, Optional

import typer


def main(
    a: Optional[List[str]] = typer.Option(
        None, "--a", metavar="DIR|GLOB|FILE", help="Cutouts of survey a (repeatable; directories are searched recursively)."
    ),
    b: Optional[List[str]] = typer.Option(None, "--b", metavar="DIR|GLOB|FILE", help="Cutouts of survey b (repeatable)."),
    out: str = typer.Option(..., "--out", "-o", metavar="DIR",
                            help="Dataset directory to write (with --simulate: the simulation directory)."),
    a_survey: str = typer.Option("sdss", "--a-survey", help="Survey of domain a."),
    b_survey: str = typer.Option("cfht", "--b-survey", help="Survey of domain b."),
    catalog: Optional[str] = typer.Option(
        None, "--catalog", metavar="FILE", help="Positions (CSV/ECSV/FITS table: id, ra, dec in deg) for both surveys; "
        "ids are file names without band and suffix. Default: each cutout's WCS centre."
    ),
    a_catalog: Optional[str] = typer.Option(None, "--a-catalog", metavar="FILE", help="Positions of survey a only."),
    b_catalog: Optional[str] = typer.Option(None, "--b-catalog", metavar="FILE", help="Positions of survey b only."),
    match_radius: float = typer.Option(1.0, "--match-radius", metavar="ARCSEC", help="Largest separation of a pair."),
    n_test: Optional[int] = typer.Option(None, "--n-test", metavar="N", help="Pairs kept for testing."),
    test_fraction: Optional[float] = typer.Option(
        None, "--test-fraction", metavar="F", help="Fraction of pairs kept for testing (default 0.5)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the train/test split (and of the simulation)."),
    regrid: bool = typer.Option(
        False, "--regrid/--no-regrid", help="Also store b regridded onto a's grid, flux conserved (methods g, h)."
    ),
    max_nan_fraction: float = typer.Option(
        0.05, "--max-nan-fraction", metavar="F", help="Skip a cutout with a band with more NaN pixels than this."
    ),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", metavar="N", help="Processes (default: all cores)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the dataset (or simulation) prepare wrote in --out; other files there stay."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    simulate: Optional[int] = typer.Option(
        None, "--simulate", metavar="N", help="Simulate N paired galaxies with GalSim instead of reading --a/--b."
    ),
    unpaired_a: Optional[int] = typer.Option(
        None, "--unpaired-a", metavar="N", help="With --simulate: galaxies seen by survey a only (default: N)."
    ),
    unpaired_b: Optional[int] = typer.Option(
        None, "--unpaired-b", metavar="N", help="With --simulate: galaxies seen by survey b only (default: N)."
    ),
    psf: str = typer.Option("kolmogorov", "--psf", help="With --simulate: PSF profile, kolmogorov or moffat."),
    mag_range: Optional[str] = typer.Option(
        None, "--mag-range", metavar="MIN,MAX",
        help="With --simulate: r-band AB magnitude range of the galaxies (default: the population's, 16,21 or 14,21).",
    ),
    population: str = typer.Option(
        "default", "--population", metavar="NAME",
        help="With --simulate: galaxy population, default or realistic (r 14-21, 0.5 field stars per cutout, "
        "bulge Sersic n in 2,3,4, bulge axis ratio from 0.4, disks up to 4\").",
    ),
    stars: Optional[float] = typer.Option(
        None, "--stars", metavar="MEAN",
        help="With --simulate: mean number of field stars per cutout (Poisson; default: the population's, 0 or 0.5).",
    ),
    source_noise: Optional[bool] = typer.Option(
        None, "--source-noise/--no-source-noise",
        help="With --simulate: the sources' own Poisson noise on top of the sky's (default on; "
        "--no-source-noise remakes simulations of earlier versions).",
    ),
    fits_only: bool = typer.Option(
        False, "--fits-only", help="With --simulate: write the FITS cutouts, catalog and truth, no dataset."
    ),
) -> None:
    from survey2survey.data.build import prepare
    from survey2survey.data.prepare import EmptyDatasetError
    from survey2survey.errors import EXIT_PARTIAL, UsageError

    mags = None
    if mag_range is not None:
        try:
            mags = tuple(float(v) for v in mag_range.split(","))
        except ValueError:
            mags = ()
        if len(mags) != 2:
            raise UsageError(f"--mag-range must be MIN,MAX (e.g. 16,21), got {mag_range!r}")
    try:
        outcome = prepare(
            out, a, b, simulate=simulate, unpaired_a=unpaired_a, unpaired_b=unpaired_b, psf=psf, mag_range=mags,
            population=population, stars=stars, source_noise=source_noise,
            fits_only=fits_only, a_survey=a_survey, b_survey=b_survey, catalog=catalog, a_catalog=a_catalog,
            b_catalog=b_catalog, match_radius=match_radius, n_test=n_test, test_fraction=test_fraction, seed=seed,
            regrid=regrid, max_nan_fraction=max_nan_fraction, workers=workers, overwrite=overwrite,
            progress=not quiet, echo=typer.echo,
        )  # fmt: skip
    except EmptyDatasetError as exc:  # every input refused: one line each, then why nothing was written
        for file, reason in exc.skipped:
            typer.echo(f"  {file}: {reason}")
        raise
    if outcome.dataset is not None:
        for line in outcome.dataset.summary_lines(max_skipped=len(outcome.dataset.skipped)):  # one line per refused input
            typer.echo(line)
    if outcome.exit_code:
        raise typer.Exit(EXIT_PARTIAL)
