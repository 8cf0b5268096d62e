"""What ``s2s prepare`` does, as one library call: real cutouts, or a simulated pair, to a dataset.

:func:`prepare` either builds the dataset from two surveys' cutouts
(:func:`survey2survey.data.prepare.prepare_dataset`), or first simulates the survey pair
(:func:`survey2survey.data.simulate.simulate_survey_pair`) into ``out`` and then builds
``out/dataset`` from those files, as from real ones.  A simulation already complete
under ``out`` (same configuration, no dataset yet: a run stopped after simulating) is not
redone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from survey2survey.errors import UsageError

__all__ = ["PrepareOutcome", "prepare"]


@dataclass
class PrepareOutcome:
    """What :func:`prepare` did.

    Attributes
    ----------
    dataset : PrepareResult or None
        The dataset built (None with ``fits_only``).
    simulation : SimulationResult or None
        The simulation run (None for real cutouts, or when a complete one was reused).
    """

    dataset: Any = None
    simulation: Any = None

    @property
    def exit_code(self) -> int:
        """1 when some inputs were refused (listed in the dataset's report.csv), else 0."""
        return 1 if self.dataset is not None and self.dataset.skipped else 0


def prepare(
    out: str | Path,
    a: Sequence[str] | None = None,
    b: Sequence[str] | None = None,
    *,
    simulate: int | None = None,
    unpaired_a: int | None = None,
    unpaired_b: int | None = None,
    psf: str = "kolmogorov",
    mag_range: tuple[float, float] | None = None,
    population: str = "default",
    stars: float | None = None,
    source_noise: bool | None = None,
    fits_only: bool = False,
    a_survey: str = "sdss",
    b_survey: str = "cfht",
    catalog: str | None = None,
    a_catalog: str | None = None,
    b_catalog: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
    echo: Callable[[str], None] = print,
    **dataset_options: Any,
) -> PrepareOutcome:
    """Build a dataset from the cutouts ``a`` and ``b``, or from a simulated pair (``simulate``).

    Parameters
    ----------
    out : path
        The dataset directory; with ``simulate``, the simulation directory (the dataset
        goes to ``out/dataset``).
    a, b : sequence of str
        Cutouts of each survey (files, directories, globs); not with ``simulate``.
    simulate : int, optional
        Simulate this many paired galaxies with GalSim instead of reading ``a``/``b``.
    unpaired_a, unpaired_b : int, optional
        With ``simulate``: galaxies seen by one survey only (default: ``simulate``).
    psf, mag_range : optional
        With ``simulate``: PSF profile and r-band AB magnitude range (default: the
        population's, 16-21 for ``default``).
    population : str
        With ``simulate``: galaxy population preset, a key of
        :data:`survey2survey.data.simulate.POPULATIONS` (``default`` or ``realistic``).
    stars : float, optional
        With ``simulate``: mean number of field stars per cutout (default: the population's).
    fits_only : bool
        With ``simulate``: write the FITS cutouts, catalog and truth, no dataset.
    a_survey, b_survey, catalog, a_catalog, b_catalog, seed, overwrite, progress
        As for :func:`~survey2survey.data.prepare.prepare_dataset` (``seed`` also seeds
        the simulation).
    echo : callable
        Where the simulation's one-line summary goes (before the dataset is built).
    **dataset_options
        ``match_radius``, ``n_test``, ``test_fraction``, ``regrid``, ``max_nan_fraction``,
        ``workers`` of :func:`~survey2survey.data.prepare.prepare_dataset`.

    Returns
    -------
    PrepareOutcome

    Raises
    ------
    UsageError
        Options that do not go together, bad option values (before any simulation).
    """
    from survey2survey.data.prepare import check_options, prepare_dataset

    outcome = PrepareOutcome()
    common = dict(a_survey=a_survey, b_survey=b_survey, seed=seed, progress=progress, **dataset_options)
    if simulate is None:
        if unpaired_a is not None or unpaired_b is not None or fits_only or stars is not None \
                or population != "default" or mag_range is not None or source_noise is not None:
            raise UsageError("--unpaired-a, --unpaired-b, --fits-only, --mag-range, --stars, --population and "
                             "--source-noise go with --simulate")
        if not a or not b:
            raise UsageError("give the cutouts of both surveys (--a and --b), or --simulate N")
        outcome.dataset = prepare_dataset(list(a), list(b), Path(out), catalog=catalog, a_catalog=a_catalog,
                                          b_catalog=b_catalog, overwrite=overwrite, **common)  # fmt: skip
        return outcome
    if a or b:
        raise UsageError("--simulate makes its own cutouts: leave out --a and --b")
    if catalog or a_catalog or b_catalog:
        raise UsageError("--simulate uses the cutouts' WCS for positions: leave out --catalog")
    from survey2survey.data.simulate import SimulationConfig, simulate_survey_pair

    chosen = {"mag_range": tuple(mag_range)} if mag_range is not None else {}
    if stars is not None:
        chosen["star_fraction"] = stars
    if source_noise is not None:
        chosen["source_noise"] = source_noise
    config = SimulationConfig.for_population(
        population,
        n_paired=simulate,
        n_unpaired_a=simulate if unpaired_a is None else unpaired_a,
        n_unpaired_b=simulate if unpaired_b is None else unpaired_b,
        survey_a=a_survey,
        survey_b=b_survey,
        seed=seed,
        psf=psf,
        **chosen,
    )
    sa, sb = config.surveys()
    sim_dir = Path(out)
    if not fits_only:  # refuse bad dataset options before spending time on the simulation
        check_options(seed=seed, **{k: v for k, v in dataset_options.items() if k != "regrid"})
    if not overwrite and not fits_only and _same_simulation_without_dataset(sim_dir, config):
        # a run of this same command stopped after its simulation: do the rest only
        echo(f"{sim_dir}: this simulation is already complete; building its dataset")
    else:
        outcome.simulation = simulate_survey_pair(config, out, workers=dataset_options.get("workers"),
                                                  overwrite=overwrite, progress=progress)  # fmt: skip
        echo(outcome.simulation.summary())
    if not fits_only:
        # overwrite: the simulation directory was just (re)made, and its dataset with it
        outcome.dataset = prepare_dataset([str(sim_dir / sa.name)], [str(sim_dir / sb.name)], sim_dir / "dataset",
                                          overwrite=True, **common)  # fmt: skip
    return outcome


def _same_simulation_without_dataset(sim_dir: Path, config) -> bool:
    """True if ``sim_dir`` is a finished simulation of ``config`` whose dataset is missing.

    A simulation directory only appears under its final name once complete (it is built
    under a temporary name), so its ``simulation.json`` marks a finished simulation.
    """
    try:
        meta = json.loads((sim_dir / "simulation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    same = meta.get("config") == json.loads(json.dumps(config.to_dict()))
    return same and not (sim_dir / "dataset").exists()
