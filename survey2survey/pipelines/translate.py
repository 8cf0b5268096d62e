"""Translate FITS cutouts from one survey into another: the library behind ``s2s translate``.

The pipeline is the same whatever translates (:class:`~survey2survey.translators.base.Translator`):

    find the inputs, plan one output per input        this process
    read, check, prepare                              worker processes
    translate                                         workers (per-cutout translator) or
                                                      this process, in batches (a model)
    finish, write with provenance                     worker processes

:func:`translate` runs a trained model (:class:`~survey2survey.translators.learned.LearnedTranslator`);
:func:`translate_with` runs any translator.  Results do not depend on batch size,
worker count or sharding because each object's randomness comes from its own key
(:func:`survey2survey.runtime.seeds.object_seed`).

Outputs are named ``<object id>.<target survey>.fits`` in ``out_dir`` (default
``./<target survey>/``), mirroring the sub-directories below a directory given as input,
so that object ids survive.  An existing output that passes its checksums is kept
(counted as skipped) unless ``overwrite``; a broken one of ours (``S2SVER``) is redone;
any other file there is the user's and is kept (that input fails); an input is never an
output, ``overwrite`` or not.  ``samples=S`` writes
S realisations (the primary HDU is realisation 1, extensions ``SAMPLE2`` ... ``SAMPLE<S>``).

While a run is on, SIGTERM and Ctrl-C stop it with :class:`KeyboardInterrupt`, raised
between the schedule's steps (:func:`~survey2survey.interrupts.interrupts_at_safe_points`),
so that the worker processes are shut down rather than left behind; a second signal
stops at once.

Bad pixels: pixels that were NaN/inf in the input (filled with 0 by the FITS layer) are
carried as a ``MASK`` extension on the output grid: an output pixel is flagged when its
footprint overlaps a filled input pixel.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from survey2survey.atomic import check_parents, remove_stale
from survey2survey.errors import S2SError, UsageError
from survey2survey.fits_io import find_cutouts, is_s2s_output
from survey2survey.interrupts import check_interrupt, interrupts_at_safe_points
from survey2survey.model import default_model_dir
from survey2survey.pipelines.translate_schedule import run_batched, run_per_cutout
from survey2survey.pipelines.translate_steps import Job, Setup
from survey2survey.pipelines.workers import start_pool
from survey2survey.runtime.device import BACKENDS, check_precision
from survey2survey.surveys import Survey, get_survey
from survey2survey.translators.base import Translator

__all__ = [
    "parse_shard",
    "output_name",
    "TranslateReport",
    "translate",
    "translate_with",
    "is_physics",
]

#: Fewer inputs than this are read and written in this process (no pool start-up).
INLINE_BELOW = 32


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` -> (I, N) with 0 <= I < N; ``"auto"`` reads torchrun's RANK/WORLD_SIZE
    or SLURM's SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT (task ids counted from
    SLURM_ARRAY_TASK_MIN); None -> None (everything)."""
    if text is None or text == "":
        return None
    if text == "auto":
        env = os.environ
        if "RANK" in env and "WORLD_SIZE" in env:
            return parse_shard(f"{env['RANK']}/{env['WORLD_SIZE']}")
        if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            first = int(env.get("SLURM_ARRAY_TASK_MIN", "0") or 0)
            return parse_shard(f"{int(env['SLURM_ARRAY_TASK_ID']) - first}/{env['SLURM_ARRAY_TASK_COUNT']}")
        raise UsageError("--shard auto: neither RANK/WORLD_SIZE (torchrun) nor SLURM_ARRAY_TASK_ID/COUNT is set")
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise UsageError(f"--shard must be I/N (e.g. 0/4) or auto, not {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {text}: need 0 <= I < N")
    return index, count


def output_name(object_id: str, target: Survey | str) -> str:
    """``J0123`` + cfht -> ``J0123.cfht.fits``."""
    return f"{object_id}.{get_survey(target).name if isinstance(target, str) else target.name}.fits"


