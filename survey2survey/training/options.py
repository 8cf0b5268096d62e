"""What ``s2s train`` can be told, and the checks made on it before any work.

:class:`TrainOptions` holds every option; the run-defining ones left ``None`` take the
paper's values (:data:`PAPER_DEFAULTS`, Lin & Fouchez 2021, section IV-B) or, on
``--resume``, those of the run being resumed (:func:`resolve_run_values`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from survey2survey.atomic import check_parents
from survey2survey.errors import UsageError
from survey2survey.training.checkpoints import list_checkpoints

__all__ = [
    "TrainOptions",
    "PAPER_DEFAULTS",
    "RUN_FIELDS",
    "flag",
    "check_options",
    "steps_to_run",
    "resolve_run_values",
    "check_output",
    "clear_replaced_run",
    "auto",
]

#: The paper's recipe; ``None`` fields of :class:`TrainOptions` take these values.
PAPER_DEFAULTS: dict[str, Any] = {
    "batch_unpaired": 24,
    "batch_paired": 24,
    "lr": None,  # the method's default: 1e-4 (Adam), 1.0 for AECNN's Adadelta
    "lr_decay_every": 20_000,
    "lr_decay_factor": 5.0,
    "clip_norm": 5.0,
    "augment": True,
    "seed": 0,
    "direction": None,
}

#: Options that define a run: ``--resume`` refuses a different explicit value.
RUN_FIELDS = tuple(PAPER_DEFAULTS) + ("method_options",)

#: How long a step runs and how often it writes: left unset (``None``), the paper's values on
#: a new run, the resumed run's own on ``--resume`` (a larger ``iterations`` extends it).
SCHEDULE_DEFAULTS = {"iterations": 60_000, "checkpoint_every": 5_000, "log_every": 100}


@dataclass
class TrainOptions:
    """Everything ``s2s train`` can be told.

    Run-defining fields left ``None`` take the paper's value (:data:`PAPER_DEFAULTS`), or
    on ``resume`` the value of the run being resumed.

    Parameters
    ----------
    method : str
        A name of :data:`survey2survey.methods.METHODS`.
    step : int, optional
        Run only this step of a multi-step method (``ours``: 1 or 2).
    iterations : int, optional
        Iterations per step (paper: 60,000).  On resume, unset: the run's own; a larger
        value extends it.
    batch_unpaired, batch_paired : int, optional
        Unpaired images per domain and pairs per mini-batch (paper: 24 and 24).
    lr, lr_decay_every, lr_decay_factor : optional
        Learning rate, divided by ``lr_decay_factor`` every ``lr_decay_every`` iterations.
    clip_norm : float, optional
        Gradient clipping by global norm (paper: 5; 0 disables).
    augment : bool, optional
        Random D4 transforms (paper: yes).
    seed : int, optional
        Seeds the networks' initialisation, the noise seeds and the mini-batches.
    direction : str, optional
        ``"sdss->cfht"``: the direction of a one-way method (pix2pix, aecnn).
    init : path, optional
        ``ours --step 2``: the step-1 model directory to take the noise emulators from
        (default: the output directory when step 1 ran there).
    checkpoint_every, log_every : int, optional
        Checkpoint and loss-logging periods in iterations (5,000 and 100; on resume, unset:
        the run's own).
    resume, overwrite : bool
        Continue the run in the output directory / replace it.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
    precision : {"auto", "bf16", "fp32"}
        ``auto``: bf16 autocast on a GPU that has it, fp32 otherwise.
    compile : {"auto", "yes", "no"}
        ``torch.compile`` the networks (``auto``: on CUDA).
    channels_last : {"auto", "yes", "no"}
        Channels-last memory format (``auto``: on CUDA).
    data_placement : {"auto", "host", "device"}
        See :class:`survey2survey.data.loader.MiniBatchLoader`.
    progress : bool
        Rich progress bar on stderr.
    method_options : dict, optional
        Extra keywords for the method.
    """

    method: str = "ours"
    step: int | None = None
    iterations: int | None = None
    batch_unpaired: int | None = None
    batch_paired: int | None = None
    lr: float | None = None
    lr_decay_every: int | None = None
    lr_decay_factor: float | None = None
    clip_norm: float | None = None
    augment: bool | None = None
    seed: int | None = None
    direction: str | None = None
    init: str | None = None
    checkpoint_every: int | None = None
    log_every: int | None = None
    resume: bool = False
    overwrite: bool = False
    device: str = "auto"
    precision: str = "auto"
    compile: str = "auto"
    channels_last: str = "auto"
    data_placement: str = "auto"
    prefetch: int = 3
    progress: bool = True
    method_options: dict | None = None

    def run_values(self) -> dict[str, Any]:
        """The run-defining options with the paper's defaults filled in."""
        out = {k: getattr(self, k) for k in RUN_FIELDS}
        for k, v in PAPER_DEFAULTS.items():
            if out[k] is None:
                out[k] = v
        out["method_options"] = dict(out["method_options"] or {})
        return out



#: Command-line flag of each TrainOptions field, for messages.
_FLAGS = {"batch_unpaired": "--batch-size", "batch_paired": "--batch-paired"}


def flag(name: str) -> str:
    """The command-line flag of a :class:`TrainOptions` field, for messages."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def check_options(opts: TrainOptions) -> None:
    """Refuse values that cannot make a run (misuse, before the dataset is read)."""

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for name in ("iterations", "checkpoint_every", "log_every", "batch_unpaired", "batch_paired", "lr_decay_every"):
        value = getattr(opts, name)
        if value is not None and (not is_int(value) or value < 1):
            raise UsageError(f"{flag(name)} must be an integer >= 1, got {value!r}")
    if opts.seed is not None and (not is_int(opts.seed) or opts.seed < 0):
        raise UsageError(f"--seed must be a non-negative integer, got {opts.seed!r}")
    for name in ("lr", "lr_decay_factor"):
        value = getattr(opts, name)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise UsageError(f"{flag(name)} must be a positive number, got {value!r}")
    clip = opts.clip_norm
    if clip is not None and not (isinstance(clip, (int, float)) and math.isfinite(clip) and clip >= 0):
        raise UsageError(f"--clip-norm must be a number >= 0 (0: no clipping), got {clip!r}")


def steps_to_run(cls, step: int | None) -> tuple:
    """The steps of method ``cls`` to run (``--step``: one of them)."""
    if step is None:
        return tuple(cls.steps)
    if cls.steps == (None,):
        raise UsageError(f"method {cls.name!r} has a single step; --step is for {', '.join(_multi_step_names())}")
    if step not in cls.steps:
        raise UsageError(f"method {cls.name!r} has steps {', '.join(map(str, cls.steps))}, not {step}")
    return (step,)


def _multi_step_names() -> list[str]:
    from survey2survey.methods import get_method, method_names

    return [n for n in method_names() if get_method(n).steps != (None,)]


def check_output(out: Path, cls, steps: tuple, run_dirs: dict, opts: TrainOptions) -> None:
    """Refuse to clobber an earlier run unless asked (``--resume`` / ``--overwrite``)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    check_parents(out, out)
    if opts.resume:
        if not list_checkpoints(run_dirs[steps[0]]):
            others = [d.name for d in sorted((out / "train").glob("step*")) if d != run_dirs[steps[0]] and list_checkpoints(d)]
            if others and len(cls.steps) > 1:  # e.g. a step-2 run resumed without --step 2
                raise UsageError(f"{run_dirs[steps[0]]}: no checkpoint to resume from; the run in {out} has "
                                 f"checkpoints of {', '.join(others)}: resume it with --step {others[-1][4:]}")
            raise UsageError(f"{run_dirs[steps[0]]}: no checkpoint to resume from (drop --resume to start a new run)")
    else:
        config = out / "config.json"
        step1_model_here = False
        if config.exists():
            try:
                existing = json.loads(config.read_text())
                step1_model_here = existing.get("method") == cls.name and existing.get("step") == 1 and steps == (2,)
            except (OSError, json.JSONDecodeError):
                pass
        busy = [str(run_dirs[s]) for s in steps if list_checkpoints(run_dirs[s])]
        if ((config.exists() and not step1_model_here) or busy) and not opts.overwrite:
            what = busy[0] if busy else str(config)
            raise UsageError(f"{what}: an earlier run is there (use --resume to continue it or --overwrite to replace it)")
    # unwritable: misuse, found before any work (probed where out is or will be created, which stays empty)
    where = next(p for p in (out, *out.parents) if p.exists())
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as exc:
        raise UsageError(f"{where}: cannot write the model there ({exc.strerror or exc})") from None


def clear_replaced_run(steps: tuple, run_dirs: dict, opts: TrainOptions) -> None:
    """``--overwrite``: remove the earlier run's checkpoints and logs (after every check)."""
    if opts.overwrite:
        for s in steps:
            for p in list_checkpoints(run_dirs[s]):
                p.unlink(missing_ok=True)  # missing_ok: every torchrun rank does this
            (run_dirs[s] / "losses.csv").unlink(missing_ok=True)


def resolve_schedule(opts: TrainOptions, saved: dict[str, Any] | None) -> TrainOptions:
    """``opts`` with :data:`SCHEDULE_DEFAULTS`'s fields set: explicit values, else the resumed
    run's (``saved``: its checkpoint's ``schedule``), else the defaults."""
    values = {k: getattr(opts, k) for k in SCHEDULE_DEFAULTS}
    for k, default in SCHEDULE_DEFAULTS.items():
        if values[k] is None:
            values[k] = int((saved or {}).get(k, default))
    return dataclasses.replace(opts, **values)


def resolve_run_values(opts: TrainOptions, saved: dict[str, Any] | None, where: Path) -> dict[str, Any]:
    """Run-defining options: explicit values, else the resumed run's, else the paper's."""
    values = opts.run_values()
    if saved is None:
        return values
    for k in RUN_FIELDS:
        given = getattr(opts, k)
        if given is not None and given != saved.get(k) and not (k == "method_options" and not given and not saved.get(k)):
            if k == "method_options":  # name the option (--photometry), not the dict
                old = saved.get(k) or {}
                keys = sorted(n for n in set(given) | set(old) if given.get(n) != old.get(n))
                raise UsageError(f"{where}: " + ", ".join(f"--{n} {given.get(n)!r}" for n in keys)
                                 + " differs from the run being resumed ("
                                 + ", ".join(f"{n} {old.get(n)!r}" for n in keys) + ")")
            raise UsageError(f"{where}: {flag(k)} {given!r} differs from the run being resumed ({saved.get(k)!r})")
        values[k] = saved.get(k, values[k])
    return values


def auto(value: str, cuda: bool, option: str) -> bool:
    """``--compile`` / ``--channels-last``: ``auto`` means on CUDA."""
    if value in (True, False):
        return bool(value)
    if value not in ("auto", "yes", "no"):
        raise UsageError(f"{option} must be auto, yes or no, not {value!r}")
    return cuda if value == "auto" else value == "yes"
