"""Where ``s2s prepare`` may write, and what ``--overwrite`` may remove there.

* an output directory never is, nor contains, an input (cutouts, catalogs):
  :func:`refuse_output_over_inputs`;
* ``--overwrite`` removes only what ``s2s prepare`` wrote: the entries of a prepared
  dataset (:func:`dataset_entries`) or of a simulation (:func:`simulation_entries`),
  recognised by their ``dataset.json`` / ``simulation.json``; anything else in the
  directory stays (:func:`survey2survey.data.staged_directory`);
* the arrays must fit on the disk: :func:`check_free_space` before any work, and each
  array's blocks are reserved when it is created (:func:`survey2survey.data.rows.allocate`),
  so that a full disk is an error line, never a SIGBUS.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from survey2survey.errors import UsageError
from survey2survey.surveys import Survey

__all__ = [
    "DATASET_ENTRIES",
    "dataset_entries",
    "simulation_entries",
    "refuse_output_over_inputs",
    "check_free_space",
]

#: Every name ``s2s prepare`` writes in a dataset directory; ``--overwrite`` removes
#: these (and only these) from an existing dataset.
DATASET_ENTRIES = frozenset(
    ["dataset.json", "manifest.csv", "report.csv"]
    + [f"{split}_{d}.npy" for split in ("unpaired", "train", "test") for d in ("a", "b", "b_on_a")]
)


def dataset_entries(directory: Path) -> list[str]:
    """The entries of ``directory`` that ``s2s prepare`` wrote, ``dataset.json`` first.

    Empty unless ``directory`` holds a prepared dataset (its ``dataset.json`` says so);
    only the names of :data:`DATASET_ENTRIES` count, whatever ``dataset.json`` lists.
    """
    try:
        info = json.loads((Path(directory) / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(info, dict) or not str(info.get("format", "")).startswith("s2s-dataset/"):
        return []
    present = {p.name for p in Path(directory).iterdir()} & DATASET_ENTRIES
    return sorted(present, key=lambda name: name != "dataset.json")


def simulation_entries(directory: Path) -> list[str]:
    """The entries of ``directory`` that a simulation wrote, ``simulation.json`` first.

    Empty unless ``directory`` holds a simulation (its ``simulation.json`` says so).
    """
    try:
        meta = json.loads((Path(directory) / "simulation.json").read_text(encoding="utf-8"))
        names = {"simulation.json", "catalog.ecsv", "truth", "dataset",
                 str(meta["config"]["survey_a"]), str(meta["config"]["survey_b"])}
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not str(meta.get("format", "")).startswith("s2s-simulation/"):
        return []
    present = {p.name for p in Path(directory).iterdir()} & names
    return sorted(present, key=lambda name: name != "simulation.json")


def refuse_output_over_inputs(out: Path, sources: dict[str, list], catalog_paths: dict) -> None:
    """Refuse an ``out`` that is, or contains, an input cutout or catalog (``--overwrite``
    would replace the directory holding them).

    An ``out`` inside an input directory is fine: a dataset holds no FITS file, so a later
    scan of that directory finds the same cutouts.
    """
    home = out.resolve()  # a link to an input directory is that directory
    seen: set[Path] = set()
    files = [Path(f) for f in catalog_paths.values() if f]
    files += [p for d in "ab" for source in sources[d] for p in source.paths]
    for file in files:
        parent = file.parent
        if parent in seen:
            continue
        seen.add(parent)
        full = parent.resolve() / file.name
        if full.is_relative_to(home):
            raise UsageError(f"{out}: is or contains the input {file}: prepare never writes over its inputs "
                             "(choose another --out)")


def check_free_space(out: Path, surveys: dict[str, Survey], sources: dict[str, list], regrid: bool) -> None:
    """Refuse, before any work, a dataset whose arrays cannot fit on ``out``'s file system."""
    row = {d: 4 * s.n_bands * s.cutout_size**2 for d, s in surveys.items()}  # float32 bytes per cutout
    need = sum(row[d] * len(sources[d]) for d in "ab")
    if regrid:
        need += len(sources["b"]) * 4 * surveys["b"].n_bands * surveys["a"].cutout_size ** 2
    existing = next(p for p in (out.parent.resolve(), *out.parent.resolve().parents) if p.exists())
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return  # not knowable here: the reservation of each array still reports a full disk
    if need > free:
        raise UsageError(f"{out}: the dataset needs at least {_size(need)}, only {_size(free)} free on "
                         f"{existing}'s file system (free space or choose another --out)")


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