def _plan(inputs: Sequence[str], sources: list, out_dir: Path, target: Survey) -> tuple[list, int]:
    """Output path of each source, in input order.

    Returns
    -------
    entries : list of Job or (path, message)
        A job per source, or a failure when two sources would write the same file or
        the output would be one of the files read.
    ignored : int
        Sources skipped because they are this command's own earlier outputs
        (``*.<target>.fits`` inside ``out_dir`` whose header says s2s wrote it, e.g. when
        ``out_dir`` is below an input).  A file of that name without s2s's provenance is
        the user's: it is read, and never written.
    """
    dirs = [Path(i).resolve() for i in inputs if Path(i).is_dir()]
    out_resolved = out_dir.resolve()
    suffix = f".{target.name}.fits"
    entries: list = []
    taken: dict[Path, str] = {}
    ignored = 0
    kept = []
    for source in sources:
        parent = source.path.resolve().parent
        if ((parent == out_resolved or out_resolved in parent.parents) and source.path.name.endswith(suffix)
                and is_s2s_output(source.path)):
            ignored += 1
        else:
            kept.append(source)
    # the files read (an earlier output found among the inputs is not one of them)
    inputs_at = {_file_id(p) for source in kept for p in source.paths} - {None}
    for source in kept:
        parent = source.path.resolve().parent
        rel = Path()
        for d in dirs:
            if parent == d or d in parent.parents:
                rel = parent.relative_to(d)
                break
        out_path = out_dir / rel / output_name(source.object_id, target)
        key = out_path.resolve()
        if key in taken:
            entries.append(
                (str(source.path), f"{source.path}: same output {out_path} as {taken[key]} (object ids must be unique per directory)")
            )
            continue
        if _file_id(out_path) in inputs_at:  # the same file (a link to it included): never written, --overwrite or not
            entries.append((str(source.path), f"{source.path}: output {out_path} is an input file; give another --out"))
            continue
        taken[key] = str(source.path)
        entries.append(Job(-1, source, out_path))
    return entries, ignored


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file, following links; None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


@dataclass
class TranslateReport:
    """What :func:`translate` did.

    Attributes
    ----------
    total : int
        Inputs of this shard.
    translated, skipped : int
        Outputs written; inputs whose whole output already existed.
    failed : list of (path, message)
        One line per input that could not be translated.
    warned : list of (path, message)
        One line per warning about an input that was translated (no WCS, NaN pixels
        filled, ...); also in the output's ``HISTORY``.
    notes : list of str
        Lines about the run itself (``--workers`` capped).
    seconds : float
        Wall time of the pipeline (model loading included).
    backend : str
        ``torch/cuda/bf16``, ``onnx/cpu/CPUExecutionProvider``, ...
    """

    total: int = 0
    translated: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    backend: str = ""
    device: str = ""
    provider: str | None = None
    precision: str = ""
    out_dir: Path | None = None
    shard: tuple[int, int] | None = None
    workers: int = 0
    batch_size: int = 0
    directions: dict[str, int] = field(default_factory=dict)
    ignored: int = 0
    warnings: int = 0
    warned: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Cutouts translated per second of wall time."""
        return self.translated / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0 when every input was translated (or already was), 1 when some failed."""
        return 1 if self.failed else 0


