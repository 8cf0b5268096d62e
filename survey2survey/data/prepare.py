"""FITS cutouts of two surveys -> a prepared dataset directory for training.

The path a user's cutouts take (``s2s prepare``), in three passes:

1. **Ingest** (process pool, streaming).  Every cutout of survey a and of survey b is read
   with :func:`survey2survey.fits_io.read_cutout`, checked (size, bands, NaN fraction,
   empty bands), brought to model space exactly once (x ``flux_factor`` -> nanomaggies,
   then the paper's stretch, :func:`survey2survey.surveys.to_model_space`) and written by
   the worker straight into row ``i`` of a memory-mapped ``unpaired_<domain>.npy`` that has
   one row per input.  Optionally the b cutout is also regridded onto a's grid
   (:mod:`survey2survey.data.regrid`).  Workers return only small records (id, WCS centre,
   row digest, or the reason the cutout was refused), so the parent never holds pixels.
2. **Pairing.**  Positions come from the catalog(s) or each cutout's WCS centre; pairs
   are found by a mutual-nearest-neighbour sky cross-match within ``match_radius``
   (:func:`survey2survey.data.crossmatch.crossmatch`); pairs are split into train and test
   with a seeded permutation of the pairs sorted by id, so the split does not depend on
   file order or worker timing.
3. **Layout.**  Paired rows are copied to ``train_*``/``test_*`` (aligned: row ``k`` of
   ``train_a`` and ``train_b`` is the same galaxy); the holes they and the refused cutouts
   leave in ``unpaired_*`` are filled with rows from the end, and the file is cut to length
   (``O(pairs + refused)`` row moves, not a rewrite).  Unpaired rows are therefore not in
   input order: ``manifest.csv`` gives the id of every row.

The directory (``docs/dev/CONTRACTS.md``) is built under a temporary name and renamed
when complete::

    dataset.json   format, version, surveys, bands, transform, counts, arrays, fingerprint, options
    manifest.csv   id,ra,dec,survey,domain,split,index,source_file
    report.csv     file,reason   (every input that was refused)
    unpaired_a.npy unpaired_b.npy train_a.npy train_b.npy test_a.npy test_b.npy
    [unpaired_b_on_a.npy train_b_on_a.npy test_b_on_a.npy]

``source_file`` (one path, or one per band joined with ``;``) resolves from the dataset
itself: relative to the dataset directory when the input lies under the directory that
holds the dataset (a simulation's ``SIM/dataset`` reads ``../sdss/<id>.fits``), so the whole
tree can move; absolute otherwise (inputs elsewhere).
:func:`survey2survey.data.loader.source_paths` turns it into paths.

The fingerprint is the SHA-256 of the format string, of every array's name and shape and
the SHA-256 of each of its rows in row order, then of the bytes ``manifest.csv`` would have
without its ``source_file`` column (``id,ra,dec,survey,domain,split,index``, as
:mod:`csv` writes them): it changes when any pixel, row order, id, position, survey, domain
or split changes, but not with where the input files or the dataset lie or the directory
``s2s prepare`` ran from, and it costs no extra pass over the data.  (``s2s-dataset/1``
wrote ``source_file`` relative to that directory and hashed the whole manifest.)
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from survey2survey import __version__
from survey2survey.data.loader import DATASET_FORMAT
from survey2survey.data.output import DATASET_ENTRIES, check_free_space, dataset_entries, refuse_output_over_inputs
from survey2survey.data.rows import allocate as _allocate
from survey2survey.data.rows import compact as _compact
from survey2survey.data.rows import gather as _gather
from survey2survey.data.rows import move_rows as _move_rows
from survey2survey.errors import EXIT_PARTIAL, CutoutError, S2SError, UsageError
from survey2survey.surveys import Survey, get_survey, to_model_space

__all__ = [
    "DATASET_FORMAT",
    "TRANSFORM",
    "DEFAULT_TEST_FRACTION",
    "PrepareResult",
    "EmptyDatasetError",
    "check_options",
    "prepare_dataset",
]

TRANSFORM = "lin2021-stretch"
#: The paper kept 2,500 of its 5,057 pairs for testing.
DEFAULT_TEST_FRACTION = 0.5


class EmptyDatasetError(S2SError):
    """Every input cutout was refused: no dataset is written (exit code 1).

    ``skipped`` holds (file, reason) of each input, for the command to print.
    """

    exit_code = EXIT_PARTIAL

    def __init__(self, out: Path, skipped: list[tuple[str, str]]):
        self.skipped = skipped
        super().__init__(f"{out}: no dataset written: none of the {len(skipped)} input cutout(s) is usable "
                         "(each is listed above)")


# --- worker side --------------------------------------------------------------------------

#: Arrays a worker process has memory-mapped for writing, by path.
_writable: dict[str, np.ndarray] = {}


def _writable_array(path: str) -> np.ndarray:
    arr = _writable.get(path)
    if arr is None:
        arr = np.load(path, mmap_mode="r+")
        _writable[path] = arr
    return arr


def _release_arrays() -> None:
    """Flush and forget this process's writable maps (the serial path calls it)."""
    for arr in _writable.values():
        arr.flush()
    _writable.clear()


