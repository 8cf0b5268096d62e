"""Evaluate translated cutouts against reference cutouts of the same survey.

The library behind ``s2s evaluate``::

    report = evaluate({"ours": ["out/ours"], "cyclegan": ["out/cyclegan"]}, ["data/cfht"],
                      truth=["sim/truth/cfht"], out="report/")

1. **Find** the cutouts (:func:`survey2survey.fits_io.find_cutouts`) of every prediction
   set, of the reference and of the optional noise-free truth.
2. **Match** each prediction to its reference by object id -- the file name without a
   suffix naming a survey, so ``obj42.cfht.fits`` (what ``s2s translate`` writes) matches
   ``obj42.fits`` -- and, for the files left over, by sky position (WCS centres within
   ``match_radius`` arcsec).  Unmatched files are reported.
3. **Measure** the matched pairs chunk by chunk, in a few threads (reading FITS and the
   metrics' numpy/scipy kernels release the GIL), with the metrics of
   :mod:`survey2survey.metrics`, in native flux units.
4. **Aggregate** per method and band: median and robust spread (sigma_MAD) of every
   per-image quantity, plus the set-level quantities (Fourier stack distance, KS tests).
5. **Write** (atomically) ``metrics.json``, ``per_image.csv``, ``arrays.npz`` (stacks and
   profiles behind the plots) and the PNG plots of :mod:`survey2survey.plots`.

Pixels flagged bad in any of the matched images (filled with 0 by the reader) are set to 0
in all of them, so that they add nothing to any difference; their count is in the CSV.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from survey2survey.errors import CutoutError, S2SError, SurveyError, UsageError
from survey2survey.evaluation.align import GridTally, truth_off_grid
from survey2survey.evaluation.matching import (
    MATCH_RADIUS_ARCSEC,
    Matching,
    Pair,
    match_sources,
    normalize_object_id,
)
from survey2survey.evaluation.report import (
    EVALUATE_FORMAT,
    aggregate,
    check_report_dir,
    draw_plots,
    per_image_csv,
    table_rows,
    write_report,
)

__all__ = [
    "EVALUATE_FORMAT",
    "MATCH_RADIUS_ARCSEC",
    "Pair",
    "Matching",
    "MethodResult",
    "Evaluation",
    "normalize_object_id",
    "match_sources",
    "evaluate",
    "measure_arrays",
    "write_report",
    "per_image_csv",
    "draw_plots",
    "table_rows",
]

#: Target number of float32 values per array in one chunk (16 MB).
_CHUNK_VALUES = 4_000_000


# --- results ------------------------------------------------------------------------


@dataclass
class MethodResult:
    """Everything measured for one prediction set.

    Attributes
    ----------
    name : str
    pairs : list of Pair
        The pairs actually measured, in the order of the per-image arrays.
    columns : dict
        ``{column: (N, C) float64 array}`` per-image quantities of every metric.
    n_masked : ndarray, shape (N, C)
        Bad pixels zeroed per image and band.
    results : dict
        ``{metric name: MetricResult}``.
    matching : Matching
    """

    name: str
    pairs: list[Pair] = field(default_factory=list)
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    n_masked: np.ndarray | None = None
    results: dict[str, Any] = field(default_factory=dict)
    matching: Matching | None = None
    summaries: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


@dataclass
class Evaluation:
    """The outcome of :func:`evaluate` (also what the plots and the table read).

    Attributes
    ----------
    survey : Survey
    bands : tuple of str
        Bands evaluated.
    metrics : list of str
    methods : dict of MethodResult
    failures : list of (file, reason)
        Files that could not be read or used (each reported once).
    unmatched : list of (method, file)
        Predictions without a reference.
    unused_ref : dict
        ``{method: [reference files without a prediction]}``.
    ref_without_truth : list of str
        References that no truth file matched (with ``truth``; they are not measured).
    notes : dict
        Facts about the whole evaluation that metrics report (their ``evaluation_notes``:
        ``noise_sigma``, how the flux plot's noise lines were measured).
    parameters : dict
    report : dict
        The content of metrics.json.
    warnings : list of str
        What could not be done without stopping the evaluation (a plot that could not be
        drawn), one line each.
    files : dict
        Written files (name -> path), empty without ``out``.
    """

    survey: Any
    bands: tuple[str, ...]
    metrics: list[str]
    methods: dict[str, MethodResult]
    failures: list[tuple[str, str]] = field(default_factory=list)
    unmatched: list[tuple[str, str]] = field(default_factory=list)
    unused_ref: dict[str, list[str]] = field(default_factory=dict)
    ref_without_truth: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def noise_sigma(self) -> str | None:
        """How the noise level of the flux plot was measured (a note of the flux metric)."""
        return self.notes.get("noise_sigma")

    @property
    def n_problems(self) -> int:
        """Files that failed, predictions without a reference, references left without a
        prediction or (with truth) without a truth."""
        return (
            len(self.failures)
            + len(self.unmatched)
            + sum(len(v) for v in self.unused_ref.values())
            + len(self.ref_without_truth)
        )

    @property
    def exit_code(self) -> int:
        """0 when every file was read and matched, 1 otherwise."""
        return 0 if self.n_problems == 0 else 1


# --- measuring ----------------------------------------------------------------------


class _Runner:
    """Reads the chunks of one prediction set (thread-safe; failures filed under a lock)."""

    def __init__(self, survey, band_index, failures, lock, grids: GridTally):
        self.survey = survey
        self.band_index = band_index
        self.failures = failures
        self.lock = lock
        self.grids = grids  # a GridTally: each prediction on its reference's grid (or not), counted

    def _fail(self, path, reason):
        with self.lock:
            self.failures.append((str(path), reason))

    def _read(self, src, cache):
        from survey2survey.fits_io import read_cutout

        key = id(src)
        if key in cache:
            return cache[key]
        try:
            cut = read_cutout(src, self.survey)
        except CutoutError as exc:
            self._fail(exc.path, exc.reason)
            cut = None
        cache[key] = cut
        return cut

    def load_chunk(self, pairs: Sequence[Pair]):
        """Read one chunk of pairs: (pred, ref, truth, (kept pairs, n_masked)) or None."""
        cache: dict[int, Any] = {}
        kept, preds, refs, truths, masked = [], [], [], [], []
        for pair in pairs:
            ref = self._read(pair.ref, cache)
            pred = self._read(pair.pred, cache)
            truth = self._read(pair.truth, cache) if pair.truth is not None else None
            if ref is None or pred is None or (pair.truth is not None and truth is None):
                continue
            if pred.data.shape != ref.data.shape:
                h, w = ref.data.shape[-2:]
                self._fail(
                    pred.path,
                    f"size {pred.data.shape[2]}x{pred.data.shape[1]} px differs from the reference's {w}x{h} px "
                    f"({ref.path.name})",
                )
                continue
            if truth is not None and truth.data.shape != ref.data.shape:
                self._fail(truth.path, f"size differs from the reference's ({ref.path.name})")
                continue
            if truth is not None and truth.wcs is not None and ref.wcs is not None:
                off = truth_off_grid(truth.wcs, ref.wcs, ref.data.shape[-2:])
                if off:
                    self._fail(truth.path, f"{off} ({ref.path.name})")
                    continue
            sel = self.band_index
            placed = self.grids.place(pred, ref, pred.data[sel], pred.mask[sel] if pred.mask is not None else None)
            if isinstance(placed, str):
                self._fail(pred.path, placed)
                continue
            (p, pred_bad), r = placed, ref.data[sel]
            t = truth.data[sel] if truth is not None else None
            bad = pred_bad
            for cut in (ref, truth):
                if cut is not None and cut.mask is not None:
                    bad = cut.mask[sel] if bad is None else (bad | cut.mask[sel])
            if bad is not None and bad.any():
                # a pixel unknown in one image is compared nowhere: zero it everywhere
                p, r = np.where(bad, 0.0, p), np.where(bad, 0.0, r)
                t = np.where(bad, 0.0, t) if t is not None else None
                masked.append(bad.sum(axis=(-2, -1)))
            else:
                masked.append(np.zeros(len(sel), dtype=np.int64))
            kept.append(pair)
            preds.append(p)
            refs.append(r)
            truths.append(t)
        if not kept:
            return None
        pred_a = np.stack(preds).astype(np.float32, copy=False)
        ref_a = np.stack(refs).astype(np.float32, copy=False)
        truth_a = np.stack(truths).astype(np.float32, copy=False) if truths[0] is not None else None
        return pred_a, ref_a, truth_a, (kept, np.stack(masked))


def _measure(loaders: Sequence[Callable[[], Any]], metrics: Sequence[Any], jobs: int, on_chunk=None):
    """Load chunks and feed the metrics in ``jobs`` threads.

    Parameters
    ----------
    loaders : sequence of callable
        Each returns ``(pred, ref, truth, meta)`` with arrays (n, C, H, W), or None when
        nothing in its chunk could be used.
    metrics : sequence of Metric
    jobs : int
    on_chunk : callable, optional
        ``on_chunk(index)`` after each chunk, in order.

    Returns
    -------
    list of (meta, columns)
        In chunk order, chunks that gave nothing left out; ``columns`` maps each per-image
        quantity to its (n, C) array.
    """

    def work(index: int):
        loaded = loaders[index]()
        if loaded is None:
            return index, None, {}
        pred, ref, truth, meta = loaded
        columns: dict[str, np.ndarray] = {}
        for metric in metrics:
            try:
                columns.update(metric.update(pred, ref, truth, index=index))
            except ValueError as exc:  # a metric that cannot apply to these images at all
                raise UsageError(f"metric {metric.name}: {exc} (leave it out with --metrics)") from None
        return index, meta, columns

    outputs = []
    if jobs <= 1:
        results = map(work, range(len(loaders)))
        for out in results:
            outputs.append(out)
            if on_chunk is not None:
                on_chunk(out[0])
    else:
        # the GIL is released by FITS reading, numpy, scipy.ndimage and scipy.fft alike
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for out in pool.map(work, range(len(loaders))):
                outputs.append(out)
                if on_chunk is not None:
                    on_chunk(out[0])
    return [(meta, cols) for _, meta, cols in sorted(outputs, key=lambda o: o[0]) if meta is not None]


def _collect(outputs) -> dict[str, np.ndarray]:
    keys = list(dict.fromkeys(k for _, cols in outputs for k in cols))
    return {k: np.concatenate([np.asarray(cols[k], dtype=np.float64) for _, cols in outputs]) for k in keys}


def measure_arrays(
    pred: np.ndarray,
    ref: np.ndarray,
    truth: np.ndarray | None = None,
    *,
    survey="sdss",
    bands: Sequence[str] | None = None,
    metrics: str | Sequence[str] | None = None,
    r_max: float | None = None,
    aperture_radius: float | None = None,
    jobs: int | None = None,
    chunk_size: int | None = None,
) -> MethodResult:
    """Run the metrics on arrays already in memory (no FITS files).

    Parameters
    ----------
    pred, ref : ndarray, shape (N, C, H, W)
        Matched predictions and references, native flux units of ``survey``.
    truth : ndarray, shape (N, C, H, W), optional
        Noise-free references.
    survey : Survey or str
        For the zero point, pixel scale and units.
    bands : sequence of str, optional
        Names of the C bands; default the survey's bands (C must then match).
    metrics : str or sequence of str, optional
        Default: all that apply.
    r_max, aperture_radius, jobs, chunk_size
        As in :func:`evaluate` (``aperture_radius`` in arcsec).

    Returns
    -------
    MethodResult
        ``columns`` (per-image quantities, (N, C)) and ``results`` (set-level, per metric).
    """
    from survey2survey.metrics import get_metric_class, parse_metrics
    from survey2survey.surveys import get_survey

    survey = get_survey(survey)
    bands = tuple(bands) if bands is not None else survey.bands
    if pred.ndim != 4 or pred.shape != ref.shape or pred.shape[1] != len(bands):
        raise UsageError(f"pred {pred.shape} and ref {ref.shape} must both be (N, {len(bands)}, H, W)")
    if truth is not None and truth.shape != ref.shape:
        raise UsageError(f"truth {truth.shape} must have the shape of ref {ref.shape}")
    names = parse_metrics(metrics if metrics is None or isinstance(metrics, str) else ",".join(metrics),
                          truth is not None)
    context = _context(survey, bands, r_max, aperture_radius)
    instances = [get_metric_class(n)(context) for n in names]
    size = chunk_size or _chunk_size(survey, len(bands), None, pred.shape[-2:])

    def loader(start):
        sl = slice(start, start + size)
        return pred[sl], ref[sl], (truth[sl] if truth is not None else None), sl

    loaders = [lambda s=start: loader(s) for start in range(0, pred.shape[0], size)]
    jobs = max(1, int(jobs)) if jobs else max(1, min(2, os.cpu_count() or 1))
    outputs = _measure(loaders, instances, jobs)
    result = MethodResult(name="pred")
    result.columns = _collect(outputs)
    result.results = {m.name: m.result() for m in instances}
    return result


def _context(survey, bands, r_max, aperture_radius_arcsec):
    from survey2survey.metrics.base import MetricContext

    return MetricContext(
        bands=tuple(bands),
        pixel_scale=survey.pixel_scale,
        zero_point=survey.zero_point,
        flux_unit=survey.flux_unit,
        r_max=r_max,
        aperture_radius=None if aperture_radius_arcsec is None else aperture_radius_arcsec / survey.pixel_scale,
    )


def _chunk_size(survey, n_bands: int, requested: int | None, shape=None) -> int:
    if requested:
        return max(1, int(requested))
    h, w = shape if shape is not None else (survey.cutout_size, survey.cutout_size)
    per_image = n_bands * h * w
    return int(min(256, max(8, _CHUNK_VALUES // max(per_image, 1))))


def _detect_survey(sources: Sequence[Any]):
    from survey2survey.fits_io import read_cutout

    for src in sources[:5]:
        try:
            cut = read_cutout(src, None)
        except (CutoutError, S2SError):
            continue
        if cut.survey is not None:
            return cut.survey
    return None


def _parse_bands(band: str | Sequence[str] | None, survey) -> tuple[int, ...]:
    if band is None or (isinstance(band, str) and band.strip().lower() in ("", "all")):
        return tuple(range(survey.n_bands))
    names = [b.strip() for b in band.split(",")] if isinstance(band, str) else list(band)
    idx = []
    for name in names:
        if not name:
            continue
        try:
            i = survey.band_index(name)
        except SurveyError:
            raise UsageError(
                f"unknown band {name!r} for survey {survey.name} (bands: {','.join(survey.bands)}, or 'all')"
            ) from None
        if i not in idx:
            idx.append(i)
    if not idx:
        raise UsageError("no band given (use a band name such as r, or 'all')")
    return tuple(sorted(idx))


def _check_options(match_radius, r_max, aperture_radius, jobs) -> None:
    """Refuse option values that cannot mean anything, before any file is read."""
    import math

    for option, value in (("--match-radius", match_radius), ("--r-max", r_max), ("--aperture", aperture_radius)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise UsageError(f"{option} must be a positive number, got {value}")
    if jobs is not None and (isinstance(jobs, bool) or int(jobs) != jobs or jobs < 1):
        raise UsageError(f"--jobs must be a positive integer, got {jobs}")


def evaluate(
    pred: Mapping[str, Sequence[str | os.PathLike]] | Sequence[str | os.PathLike],
    ref: Sequence[str | os.PathLike] | str | os.PathLike,
    truth: Sequence[str | os.PathLike] | str | os.PathLike | None = None,
    *,
    metrics: str | Sequence[str] | None = None,
    band: str | Sequence[str] | None = "all",
    survey=None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    plots: bool = True,
    match_radius: float = MATCH_RADIUS_ARCSEC,
    r_max: float | None = None,
    aperture_radius: float | None = None,
    jobs: int | None = None,
    chunk_size: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    align: bool = False,
) -> Evaluation:
    """Measure how close translated cutouts are to their references.

    Parameters
    ----------
    pred : mapping or sequence of paths
        ``{method name: [files, directories or globs]}``; a plain sequence is one method
        named ``"pred"``.
    ref : path or sequence of paths
        Reference cutouts of the same survey (the real images).
    truth : path or sequence of paths, optional
        Noise-free versions of the references (as the simulator writes them); enables the
        ``photometry`` and ``noise`` metrics and the exact noise level of the flux lines.
    metrics : str or sequence of str, optional
        Names (comma-separated or a list); default every metric that applies.
    band : str or sequence of str
        ``"all"`` (default), one band (``"r"``) or several (``"g,r"``).
    survey : Survey or str, optional
        Survey of the images; default from the headers (``SURVEY``, ``S2STGTSV``, ...).
    out : path, optional
        Report directory: metrics.json, per_image.csv, arrays.npz and plots.
    overwrite : bool
        Replace the report already in ``out`` (only the files an evaluation writes);
        otherwise an earlier report there is refused before any work.
    plots : bool
        Draw the PNG plots (with ``out``).
    match_radius : float
        Arcsec, for matching by sky position.
    r_max : float, optional
        Radius (px) of the magnitude / S/N / profile region; default half the cutout.
    aperture_radius : float, optional
        Photometry aperture radius in arcsec; default 2 arcsec.
    jobs : int, optional
        Threads; default up to 2.
    chunk_size : int, optional
        Images per chunk; default about 16 MB per array.
    progress : callable, optional
        ``progress(method, done, total)`` after each chunk.
    align : bool
        Shift each prediction onto its reference's pixel grid, as their WCSs place them
        (:mod:`survey2survey.evaluation.align`); a prediction on a rotated or scaled grid is
        reported and left out.  Without it the offset is measured, and a warning says when
        it is large enough to count in the pixel metrics.

    Returns
    -------
    Evaluation

    Raises
    ------
    UsageError
        No input found, unknown metric or band, metrics needing ``truth`` without it,
        survey unknown, option values out of range (match_radius, r_max, aperture_radius,
        jobs), an unwritable ``out``, an earlier report in ``out`` without ``overwrite``,
        or no prediction matched any reference (exit code 2).
    """
    import warnings

    # numpy's floating-point warnings (a constant image, an empty aperture) would reach
    # the user as noise: every such case is a NaN in the results, reported as such
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _evaluate(pred, ref, truth, metrics=metrics, band=band, survey=survey, out=out, overwrite=overwrite,
                         plots=plots, match_radius=match_radius, r_max=r_max, aperture_radius=aperture_radius,
                         jobs=jobs, chunk_size=chunk_size, progress=progress, align=align)  # fmt: skip


def _evaluate(pred, ref, truth, *, metrics, band, survey, out, overwrite, plots, match_radius, r_max,
              aperture_radius, jobs, chunk_size, progress, align=False) -> Evaluation:  # fmt: skip
    """:func:`evaluate`, its warnings filtered."""
    import time

    from survey2survey.metrics import get_metric_class, parse_metrics

    t_start = time.perf_counter()
    _check_options(match_radius, r_max, aperture_radius, jobs)
    pred_inputs, ref_inputs, truth_inputs = _inputs(pred, ref, truth)
    have_truth = truth_inputs is not None
    metric_text = metrics if (metrics is None or isinstance(metrics, str)) else ",".join(metrics)
    names = parse_metrics(metric_text, have_truth)
    if out is not None:
        check_report_dir(out, overwrite, plotted=names if plots else ())
    survey_obj, ref_sources = _references(survey, ref_inputs, pred_inputs)
    band_index = _parse_bands(band, survey_obj)
    bands = tuple(survey_obj.bands[i] for i in band_index)
    failures: list[tuple[str, str]] = []
    truth_by_ref, unmatched_truth = _truths(truth_inputs, ref_sources, survey_obj, match_radius, failures)

    classes = [get_metric_class(n) for n in names]
    evaluation = Evaluation(survey=survey_obj, bands=bands, metrics=names, methods={},
                            ref_without_truth=unmatched_truth)  # fmt: skip
    setup = _Setup(
        survey=survey_obj, band_index=list(band_index), classes=classes, ref_sources=ref_sources,
        truth_by_ref=truth_by_ref if have_truth else None, match_radius=match_radius,
        context=_context(survey_obj, bands, r_max, aperture_radius),
        jobs=max(1, int(jobs)) if jobs else max(1, min(2, os.cpu_count() or 1)),
        chunk=_chunk_size(survey_obj, len(bands), chunk_size), failures=failures, progress=progress,
        grids=GridTally(bool(align)),
    )  # fmt: skip
    matched = [_evaluate_method(evaluation, name, inputs, setup) for name, inputs in pred_inputs.items()]
    if not any(matched):
        n_pred = sum(len(v) for v in pred_inputs.values())
        raise UsageError(
            f"no prediction matched a reference ({n_pred} prediction input(s), {len(ref_sources)} reference "
            f"cutout(s){', or the matched references have no truth' if have_truth else ''}): check the file names "
            "or the WCS"
        )
    # one line per file, even if several methods tripped on the same reference
    evaluation.failures = list(dict.fromkeys(failures))
    grid_params, grid_warnings = setup.grids.report()
    evaluation.warnings += grid_warnings
    evaluation.parameters = {
        "r_max_px": r_max if r_max is not None else survey_obj.cutout_size / 2.0,
        "r_max_rule": "given" if r_max is not None else "half the cutout side",
        "aperture_radius_arcsec": aperture_radius if aperture_radius is not None else 2.0,
        "match_radius_arcsec": match_radius,
        "spread": "sigma_MAD = 1.4826 x median absolute deviation",
        **{k: v for cls in classes for k, v in cls.parameters.items()},
        "jobs": setup.jobs,
        "chunk_size": setup.chunk,
        **grid_params,
    }
    evaluation.inputs = {"pred": pred_inputs, "ref": ref_inputs, "truth": truth_inputs}
    evaluation.timings["measure_s"] = time.perf_counter() - t_start
    aggregate(evaluation, classes)
    if out is not None:
        t0 = time.perf_counter()
        write_report(evaluation, out, plots=plots)
        evaluation.timings["write_s"] = time.perf_counter() - t0
    return evaluation


def _as_list(paths) -> list[str]:
    return [str(paths)] if isinstance(paths, (str, os.PathLike)) else [str(p) for p in paths]


def _inputs(pred, ref, truth) -> tuple[dict[str, list[str]], list[str], list[str] | None]:
    """``({method: [inputs]}, [reference inputs], [truth inputs] or None)`` as strings."""
    if isinstance(pred, Mapping):
        pred_inputs = {str(k): [str(p) for p in v] for k, v in pred.items()}
    else:
        pred_inputs = {"pred": _as_list(pred)}
    if not pred_inputs:
        raise UsageError("no predictions given (--pred DIR)")
    return pred_inputs, _as_list(ref), (None if truth is None else _as_list(truth))


def _references(survey, ref_inputs: list[str], pred_inputs: dict[str, list[str]]):
    """The survey (given, else from the references' or the predictions' headers) and the reference cutouts."""
    from survey2survey.fits_io import find_cutouts
    from survey2survey.surveys import get_survey

    survey_obj = get_survey(survey) if survey is not None else None
    ref_sources = find_cutouts(ref_inputs, survey_obj)
    if survey_obj is None:
        survey_obj = _detect_survey(ref_sources)
        if survey_obj is None:
            first = [s for ss in pred_inputs.values() for s in ss]
            survey_obj = _detect_survey(find_cutouts(first, None))
        if survey_obj is None:
            raise UsageError(
                f"cannot tell the survey of {ref_inputs[0]} from its headers (no SURVEY / S2STGTSV / "
                "TELESCOP keyword or known pixel scale): give --survey"
            )
    return survey_obj, ref_sources


def _truths(truth_inputs, ref_sources, survey, match_radius: float, failures: list) -> tuple[dict[int, Any], list[str]]:
    """The truth of each reference (by ``id``), and the references without one."""
    from survey2survey.fits_io import find_cutouts

    if truth_inputs is None:
        return {}, []
    m = match_sources(find_cutouts(truth_inputs, survey), ref_sources, survey, radius_arcsec=match_radius)
    failures += m.failures
    # truth files beyond the references are fine (a simulation's whole truth set);
    # a reference without its truth cannot be measured against it
    return {id(r): t for t, r, _, _ in m.pairs}, [str(s.path) for s in m.unused_ref]


@dataclass
class _Setup:
    """What measuring one method's predictions needs (the same for every method)."""

    survey: Any
    band_index: list[int]
    classes: list[Any]
    ref_sources: list[Any]
    truth_by_ref: dict[int, Any] | None  # None: no truth given
    match_radius: float
    context: Any
    jobs: int
    chunk: int
    failures: list[tuple[str, str]]
    progress: Callable[[str, int, int], None] | None
    grids: GridTally
    lock: threading.Lock = field(default_factory=threading.Lock)


def _evaluate_method(evaluation: Evaluation, name: str, inputs: list[str], setup: _Setup) -> bool:
    """Match one method's predictions to the references and measure the pairs; False if none matched."""
    from survey2survey.fits_io import find_cutouts

    m = match_sources(find_cutouts(inputs, setup.survey), setup.ref_sources, setup.survey,
                      radius_arcsec=setup.match_radius)  # fmt: skip
    setup.failures += m.failures
    pairs = []
    for p, r, how, sep in m.pairs:
        t = setup.truth_by_ref.get(id(r)) if setup.truth_by_ref is not None else None
        if setup.truth_by_ref is not None and t is None:
            continue  # the reference has no truth: reported in ref_without_truth
        pairs.append(Pair(normalize_object_id(r.object_id), p, r, t, how, sep))
    pairs.sort(key=lambda pr: (str(pr.ref.path.parent), pr.object_id))
    result = MethodResult(name=name, matching=m)
    evaluation.methods[name] = result
    evaluation.unmatched += [(name, str(s.path)) for s in m.unmatched]
    evaluation.unused_ref[name] = [str(s.path) for s in m.unused_ref]
    if not pairs:
        return False
    instances = [cls(setup.context) for cls in setup.classes]
    runner = _Runner(setup.survey, setup.band_index, setup.failures, setup.lock, setup.grids)
    chunks = [pairs[i : i + setup.chunk] for i in range(0, len(pairs), setup.chunk)]
    loaders = [lambda c=c: runner.load_chunk(c) for c in chunks]
    done = [0]

    def on_chunk(index: int) -> None:
        done[0] += len(chunks[index])
        if setup.progress is not None:
            setup.progress(name, done[0], len(pairs))

    outputs = _measure(loaders, instances, setup.jobs, on_chunk)
    result.pairs = [p for (kept, _), _ in outputs for p in kept]
    if result.pairs:
        result.columns = _collect(outputs)
        result.n_masked = np.concatenate([masked for (_, masked), _ in outputs])
        result.results = {mt.name: mt.result() for mt in instances}
        for mt in instances:
            notes = result.results[mt.name].notes
            evaluation.notes.update({k: notes.get(k) for k in mt.evaluation_notes})
    return True