def _check_out_dir(out_dir: Path) -> None:
    """Misuse, found before any work: ``out_dir`` must be a directory this process can write in.

    Also removes the temporary files that killed runs of this host left there.
    """
    import tempfile

    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a directory")
    check_parents(out_dir, out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise UsageError(f"{out_dir}: cannot write output there ({exc.strerror or exc})") from None
    remove_stale(out_dir, recursive=True)


def translate(
    inputs: Iterable[str | os.PathLike],
    to: str | Survey,
    *,
    source: str | Survey | None = None,
    model_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    backend: str = "torch",
    device: str = "auto",
    batch_size: int | None = None,
    seed: int = 0,
    samples: int = 1,
    noise: bool = True,
    overwrite: bool = False,
    shard: tuple[int, int] | str | None = None,
    workers: int | None = None,
    precision: str = "auto",
    compile: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    preview: bool = False,
    announce: Callable[[str], None] | None = None,
) -> TranslateReport:
    """Translate FITS cutouts into survey ``to`` and write one FITS file per input.

    Parameters
    ----------
    inputs : iterable of path or glob
        Files, directories (recursive) or globs, any layout ``fits_io`` reads.
    to : str or Survey
        Target survey.
    source : str or Survey, optional
        Source survey (``--from``); default from each file's header (``SURVEY``,
        ``TELESCOP``, pixel scale), or the model's only source for ``to``.
    model_dir : path or "physics", optional
        A trained model's directory, default :func:`default_model_dir`; the string
        ``"physics"`` translates by the two surveys' physics, no training
        (:class:`~survey2survey.translators.physics.SurveyPhysicsTranslator`; a directory
        named ``physics`` is ``./physics`` or a Path).
    out_dir : path, optional
        Default ``./<target survey>``.
    backend : {"torch", "onnx"}
    device : {"auto", "cpu", "cuda", "cuda:N"}
    batch_size : int, optional
        Images per model call (default 512 on CUDA, 16 on CPU).
    seed : int
        Run seed; each object's noise comes from (seed, object id).
    samples : int
        Noise realisations per cutout (primary HDU + ``SAMPLE2`` ... extensions).
    noise : bool
        False writes the generator's noise-free output.
    overwrite : bool
        Redo inputs whose output exists; otherwise a whole existing output is skipped and a
        file that is not an output of ours fails its input (never replaced).
    shard : (I, N) or "I/N" or "auto", optional
        Take inputs I, I+N, I+2N, ... of the sorted input list.
    workers : int, optional
        Reader/writer processes, at most the usable CPUs (a larger number is capped, with a
        note in ``report.notes``); 0 runs them in this process.  Default: none for fewer
        than 32 inputs, else up to the CPU count minus one (CUDA) or a quarter of the
        CPUs (CPU inference, where the model is the bottleneck).
    precision : {"auto", "fp32", "tf32", "bf16"}
        See :class:`~survey2survey.runtime.engines.TorchEngine`.
    compile : bool
        ``torch.compile`` the generator (torch backend).
    on_progress : callable(done, total), optional
        Called as inputs finish (translated, skipped or failed).
    preview : bool
        Also write ``<object id>.<target>.png`` beside each output: input and output side
        by side per band (:mod:`survey2survey.preview`).
    announce : callable(str), optional
        Called once, before any cutout is read, with one line naming the translator and
        its directions (:meth:`Translator.summary`).

    Returns
    -------
    TranslateReport

    Raises
    ------
    UsageError, SurveyError, ModelError
        Misuse: bad options, unknown survey, no model, a model that does not translate
        into ``to`` or from ``source``.  Bad inputs are not raised: they are in
        ``report.failed``.
    """
    from survey2survey.translators.learned import LearnedTranslator

    start = time.perf_counter()
    inputs, shard = _check_options(inputs, to, source, batch_size, seed, samples, shard, workers)
    if not noise and samples > 1:
        raise UsageError("--samples N asks for noise realisations: it cannot go with --no-noise")
    if backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    check_precision(precision, backend)
    # The model first: a missing or unsuitable model is misuse, before any file is read.
    if is_physics(model_dir):
        translator = _physics(to, source, noise, backend, device, precision, compile, batch_size)
    else:
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        chosen = _physics_choice(model_dir, to, source)  # the model may leave this direction to the physics
        if chosen is not None:
            from survey2survey.translators.physics import SurveyPhysicsTranslator

            translator = SurveyPhysicsTranslator(to, source=chosen[0], noise=noise, chosen_by=chosen[1],
                                                 chosen_model=_model_identity(model_dir))
            unused = _engine_flags(backend, device, precision, compile, batch_size)
            if unused:  # said, not refused: the same command runs the model's network the other way
                translator.run_notes = (f"{', '.join(unused)} not used: model {model_dir.name} translates "
                                        f"{chosen[0]}->{translator.target.name} by the physics (no network runs)",)
        else:
            translator = LearnedTranslator.load(
                model_dir, to, source=source, backend=backend, device=device, precision=precision, compile=compile,
                noise=noise, samples=samples,
            )
    return translate_with(
        translator, inputs, source=source, out_dir=out_dir, batch_size=batch_size, seed=seed, samples=samples,
        overwrite=overwrite, shard=shard, workers=workers, on_progress=on_progress, start=start, preview=preview,
        announce=announce,
    )


def _physics_choice(model_dir: Path, to, source) -> tuple[str, str] | None:
    """``(source, why)`` when ``model_dir`` leaves the translation into ``to`` to the physics.

    A model's config.json may name the physics translator for a direction it did not
    learn better than the physics (:func:`~survey2survey.model.directions.physics_directions`);
    None when a network of the model translates into ``to`` (or the config cannot be read:
    loading the model reports that).
    """
    import json

    from survey2survey.model.directions import physics_directions
    from survey2survey.surveys import get_survey

    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        chosen = physics_directions(config)
        target = get_survey(to).name
        wanted = get_survey(source).name if source is not None else None
    except (OSError, ValueError, S2SError):
        return None
    into = [d for d in chosen if d.split("->")[1] == target and wanted in (None, d.split("->")[0])]
    learned = [d for d in config.get("directions") or {} if d.strip().lower() not in chosen
               and d.split("->")[-1].strip().lower() == target]
    if not into or learned or len(into) > 1:
        return None
    reason = chosen[into[0]]
    return into[0].split("->")[0], (f"model {model_dir.name} uses the physics for {into[0]}"
                                    + (f" ({reason})" if reason else ""))


def _model_identity(model_dir: Path) -> tuple[str, str]:
    """(name, weights SHA-256) of a model directory; ``"none"`` for a model without weights."""
    from survey2survey.model.store import weights_sha256

    try:
        return model_dir.name, weights_sha256(model_dir)
    except S2SError:
        return model_dir.name, "none"


def is_physics(model: object) -> bool:
    """True when ``--model`` names the physics translator: the string ``physics`` (not a Path)."""
    return isinstance(model, str) and model.strip().lower() == "physics"


def _physics(to, source, noise, backend, device, precision, compile, batch_size) -> Translator:
    """The physics translator; the options of a learned model's engine are misuse with it."""
    from survey2survey.translators.physics import SurveyPhysicsTranslator

    for flag in _engine_flags(backend, device, precision, compile, batch_size):
        raise UsageError(f"{flag} is an option of a trained model's engine: --model physics runs on the CPU workers")
    return SurveyPhysicsTranslator(to, source=source, noise=noise)


def _engine_flags(backend, device, precision, compile, batch_size) -> list[str]:
    """The options given that only a network's engine uses."""
    given = ((backend != "torch", "--backend"), (precision not in ("auto", "fp32"), "--precision"),
             (compile, "--compile"), (device.lower().startswith("cuda"), "--device"), (batch_size is not None, "--batch-size"))
    return [flag for on, flag in given if on]


def translate_with(
    translator: Translator,
    inputs: Iterable[str | os.PathLike],
    *,
    source: str | Survey | None = None,
    out_dir: str | os.PathLike | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    samples: int = 1,
    overwrite: bool = False,
    shard: tuple[int, int] | str | None = None,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    start: float | None = None,
    preview: bool = False,
    announce: Callable[[str], None] | None = None,
) -> TranslateReport:
    """Translate cutouts with any :class:`~survey2survey.translators.base.Translator`.

    Parameters
    ----------
    translator : Translator
    inputs, out_dir, batch_size, seed, samples, overwrite, workers, on_progress
        As :func:`translate` (``batch_size`` only for a batched translator).
    source : str or Survey, optional
        Read every input as this survey (one of ``translator.sources``).
    shard : (I, N) or "I/N" or "auto", optional
        Take inputs I, I+N, I+2N, ... of the sorted input list.
    start : float, optional
        ``time.perf_counter()`` when the run began (default: now).
    preview, announce
        As :func:`translate`.

    Returns
    -------
    TranslateReport
    """
    start = time.perf_counter() if start is None else start
    inputs, shard = _check_options(inputs, translator.target, source, batch_size, seed, samples, shard, workers)
    target = translator.target
    given = translator.sources[get_survey(source).name] if source is not None else None
    out_dir = Path(out_dir) if out_dir is not None else Path.cwd() / target.name
    entries, ignored = _plan(inputs, find_cutouts(inputs, survey=given), out_dir, target)
    if shard is not None:
        entries = entries[shard[0] :: shard[1]]
    jobs = [e for e in entries if isinstance(e, Job)]
    failed = [e for e in entries if not isinstance(e, Job)]
    for i, job in enumerate(jobs):
        job.index = i
    report = TranslateReport(total=len(jobs) + len(failed), failed=list(failed), out_dir=out_dir, shard=shard, ignored=ignored)
    if not jobs:
        report.seconds = time.perf_counter() - start
        return report
    _check_out_dir(out_dir)
    if announce:
        announce(translator.summary())
    report.notes += translator.run_notes
    report.workers = workers = _default_workers(workers, len(jobs), translator, report.notes)
    setup = Setup(translator, given, overwrite, int(seed), samples, preview)
    with interrupts_at_safe_points():
        _run(translator, jobs, setup, workers, batch_size, samples, report, on_progress, len(failed))
    report.outputs.sort()
    report.failed.sort()
    report.warned.sort()
    report.seconds = time.perf_counter() - start
    return report


def _run(translator, jobs, setup, workers, batch_size, samples, report, on_progress, n_failed) -> None:
    """Start the pool and the translator, and run the schedule the translator asks for."""
    executor = start_pool(workers)
    try:
        translator.start()
        check_interrupt()  # a signal while the model loaded
        report.backend, report.device = translator.describe(), translator.device
        report.provider, report.precision = translator.provider, translator.precision
        report.batch_size = translator.batch_size(batch_size, samples)
        check_output_memory(translator.target, samples, report.batch_size, workers)
        if on_progress:
            on_progress(n_failed, report.total)
        run = run_per_cutout if translator.per_cutout else run_batched
        run(jobs, setup, executor, report, on_progress)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _check_options(inputs, to, source, batch_size, seed, samples, shard, workers):
    """Misuse of the options every translator shares, found before any work: (inputs as str, shard)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UsageError(f"--samples must be a positive integer, got {samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
        raise UsageError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if workers is not None and workers < 0:
        raise UsageError(f"--workers must be >= 0, got {workers}")
    if isinstance(shard, str) or shard is None:
        shard = parse_shard(shard)
    get_survey(to)
    if source is not None:
        get_survey(source)
    inputs = [str(i) for i in inputs]
    if not inputs:
        raise UsageError("no inputs given")
    return inputs, shard


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a batch job's allocation), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1


def _default_workers(workers: int | None, n_jobs: int, translator: Translator, notes: list[str]) -> int:
    """``--workers`` (capped at the usable CPUs, with a note) or: none for a few inputs;
    every core for a per-cutout translator; all cores but one beside a GPU; a quarter
    of them beside a model on the CPU (the model is the bottleneck there)."""
    cores = usable_cpus()
    if workers is not None:
        if workers > cores:  # more processes than CPUs only adds memory and switching
            notes.append(f"--workers {workers} capped at {cores} (the usable CPUs)")
            return cores
        return workers
    if n_jobs < INLINE_BELOW:
        return 0
    if translator.per_cutout:
        return max(1, min(cores, 32))
    return max(1, min(cores - 1, 32)) if translator.uses_gpu else max(1, cores // 4)


#: Copies of one translation held at once at the peak: the model's output, the native
#: units, the copy sent to a writer and the FITS buffer.
OUTPUT_COPIES = 4


def check_output_memory(target: Survey, samples: int, batch: int, workers: int) -> None:
    """Refuse (:class:`UsageError`, before any work) a run whose outputs cannot fit in memory.

    Each cutout's ``samples`` realisations are held whole (they go into one file): two
    batches in the model (a batch of one is padded to two) and one per writer, each in
    :data:`OUTPUT_COPIES` copies.  Skipped for one realisation (a batch of single cutouts
    is small; the check loads torch), where the available memory is unknown or
    ``$S2S_NO_MEMORY_CHECK`` is set.
    """
    from survey2survey.training.memory import available_memory, memory_check_enabled

    if samples == 1 or not memory_check_enabled():
        return
    found = available_memory("cpu")
    if found is None:
        return
    avail, where = found
    image = len(target.bands) * target.cutout_size**2 * 4  # float32, one realisation

    def need(s: int, b: int) -> int:
        return s * image * OUTPUT_COPIES * (2 * max(b, 2) + max(1, workers))

    if need(samples, batch) <= avail:
        return
    fits = avail // need(1, 1)
    gib = need(samples, batch) / 2**30
    # with batches of one, whatever batch size the translator would choose for fewer samples
    advice = f"use --samples {fits} or less with --batch-size 1" if fits >= 1 else "not one realisation fits"
    raise UsageError(
        f"--samples {samples} with batches of {batch} would hold about {gib:.1f} GiB of outputs "
        f"({avail / 2**30:.1f} GiB {where}): {advice}"
    )