@dataclass(slots=True)
class _Record:
    """What a worker reports about one input (small: no pixels)."""

    domain: str
    index: int
    object_id: str
    source: str
    ra: float = math.nan
    dec: float = math.nan
    reason: str | None = None  # None = stored in its row
    problem_file: str = ""
    digest: bytes = b""
    digest_regrid: bytes = b""
    filled: int = 0

    @property
    def ok(self) -> bool:
        return self.reason is None


def _ingest_chunk(
    domain: str,
    survey: Survey,
    sources: Sequence,
    start: int,
    array_path: str,
    regrid_path: str | None,
    regrid_target: Survey | None,
    max_bad_fraction: float,
) -> list[_Record]:
    """Worker: read, check and transform ``sources``; write rows ``start, start+1, ...``."""
    from survey2survey.fits_io import read_cutout

    array = _writable_array(array_path)
    regridded = _writable_array(regrid_path) if regrid_path else None
    records = []
    for k, source in enumerate(sources):
        index = start + k
        files = ";".join(str(p) for p in source.paths)
        record = _Record(domain, index, source.object_id, files, problem_file=str(source.path))
        try:
            cutout = read_cutout(
                source, survey, expected_size=survey.cutout_size, max_bad_fraction=max_bad_fraction
            )
            flat = cutout.data.reshape(cutout.data.shape[0], -1)
            empty = [survey.bands[j] for j in range(flat.shape[0]) if not flat[j].any()]
            if empty:
                raise CutoutError(cutout.path, f"band(s) {','.join(empty)} all zero (no coverage)")
            model = to_model_space(cutout.data, survey)  # the only flux-factor + stretch
            array[index] = model
            record.digest = hashlib.sha256(model.tobytes()).digest()
            if regridded is not None:
                from survey2survey.data.regrid import regrid_to_survey

                on_a = to_model_space(regrid_to_survey(cutout.data, survey, regrid_target, cutout.wcs), survey)
                regridded[index] = on_a
                record.digest_regrid = hashlib.sha256(on_a.tobytes()).digest()
            centre = cutout.center_radec()
            if centre is not None:
                record.ra, record.dec = centre
            record.filled = cutout.n_bad_pixels
        except CutoutError as exc:
            record.reason, record.problem_file = exc.reason, str(exc.path)
        except Exception as exc:  # a batch goes on: any surprise is this file's problem, reported
            record.reason = f"unexpected error ({type(exc).__name__}: {exc})"
        records.append(record)
    return records


# --- parent side ----------------------------------------------------------------------------


@dataclass
class PrepareResult:
    """What :func:`prepare_dataset` wrote.

    Attributes
    ----------
    out : Path
        The dataset directory.
    counts : dict
        ``unpaired_a, unpaired_b, train, test, skipped_a, skipped_b, inputs_a, inputs_b``.
    skipped : list of (str, str)
        (file, reason) of every refused input, as in ``report.csv``.
    ingest_seconds, seconds : float
        Wall-clock time of the ingest pass and of the whole run.
    workers : int
    fingerprint : str
    warnings : list of str
    """

    out: Path
    counts: dict[str, int]
    skipped: list[tuple[str, str]]
    ingest_seconds: float
    seconds: float
    workers: int
    fingerprint: str
    warnings: list[str] = field(default_factory=list)

    @property
    def cutouts_per_second(self) -> float:
        n = self.counts["inputs_a"] + self.counts["inputs_b"]
        return n / self.ingest_seconds if self.ingest_seconds > 0 else float("inf")

    def summary_lines(self, max_skipped: int = 10) -> list[str]:
        c = self.counts
        lines = [
            f"dataset: {self.out}",
            f"inputs: {c['inputs_a']} a + {c['inputs_b']} b cutouts, ingested at "
            f"{self.cutouts_per_second:,.0f} cutouts/s with {self.workers} worker(s)",
            f"pairs: {c['train'] + c['test']} ({c['train']} train, {c['test']} test); "
            f"unpaired: {c['unpaired_a']} a, {c['unpaired_b']} b",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} input(s) (all listed in {self.out / 'report.csv'}):")
            lines += [f"  {f}: {r}" for f, r in self.skipped[:max_skipped]]
            if len(self.skipped) > max_skipped:
                lines.append(f"  ... and {len(self.skipped) - max_skipped} more")
        return lines


def _chunks(n: int, workers: int) -> list[tuple[int, int]]:
    size = max(1, min(64, math.ceil(n / max(1, workers * 8))))
    return [(i, min(n, i + size)) for i in range(0, n, size)]


def _resolve_positions(
    records: list[_Record], catalog: dict | None, catalog_path: str | None
) -> None:
    """Set each good record's (ra, dec) from the catalog, or refuse it when unknown."""
    for rec in records:
        if not rec.ok:
            continue
        if catalog is not None:
            pos = catalog.get(rec.object_id)
            if pos is None:
                rec.reason = f"id {rec.object_id!r} not in catalog {catalog_path}"
                continue
            rec.ra, rec.dec = pos
        elif not math.isfinite(rec.ra):
            rec.reason = "no WCS in the file and no catalog: sky position unknown (give --catalog)"


def _ingest(
    tmp: Path,
    surveys: dict[str, Survey],
    sources: dict[str, list],
    regrid: bool,
    max_nan_fraction: float,
    workers: int,
    progress: bool,
) -> dict[str, list[_Record]]:
    """Step 1: every input into its row of ``unpaired_<domain>.npy`` (and b_on_a)."""
    from survey2survey.data import run_tasks

    sa, sb = surveys["a"], surveys["b"]
    n_in = {d: len(sources[d]) for d in "ab"}
    paths = {d: tmp / f"unpaired_{d}.npy" for d in "ab"}
    for d, s in surveys.items():
        _allocate(paths[d], n_in[d], (s.n_bands, s.cutout_size, s.cutout_size))
    regrid_path = tmp / "unpaired_b_on_a.npy" if regrid else None
    if regrid_path is not None:
        _allocate(regrid_path, n_in["b"], (sb.n_bands, sa.cutout_size, sa.cutout_size))
    tasks, sizes = [], []
    for d in "ab":
        on_a = str(regrid_path) if (d == "b" and regrid_path is not None) else None
        for lo, hi in _chunks(n_in[d], workers):
            tasks.append((d, surveys[d], sources[d][lo:hi], lo, str(paths[d]), on_a, sa if on_a else None,
                          max_nan_fraction))
            sizes.append(hi - lo)
    records: dict[str, list] = {d: [None] * n_in[d] for d in "ab"}
    try:
        for chunk in run_tasks(_ingest_chunk, tasks, sizes, min(workers, len(tasks)),
                               progress=progress, label="ingesting", unit="cutouts"):
            for rec in chunk:
                records[rec.domain][rec.index] = rec
    finally:
        _release_arrays()  # the serial path wrote through this process's maps
    return records


def _pairs(recs: dict[str, list[_Record]], match_radius: float) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Step 2a: cross-match the good cutouts; pairs of input indices sorted by ids."""
    from survey2survey.data.crossmatch import crossmatch

    good = {d: np.array([r.index for r in recs[d] if r.ok], dtype=np.int64) for d in "ab"}
    ra = {d: np.array([recs[d][i].ra for i in good[d]]) for d in "ab"}
    dec = {d: np.array([recs[d][i].dec for i in good[d]]) for d in "ab"}
    match = crossmatch(ra["a"], dec["a"], ra["b"], dec["b"], radius=match_radius)
    pairs = sorted(
        zip(good["a"][match.index_a].tolist(), good["b"][match.index_b].tolist()),
        key=lambda p: (recs["a"][p[0]].object_id, recs["b"][p[1]].object_id, p),
    )
    return pairs, match.separation


def _split(
    pairs: list[tuple[int, int]], n_test: int | None, test_fraction: float | None, seed: int, match_radius: float
) -> dict[str, list[tuple[int, int]]]:
    """Step 2b: seeded train/test split of the (id-sorted) pairs."""
    n_pairs = len(pairs)
    if n_test is None:
        frac = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
        n_test = int(math.floor(frac * n_pairs + 0.5))
    elif n_test > n_pairs:
        raise UsageError(
            f"--n-test {n_test} but only {n_pairs} pair(s) found within {match_radius}\" "
            "(lower --n-test, use --test-fraction, or check positions / --match-radius)"
        )
    order = np.random.default_rng(seed).permutation(n_pairs)
    test = set(order[:n_test].tolist())
    return {
        "train": [p for k, p in enumerate(pairs) if k not in test],
        "test": [p for k, p in enumerate(pairs) if k in test],
    }


def _layout(
    tmp: Path, recs: dict[str, list[_Record]], split_pairs: dict[str, list[tuple[int, int]]], regrid: bool
) -> tuple[dict[str, list[_Record]], dict[str, list[bytes]]]:
    """Step 3: paired rows to train/test arrays; unpaired arrays compacted and cut.

    Returns the record of every row and the row digests, per array name.
    """
    rows: dict[str, list[_Record]] = {}
    digests: dict[str, list[bytes]] = {}
    for split, plist in split_pairs.items():
        for d, col in (("a", 0), ("b", 1)):
            idx = [p[col] for p in plist]
            _gather(tmp / f"unpaired_{d}.npy", idx, tmp / f"{split}_{d}.npy")
            rows[f"{split}_{d}"] = [recs[d][i] for i in idx]
            digests[f"{split}_{d}"] = [recs[d][i].digest for i in idx]
            if d == "b" and regrid:
                _gather(tmp / "unpaired_b_on_a.npy", idx, tmp / f"{split}_b_on_a.npy")
                digests[f"{split}_b_on_a"] = [recs[d][i].digest_regrid for i in idx]
    for d in "ab":
        paired = {p[0 if d == "a" else 1] for plist in split_pairs.values() for p in plist}
        stay = [r.ok and r.index not in paired for r in recs[d]]
        holes = np.flatnonzero(~np.array(stay, dtype=bool))
        n_keep = int(sum(stay))
        moves = _compact(tmp / f"unpaired_{d}.npy", holes, n_keep)
        if d == "b" and regrid:
            _move_rows(tmp / "unpaired_b_on_a.npy", moves, n_keep)  # the same moves as b's
        final = list(range(n_keep))  # row -> input index
        for dst, src in moves:
            final[dst] = src
        rows[f"unpaired_{d}"] = [recs[d][i] for i in final]
        digests[f"unpaired_{d}"] = [recs[d][i].digest for i in final]
        if d == "b" and regrid:
            digests["unpaired_b_on_a"] = [recs[d][i].digest_regrid for i in final]
    return rows, digests


#: Columns of manifest.csv; the fingerprint hashes all but the last.
_MANIFEST_COLUMNS = ["id", "ra", "dec", "survey", "domain", "split", "index", "source_file"]


class _SourceNames:
    """``source_file`` values for a dataset that will be at ``out`` (module docstring)."""

    def __init__(self, out: Path):
        self.home = out.parent.resolve() / out.name  # out itself does not exist yet
        tree = self.home.parent
        self.tree = None if tree == tree.parent else tree  # a dataset at "/" gets absolute paths
        self._dirs: dict[str, Path] = {}

    def one(self, file: str) -> str:
        path = Path(file)
        parent = self._dirs.get(str(path.parent))
        if parent is None:  # resolve directories only: a linked file keeps its own name
            parent = self._dirs[str(path.parent)] = path.parent.resolve()
        full = parent / path.name
        if self.tree is not None and full.is_relative_to(self.tree):
            return Path(os.path.relpath(full, self.home)).as_posix()
        return str(full)

    def __call__(self, files: str) -> str:
        return ";".join(self.one(f) for f in files.split(";"))


def _write_manifest(path: Path, rows: dict[str, list[_Record]], surveys: dict[str, Survey], out: Path) -> None:
    """Write manifest.csv of the dataset that will be at ``out``."""
    name = _SourceNames(out)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(_MANIFEST_COLUMNS)
        for d in "ab":
            for split in ("unpaired", "train", "test"):
                for k, rec in enumerate(rows[f"{split}_{d}"]):
                    writer.writerow(
                        [rec.object_id, f"{rec.ra:.8f}", f"{rec.dec:.8f}", surveys[d].name, d, split, k,
                         name(rec.source)]
                    )


def _hash_manifest(path: Path, fingerprint) -> None:
    """Feed the bytes of manifest.csv without its source_file column to ``fingerprint``."""
    keep = len(_MANIFEST_COLUMNS) - 1
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if header != _MANIFEST_COLUMNS:  # pragma: no cover - written just before
            raise RuntimeError(f"{path}: unexpected columns {header}")
        writer.writerow(header[:keep])
        for row in reader:
            writer.writerow(row[:keep])
            if buffer.tell() > 1 << 20:
                fingerprint.update(buffer.getvalue().encode("utf-8"))
                buffer.seek(0)
                buffer.truncate()
    fingerprint.update(buffer.getvalue().encode("utf-8"))


def _fingerprint(tmp: Path, digests: dict[str, list[bytes]]) -> tuple[dict, str]:
    """The ``arrays`` table of dataset.json and the fingerprint (module docstring)."""
    arrays = {}
    fingerprint = hashlib.sha256(DATASET_FORMAT.encode())
    for name in sorted(digests):
        arr = np.load(tmp / f"{name}.npy", mmap_mode="r")
        shape = list(arr.shape)
        del arr
        if shape[0] != len(digests[name]):  # pragma: no cover - internal consistency
            raise RuntimeError(f"{name}: {shape[0]} rows but {len(digests[name])} digests")
        arrays[name] = {"file": f"{name}.npy", "shape": shape}
        fingerprint.update(f"{name}{shape}".encode())
        for digest in digests[name]:
            fingerprint.update(digest)
    _hash_manifest(tmp / "manifest.csv", fingerprint)
    return arrays, fingerprint.hexdigest()


def check_options(
    *,
    n_test: int | None = None,
    test_fraction: float | None = None,
    max_nan_fraction: float = 0.05,
    match_radius: float = 1.0,
    seed: int = 0,
    workers: int | None = None,
) -> None:
    """Refuse option values of :func:`prepare_dataset` that cannot work (``UsageError``).

    Called before any work is done (``s2s prepare --simulate`` calls it before simulating).
    """
    if n_test is not None and test_fraction is not None:
        raise UsageError("give --n-test or --test-fraction, not both")
    if n_test is not None and (isinstance(n_test, bool) or int(n_test) != n_test or n_test < 0):
        raise UsageError(f"--n-test must be a non-negative integer, got {n_test}")
    if test_fraction is not None and not 0.0 <= test_fraction <= 1.0:
        raise UsageError(f"--test-fraction must be within [0, 1], got {test_fraction}")
    if not 0.0 <= max_nan_fraction < 1.0:
        raise UsageError(f"--max-nan-fraction must be within [0, 1), got {max_nan_fraction}")
    if not (match_radius > 0 and math.isfinite(match_radius)):
        raise UsageError(f"--match-radius must be a positive number of arcsec, got {match_radius}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:  # numpy seeds are non-negative
        raise UsageError(f"--seed must be a non-negative integer, got {seed}")
    if workers is not None and int(workers) < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")


def prepare_dataset(
    a_inputs: Sequence[str | Path],
    b_inputs: Sequence[str | Path],
    out: str | Path,
    *,
    a_survey: str | Survey = "sdss",
    b_survey: str | Survey = "cfht",
    catalog: str | Path | None = None,
    a_catalog: str | Path | None = None,
    b_catalog: str | Path | None = None,
    match_radius: float = 1.0,
    n_test: int | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    regrid: bool = False,
    max_nan_fraction: float = 0.05,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> PrepareResult:
    """Build a prepared dataset directory from two surveys' FITS cutouts.

    Parameters
    ----------
    a_inputs, b_inputs : sequence of path or glob
        Files, directories (searched recursively) and globs of each survey's cutouts.
    out : path
        Dataset directory to create.
    a_survey, b_survey : str or Survey
        The surveys of domain a and domain b.
    catalog : path, optional
        Position catalog (id, ra, dec in deg) for both surveys' cutouts; ids are the
        cutouts' object ids (file names without band and suffix).
    a_catalog, b_catalog : path, optional
        Per-survey catalogs (override ``catalog``).  Without any catalog, positions are
        the cutouts' WCS centres.
    match_radius : float
        Largest separation (arcsec) of a pair.
    n_test : int, optional
        Pairs kept for testing; exclusive with ``test_fraction``.
    test_fraction : float, optional
        Fraction of the pairs kept for testing (default 0.5, rounded to nearest).
    seed : int
        Seed of the train/test split.
    regrid : bool
        Also write b regridded onto a's grid (``*_b_on_a.npy``, flux conserved).
    max_nan_fraction : float
        A cutout with a band with more NaN/inf pixels than this fraction is refused; fewer
        are set to 0 (the sky-subtracted background).
    workers : int, optional
        Ingest processes (default: CPU cores available); 1 = this process.
    overwrite : bool
        Replace the dataset in an existing ``out`` (only its files: other files stay).
    progress : bool
        Progress bar on stderr.

    Returns
    -------
    PrepareResult

    Raises
    ------
    UsageError
        Bad options or catalog, no inputs, an ``out`` that exists, holds an input or lacks space.
    EmptyDatasetError, ResourceError
        Every input was refused, or the disk filled up (exit code 1); nothing is left.
    """
    from survey2survey.data import default_workers, staged_directory

    t0 = time.perf_counter()
    surveys = {"a": get_survey(a_survey), "b": get_survey(b_survey)}
    check_options(n_test=n_test, test_fraction=test_fraction, max_nan_fraction=max_nan_fraction,
                  match_radius=match_radius, seed=seed, workers=workers)
    workers = default_workers() if workers is None else int(workers)
    catalog_paths = {"a": a_catalog or catalog, "b": b_catalog or catalog}
    catalogs, sources = _read_inputs(surveys, catalog_paths, {"a": list(a_inputs), "b": list(b_inputs)})
    out = Path(out)
    refuse_output_over_inputs(out, sources, catalog_paths)
    check_free_space(out, surveys, sources, regrid)
    warnings_out: list[str] = []

    with staged_directory(out, overwrite, owned=dataset_entries, produces=DATASET_ENTRIES) as tmp:
        # 1. ingest: every cutout into its row of unpaired_<domain>.npy
        t_ingest = time.perf_counter()
        recs = _ingest(tmp, surveys, sources, regrid, max_nan_fraction, workers, progress)
        ingest_seconds = time.perf_counter() - t_ingest
        if not any(r.ok for d in "ab" for r in recs[d]):
            raise EmptyDatasetError(out, [(r.problem_file, r.reason) for d in "ab" for r in recs[d]])
        # 2. pairing: positions, cross-match, train/test split
        for d in "ab":
            _resolve_positions(recs[d], catalogs[d], str(catalog_paths[d]) if catalog_paths[d] else None)
        pairs, separations = _pairs(recs, match_radius)
        split_pairs = _split(pairs, n_test, test_fraction, seed, match_radius)
        if not pairs:
            warnings_out.append(f"no pairs found within {match_radius}\": paired methods cannot train on this dataset")
        # 3. layout: the arrays, the manifest, the report of refused inputs, dataset.json
        rows, digests = _layout(tmp, recs, split_pairs, regrid)
        _write_manifest(tmp / "manifest.csv", rows, surveys, out)
        skipped = [(r.problem_file, r.reason) for d in "ab" for r in recs[d] if not r.ok]
        _write_report(tmp / "report.csv", skipped)
        arrays, fingerprint = _fingerprint(tmp, digests)
        counts = _counts(recs, rows, split_pairs)
        filled = sum(r.filled > 0 for d in "ab" for r in recs[d] if r.ok)
        if filled:
            warnings_out.append(f"{filled} cutout(s) had a few NaN/inf pixels, set to 0")
        options = _options(a_inputs, b_inputs, catalog_paths, match_radius, n_test, test_fraction, seed, regrid,
                           max_nan_fraction, workers)  # fmt: skip
        info = _dataset_info(surveys, counts, arrays, fingerprint, regrid, match_radius, separations, options,
                             ingest_seconds)  # fmt: skip
        (tmp / "dataset.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return PrepareResult(
        out=out,
        counts=counts,
        skipped=skipped,
        ingest_seconds=ingest_seconds,
        seconds=time.perf_counter() - t0,
        workers=workers,
        fingerprint=fingerprint,
        warnings=warnings_out,
    )


def _read_inputs(surveys: dict[str, Survey], catalog_paths: dict, given: dict[str, list]) -> tuple[dict, dict]:
    """The position catalogs (or None) and the cutouts found, per domain."""
    from survey2survey.data.crossmatch import read_catalog
    from survey2survey.fits_io import find_cutouts

    catalogs = {d: read_catalog(path) if path else None for d, path in catalog_paths.items()}
    sources = {}
    for d in "ab":
        if not given[d]:
            raise UsageError(f"no inputs given for survey {d} ({surveys[d].name})")
        sources[d] = find_cutouts(given[d], surveys[d])
    return catalogs, sources


def _write_report(path: Path, skipped: list[tuple[str, str]]) -> None:
    """``report.csv``: every refused input and why."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "reason"])
        writer.writerows(skipped)


def _counts(recs: dict[str, list[_Record]], rows: dict[str, list], split_pairs: dict[str, list]) -> dict[str, int]:
    return {
        "unpaired_a": len(rows["unpaired_a"]),
        "unpaired_b": len(rows["unpaired_b"]),
        "train": len(split_pairs["train"]),
        "test": len(split_pairs["test"]),
        "skipped_a": sum(not r.ok for r in recs["a"]),
        "skipped_b": sum(not r.ok for r in recs["b"]),
        "inputs_a": len(recs["a"]),
        "inputs_b": len(recs["b"]),
    }


def _options(a_inputs, b_inputs, catalog_paths, match_radius, n_test, test_fraction, seed, regrid,
             max_nan_fraction, workers) -> dict:  # fmt: skip
    """The ``options`` of ``dataset.json``: how the dataset was made."""
    return {
        "a_inputs": [str(p) for p in a_inputs],
        "b_inputs": [str(p) for p in b_inputs],
        "positions": {d: f"catalog {catalog_paths[d]}" if catalog_paths[d] else "wcs" for d in "ab"},
        "match_radius_arcsec": match_radius,
        "n_test": n_test,
        "test_fraction": test_fraction if n_test is None else None,
        "seed": seed,
        "regrid": bool(regrid),
        "regrid_method": "reproject_adaptive(conserve_flux=True, kernel=hann): b's flux per a pixel, "
        "then b's flux factor and the stretch" if regrid else None,
        "max_nan_fraction": max_nan_fraction,
        "workers": workers,
    }


def _dataset_info(surveys, counts, arrays, fingerprint, regrid, match_radius, separations, options,
                  ingest_seconds) -> dict:  # fmt: skip
    """The content of ``dataset.json``."""
    paired = len(separations) > 0
    return {
        "format": DATASET_FORMAT,
        "version": __version__,
        "surveys": {d: surveys[d].to_dict() for d in "ab"},
        "bands": {d: list(surveys[d].bands) for d in "ab"},
        "transform": TRANSFORM,
        "counts": counts,
        "arrays": arrays,
        "fingerprint": fingerprint,
        "regridded": bool(regrid),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "pairs": {
            "match_radius_arcsec": match_radius,
            "median_separation_arcsec": float(np.median(separations)) if paired else None,
            "max_separation_arcsec": float(np.max(separations)) if paired else None,
        },
        "options": options,
        "timings": {"ingest_seconds": round(ingest_seconds, 3)},
    }
