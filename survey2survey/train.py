"""The training loop behind ``s2s train``: one recipe for every method.

Reads top to bottom as the paper's recipe (Lin & Fouchez 2021, section IV-B):

    for each step of the method (``ours``: 1 then 2; others: one step)
        build the method's networks, Adam (lr 1e-4, / 5 every 20,000 iterations)
        for 60,000 iterations
            draw the mini-batch (24 unpaired a + 24 unpaired b + 24 pairs, D4-augmented)
            method.train_step(batch)      # forward, losses, clipped updates in order
            every log_every: read the losses back, losses.csv, progress
            every checkpoint_every and at the end: checkpoint (atomic)
        write the model directory (weights.safetensors + config.json)

Speed on a GPU: bf16 autocast, channels-last tensors, ``torch.compile`` d networks, fused
Adam, data prepared by a background thread, and no host synchronisation in the hot loop
(losses are accumulated on the device and read every ``log_every`` iterations).  On CPU
the same code runs in fp32, eagerly.

Multi-GPU: ``torchrun --nproc_per_node=N -m survey2survey train ...`` runs data parallel
(DDP): each rank draws its own share of the mini-batch, gradients are averaged across
ranks before clipping, rank 0 writes checkpoints, logs and the model.

Layout of the model directory (``docs/dev/CONTRACTS.md``)::

    MODEL_DIR/config.json, weights.safetensors    the model (model_io.save_model)
    MODEL_DIR/train/[stepN/]ckpt-00060000.pt       the last two checkpoints
    MODEL_DIR/train/[stepN/]losses.csv             losses every log_every iterations

Checkpoints are loaded with ``torch.load(..., weights_only=True)``: a file that tries to
run code is refused (and, like a damaged file, makes ``--resume`` fall back to the
previous checkpoint with a warning).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from survey2survey import __version__
from survey2survey.atomic import atomic_write, remove_stale, write_bytes
from survey2survey.errors import ModelError, ResourceError, S2SError, UsageError

__all__ = [
    "TrainOptions",
    "TrainResult",
    "PAPER_DEFAULTS",
    "train",
    "select_device",
    "save_checkpoint",
    "load_checkpoint",
    "list_checkpoints",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = "s2s-checkpoint/1"

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
_RUN_FIELDS = tuple(PAPER_DEFAULTS) + ("method_options",)


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
    iterations : int
        Iterations per step (paper: 60,000).  On resume, a larger value extends the run.
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
    checkpoint_every, log_every : int
        Checkpoint and loss-logging periods in iterations.
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
    iterations: int = 60_000
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
    checkpoint_every: int = 5_000
    log_every: int = 100
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
        out = {k: getattr(self, k) for k in _RUN_FIELDS}
        for k, v in PAPER_DEFAULTS.items():
            if out[k] is None:
                out[k] = v
        out["method_options"] = dict(out["method_options"] or {})
        return out


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    model_dir : Path
    method : str
    steps : dict
        ``"step1"`` / ``"train"`` -> {"iterations", "seconds", "ms_per_iteration", "last_losses"}.
    config : dict
        The ``config.json`` written.
    """

    model_dir: Path
    method: str
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


# --- device ----------------------------------------------------------------------------------


def select_device(device: str = "auto", precision: str = "auto"):
    """Pick the torch device and autocast dtype.

    Returns
    -------
    device : torch.device
    amp_dtype : torch.dtype or None
        ``torch.bfloat16`` for bf16 autocast, ``None`` for plain fp32.

    Raises
    ------
    UsageError
        An unknown device or precision, CUDA asked for but not available, bf16 on CPU.
    """
    import torch

    if precision not in ("auto", "bf16", "fp32"):
        raise UsageError(f"--precision must be auto, bf16 or fp32, not {precision!r}")
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise UsageError(f"--device {device!r} is not a torch device ({exc})") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available on this machine")
        if dev.type not in ("cpu", "cuda"):
            raise UsageError(f"--device {device}: only cpu and cuda are supported")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    if precision == "fp32":
        return dev, None
    if dev.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return dev, torch.bfloat16
        if precision == "bf16":
            raise UsageError(f"--precision bf16: {torch.cuda.get_device_name(dev)} has no bfloat16 support")
        return dev, None
    # CPU: fp32 unless asked; bf16 autocast works there too (slowly), which lets the GPU
    # code path be exercised on a machine without one.
    return dev, (torch.bfloat16 if precision == "bf16" else None)


def _setup_cuda_flags() -> None:
    import torch

    from survey2survey.translate import set_cuda_fp32_precision

    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    set_cuda_fp32_precision(tf32=True)  # fp32 parts (FFT branch, losses) on tensor cores


# --- distributed (torchrun) -----------------------------------------------------------------


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # this call created the process group (and destroys it at the end)

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_name: str) -> _Dist:
    """Join the torchrun process group when launched with WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return _Dist(rank=rank, world=world, local_rank=local, owned=owned)


# --- checkpoints -------------------------------------------------------------------------------


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints in ``run_dir``, newest (highest iteration) first."""
    found = []
    for p in Path(run_dir).glob("ckpt-*.pt"):
        try:
            found.append((int(p.stem.split("-")[1]), p))
        except (IndexError, ValueError):
            continue
    return [p for _, p in sorted(found, reverse=True)]


def save_checkpoint(run_dir: Path, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``state`` as ``ckpt-<iteration>.pt`` atomically; keep the newest ``keep``."""
    import torch

    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"ckpt-{int(state['iteration']):08d}.pt"
    remove_stale(run_dir)
    with atomic_write(path) as fh:
        torch.save(state, fh)
    for old in list_checkpoints(run_dir)[keep:]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(run_dir: Path, warn: Callable[[str], None] | None = None) -> tuple[dict[str, Any], Path]:
    """Load the newest usable checkpoint of ``run_dir`` (``weights_only=True``).

    A checkpoint that cannot be read -- truncated, damaged, or a pickle that wants to
    run code, which ``weights_only`` refuses -- is skipped with a warning and the
    previous one is tried.

    Raises
    ------
    ModelError
        No checkpoint, or none usable.
    """
    import torch

    warn = warn or _warn
    paths = list_checkpoints(run_dir)
    if not paths:
        raise ModelError(f"{run_dir}: no checkpoint to resume from")
    for i, path in enumerate(paths):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"not an {CHECKPOINT_FORMAT} checkpoint")
            return state, path
        except Exception as exc:  # any damage: unpickling, zip, format
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            nxt = f"; falling back to {paths[i + 1].name}" if i + 1 < len(paths) else ""
            warn(f"{path}: unusable checkpoint ({type(exc).__name__}: {reason[:200]}){nxt}")
    raise ModelError(f"{run_dir}: no usable checkpoint ({len(paths)} tried)")


def _warn(message: str) -> None:
    print(f"s2s: warning: {message}", file=sys.stderr, flush=True)


def _rng_state(device) -> dict[str, Any]:
    import torch

    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# --- the loss log ------------------------------------------------------------------------------


class _LossLog:
    """``losses.csv``: one row per log period (mean losses over the period).

    Rows are appended and flushed; on resume the file is rewritten (atomically) without
    the rows after the checkpoint, so that it reads as one uninterrupted run.
    """

    def __init__(self, path: Path, start: int):
        self.path = path
        self.header: list[str] | None = None
        if start > 0 and path.exists():
            with open(path, newline="") as fh:
                rows = list(csv.reader(fh))
            if rows:
                self.header = rows[0]
                kept = [r for r in rows[1:] if len(r) == len(rows[0]) and r[0].isdigit() and int(r[0]) <= start]
                buf = io.StringIO()
                csv.writer(buf).writerows([self.header] + kept)
                write_bytes(path, buf.getvalue().encode())
        elif path.exists():
            path.unlink()

    def write(self, iteration: int, lr: float, losses: dict[str, float], seconds: float, rate: float) -> None:
        header = ["iteration", "lr", *losses, "seconds", "it_per_s"]
        if self.header is None:
            self.header = header
            with open(self.path, "w", newline="") as fh:
                csv.writer(fh).writerow(header)
        row = [iteration, f"{lr:.6g}", *(f"{v:.8g}" for v in losses.values()), f"{seconds:.3f}", f"{rate:.4g}"]
        with open(self.path, "a", newline="") as fh:
            csv.writer(fh).writerow(row)


# --- the progress display ------------------------------------------------------------------------


class _Progress:
    """Rich progress on stderr: iteration, losses, it/s, ETA (updated at log points)."""

    def __init__(self, enabled: bool, label: str, total: int, start: int):
        self.enabled = enabled
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=Console(stderr=True),
        )
        self.bar.start()
        self.task = self.bar.add_task(label, total=total, completed=start, rate="- it/s", losses="")

    def update(self, completed: int, rate: float, losses: dict[str, float]) -> None:
        if self.enabled:
            text = "  ".join(f"{k} {v:.4g}" for k, v in losses.items())
            self.bar.update(self.task, completed=completed, rate=f"{rate:.2f} it/s", losses=text)

    def close(self) -> None:
        if self.enabled:
            self.bar.stop()


# --- the loop -------------------------------------------------------------------------------------


def train(dataset: str | Path, out: str | Path, options: TrainOptions | None = None, **overrides) -> TrainResult:
    """Train ``options.method`` on a prepared dataset and write a model directory.

    Parameters
    ----------
    dataset : path
        Prepared dataset directory (``s2s prepare``).
    out : path
        Model directory to write (checkpoints and logs go to ``out/train/``).
    options : TrainOptions, optional
    **overrides
        Fields of :class:`TrainOptions` (``train(ds, out, method="aecnn", iterations=10)``).

    Returns
    -------
    TrainResult

    Raises
    ------
    UsageError, ModelError
        Bad options, unusable dataset, existing output without ``resume``/``overwrite``,
        no usable checkpoint to resume, an ``--init`` model without what is needed.
    """
    import torch

    from survey2survey.data.loader import open_dataset
    from survey2survey.methods import get_method

    opts = dataclasses.replace(options or TrainOptions(), **overrides)
    out = Path(out)
    cls = get_method(opts.method)
    steps = _steps_to_run(cls, opts.step)
    if opts.init is not None and (cls.steps == (None,) or steps[0] == cls.steps[0]):
        raise UsageError(f"--init is for a later step run alone (ours --step 2), not {cls.name!r} {opts.step or ''}".strip())
    if opts.direction is not None and not cls.one_way:
        raise UsageError(f"--direction is for one-way methods; {cls.name!r} translates both ways")
    _check_options(opts)
    if opts.resume and opts.overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    ds = open_dataset(dataset)
    dist_info = _init_distributed(opts.device)
    device, amp_dtype = select_device(
        f"cuda:{dist_info.local_rank}" if dist_info.world > 1 and opts.device in ("auto", "cuda") and torch.cuda.is_available()
        else opts.device,
        opts.precision,
    )
    if device.type == "cuda":
        _setup_cuda_flags()
    run_dirs = {s: out / "train" / (f"step{s}" if s is not None else "") for s in steps}
    _check_output(out, cls, steps, run_dirs, opts)
    if not opts.resume:  # (a resumed run's batch sizes are its checkpoint's: checked in _run_step)
        for step in steps:
            _check_memory(ds, cls, step, opts.run_values(), opts, device, amp_dtype, dist_info)
    _clear_replaced_run(steps, run_dirs, opts)

    result = TrainResult(model_dir=out, method=cls.name)
    previous = None  # the method object of the step just run (ours: step 1 -> step 2)
    history: dict[str, Any] = _history_from_init(out, cls, steps, opts)
    finished = False
    try:
        for i, step in enumerate(steps):
            try:
                method, summary = _run_step(
                    ds, out, cls, step, run_dirs[step], opts, device, amp_dtype, dist_info,
                    resume=opts.resume, must_resume=opts.resume and i == 0, previous=previous,
                )  # fmt: skip
            except Exception as exc:  # out of memory outside the loop: setting up, the model
                from survey2survey.train_memory import is_out_of_memory

                if not is_out_of_memory(exc):
                    raise
                raise _out_of_memory(exc, run_dirs[step], cls, step, None, opts, device) from None
            key = f"step{step}" if step is not None else "train"
            history[key] = summary
            result.steps[key] = summary
            if dist_info.main:
                result.config = _write_model(out, ds, method, history, opts)
            previous = method
        finished = True
    finally:
        if dist_info.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                if finished:
                    dist.barrier()  # rank 0 has written the model before anyone leaves
                if dist_info.owned:
                    dist.destroy_process_group()
    return result


#: Command-line flag of each TrainOptions field, for messages.
_FLAGS = {"batch_unpaired": "--batch-size", "batch_paired": "--batch-paired"}


def _flag(name: str) -> str:
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _check_options(opts: TrainOptions) -> None:
    """Refuse values that cannot make a run (misuse, before the dataset is read)."""

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for name in ("iterations", "checkpoint_every", "log_every", "batch_unpaired", "batch_paired", "lr_decay_every"):
        value = getattr(opts, name)
        if value is not None and (not is_int(value) or value < 1):
            raise UsageError(f"{_flag(name)} must be an integer >= 1, got {value!r}")
    if opts.seed is not None and (not is_int(opts.seed) or opts.seed < 0):
        raise UsageError(f"--seed must be a non-negative integer, got {opts.seed!r}")
    for name in ("lr", "lr_decay_factor"):
        value = getattr(opts, name)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise UsageError(f"{_flag(name)} must be a positive number, got {value!r}")
    clip = opts.clip_norm
    if clip is not None and not (isinstance(clip, (int, float)) and math.isfinite(clip) and clip >= 0):
        raise UsageError(f"--clip-norm must be a number >= 0 (0: no clipping), got {clip!r}")


def _steps_to_run(cls, step: int | None) -> tuple:
    if step is None:
        return tuple(cls.steps)
    if cls.steps == (None,):
        raise UsageError(f"method {cls.name!r} has a single step; --step is for {', '.join(_multi_step_names())}")
    if step not in cls.steps:
        raise UsageError(f"method {cls.name!r} has steps {', '.join(map(str, cls.steps))}, not {step}")
    return (step,)


def _multi_step_names() -> list[str]:
    from survey2survey.methods import METHODS, get_method

    return [n for n in METHODS if get_method(n).steps != (None,)]


def _check_output(out: Path, cls, steps: tuple, run_dirs: dict, opts: TrainOptions) -> None:
    """Refuse to clobber an earlier run unless asked (``--resume`` / ``--overwrite``)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{parent}: is a file, not a directory (cannot create {out} in it)")
            break
    if opts.resume:
        if not list_checkpoints(run_dirs[steps[0]]):
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


def _clear_replaced_run(steps: tuple, run_dirs: dict, opts: TrainOptions) -> None:
    """``--overwrite``: remove the earlier run's checkpoints and logs (after every check)."""
    if opts.overwrite:
        for s in steps:
            for p in list_checkpoints(run_dirs[s]):
                p.unlink(missing_ok=True)  # missing_ok: every torchrun rank does this
            (run_dirs[s] / "losses.csv").unlink(missing_ok=True)


def _method_options(cls, run: dict[str, Any]) -> dict[str, Any]:
    options = dict(run["method_options"])
    if cls.one_way:
        options["direction"] = run["direction"]
    return options


def _build_method(cls, ds, step, run: dict[str, Any], build=None):
    """The method's object for ``step`` (``build``: the constructor, or a stand-in with its signature)."""
    try:
        return (build or cls)(ds.surveys, step=step, options=_method_options(cls, run))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"method {cls.name!r}: {exc}") from None


#: Memory estimates already made in this process, by everything they depend on.
_ESTIMATES: dict[tuple, Any] = {}


def _check_memory(ds, cls, step, run: dict[str, Any], opts: TrainOptions, device, amp_dtype, dist_info: _Dist) -> None:
    """Refuse batch sizes that clearly cannot fit before any work (``survey2survey.train_memory``).

    Skipped where the available memory is unknown or ``$S2S_NO_MEMORY_CHECK`` is set; an
    estimate that fails (an operation the probe cannot follow) is a warning, not an error.
    """
    import dataclasses as dc

    from survey2survey import train_memory as tm

    if not tm.memory_check_enabled():
        return
    available = tm.available_memory(device)
    if available is None:
        return
    bu, bp = int(run["batch_unpaired"]), int(run["batch_paired"])
    cuda = device.type == "cuda"
    channels_last = _auto(opts.channels_last, cuda, "--channels-last")
    settings = dict(device_type=device.type, amp_dtype=amp_dtype, channels_last=channels_last, prefetch=opts.prefetch,
                    same_sizes=bu == bp)  # fmt: skip
    key = (cls, step, json.dumps(_method_options(cls, run), sort_keys=True, default=str),
           json.dumps({k: v.to_dict() for k, v in ds.surveys.items()}, sort_keys=True, default=str),
           tuple(sorted((k, str(v)) for k, v in settings.items())))  # fmt: skip
    est = _ESTIMATES.get(key)
    if est is None:
        try:
            probe = _build_method(cls, ds, step, run, build=lambda *a, **k: tm.probe_method(cls, *a, **k))
            est = _ESTIMATES[key] = tm.estimate_step_memory(probe, **settings)
        except S2SError:
            raise  # bad method options: the same error as the run would give
        except Exception as exc:  # the guard must never be what stops a run
            _warn(f"could not estimate the memory of one {cls.name} iteration ({_first_line(exc)}); not checked")
            return
    if cuda and opts.data_placement in ("auto", "device"):  # the arrays the loader copies to the GPU
        names = ds.array_names(est.parts, cls.regridded).values()
        resident = sum(ds.arrays[n].nbytes for n in names if n in ds.arrays)
        if opts.data_placement == "device" or resident < 0.4 * available[0]:  # as MiniBatchLoader decides
            est = dc.replace(est, fixed=est.fixed + resident)
    world = dist_info.world
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world)) if world > 1 else 1
    tm.check_batch_fits(est, bu, bp, available, device_type=device.type, world=world, local_world=local,
                        resumed=opts.resume)  # fmt: skip


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def _batch_flags(run: dict[str, Any]) -> str:
    bu, bp = run["batch_unpaired"], run["batch_paired"]
    return f"--batch-size {bu}" + ("" if bu == bp else f" --batch-paired {bp}")


def _out_of_memory(exc: BaseException, run_dir: Path, cls, step, iteration: int | None,
                   opts: TrainOptions, device, run: dict[str, Any] | None = None) -> ResourceError:  # fmt: skip
    """The one line for an allocation failure during training (exit code 1)."""
    label = cls.name + (f" step {step}" if step is not None else "")
    where = f"at iteration {iteration} of {label}" if iteration is not None else f"in {label} (setting up or saving)"
    batch = _batch_flags(run or opts.run_values())
    text = " ".join(str(exc).split()) or type(exc).__name__
    reason = ". ".join(text.split(". ")[:2])[:200]  # CUDA's message goes on about the allocator's state
    kept = list_checkpoints(run_dir)
    if kept:
        after = f"free memory and --resume from {kept[0].name}, or start again with a smaller --batch-size"
        after += " (--overwrite)"
    else:
        after = "use a smaller --batch-size"
    return ResourceError(f"{run_dir}: out of memory {where} with {batch} on {device} ({reason}): {after}")


def _history_from_init(out: Path, cls, steps: tuple, opts: TrainOptions) -> dict[str, Any]:
    """Per-step summaries of earlier steps (``ours --step 2``: step 1's, from its model)."""
    if steps[0] in (None, cls.steps[0]):
        return {}
    src = Path(opts.init) if opts.init else out
    try:
        return dict(json.loads((src / "config.json").read_text()).get("steps", {}))
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}


def _resolve_run_values(opts: TrainOptions, saved: dict[str, Any] | None, where: Path) -> dict[str, Any]:
    """Run-defining options: explicit values, else the resumed run's, else the paper's."""
    values = opts.run_values()
    if saved is None:
        return values
    for k in _RUN_FIELDS:
        given = getattr(opts, k)
        if given is not None and given != saved.get(k) and not (k == "method_options" and not given and not saved.get(k)):
            flag = _flag(k)
            raise UsageError(f"{where}: {flag} {given!r} differs from the run being resumed ({saved.get(k)!r})")
        values[k] = saved.get(k, values[k])
    return values


def _run_step(ds, out, cls, step, run_dir: Path, opts: TrainOptions, device, amp_dtype, dist_info: _Dist,
              *, resume: bool, must_resume: bool, previous):  # fmt: skip
    """Train one step of a method; returns (method, summary)."""
    import torch

    from survey2survey.data.loader import MiniBatchLoader

    # -- resume state, and the options of the run ------------------------------------------
    ckpt = None
    if resume and list_checkpoints(run_dir):
        ckpt, ckpt_path = load_checkpoint(run_dir)
        if ckpt.get("method") != cls.name or ckpt.get("step") != step:
            raise UsageError(f"{ckpt_path}: a checkpoint of {ckpt.get('method')!r} step {ckpt.get('step')}, "
                             f"not {cls.name!r} step {step}")  # fmt: skip
        if ckpt.get("dataset_fingerprint") != ds.fingerprint:
            raise UsageError(f"{ckpt_path}: trained on another dataset (fingerprint differs from {ds.root})")
    elif must_resume:
        raise UsageError(f"{run_dir}: no checkpoint to resume from")
    run = _resolve_run_values(opts, json.loads(ckpt["run"]) if ckpt else None, run_dir)

    if run["lr"] is None:
        run["lr"] = cls.default_lr  # record the learning rate actually used
    world = dist_info.world
    for k in ("batch_unpaired", "batch_paired"):
        if run[k] < world or run[k] % world:
            raise UsageError(f"{_flag(k)} {run[k]} must be a multiple of the {world} data-parallel ranks")
    if resume:  # a fresh run was checked before any work (train)
        _check_memory(ds, cls, step, run, opts, device, amp_dtype, dist_info)

    # -- the method and its networks ------------------------------------------------------------
    torch.manual_seed(run["seed"])  # same initial weights on every rank
    method = _build_method(cls, ds, step, run)
    if ckpt is None:
        _init_from_earlier(method, out, opts, previous)
    cuda = device.type == "cuda"
    use_compile = _auto(opts.compile, cuda, "--compile")
    channels_last = _auto(opts.channels_last, cuda, "--channels-last")
    method.setup(
        device,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
        compile=use_compile,
        lr=run["lr"],
        lr_decay_every=run["lr_decay_every"],
        lr_decay_factor=run["lr_decay_factor"],
        clip_norm=run["clip_norm"],
        world=world,
    )
    # Per-rank randomness (noise seeds) after the shared initialisation.
    torch.manual_seed(run["seed"] * 1_000_003 + (step or 0) * 1_009 + dist_info.rank + 1)

    loader = MiniBatchLoader(
        ds,
        batch_unpaired=run["batch_unpaired"] // world,
        batch_paired=run["batch_paired"] // world,
        parts=tuple(method.parts),
        regridded=cls.regridded,
        augment=run["augment"],
        seed=run["seed"],
        stream=(step or 0) * 1024 + dist_info.rank,
        device=device,
        placement=opts.data_placement,
        prefetch=opts.prefetch,
        channels_last=channels_last,
    )

    start, elapsed_before, saved_ms = 0, 0.0, None
    if ckpt is not None:
        method.load_state_dict(ckpt["state"])
        loader.load_state_dict(ckpt["loader"])
        start, elapsed_before = int(ckpt["iteration"]), float(ckpt.get("elapsed", 0.0))
        saved_ms = ckpt.get("ms_per_iteration")
        if start > int(opts.iterations):
            raise UsageError(f"{run_dir}: the checkpoint is at iteration {start}, past --iterations {opts.iterations}")
        rng = ckpt["rng"]
        if isinstance(rng, list):  # one state per data-parallel rank
            rng = rng[dist_info.rank] if len(rng) == world else None
            if rng is None:
                _warn(f"{run_dir}: resumed with a different number of ranks; noise seeds restart")
        if rng is not None:
            _set_rng_state(rng, device)

    iterations = int(opts.iterations)
    label = f"{cls.name}" + (f" step {step}" if step is not None else "")
    if dist_info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        log = _LossLog(run_dir / "losses.csv", start)
    progress = _Progress(opts.progress and dist_info.main, label, iterations, start)

    # -- the loop ----------------------------------------------------------------------------------
    def steady_ms(now: float, done: int) -> float | None:
        """ms per iteration since the first log point (warm-up and compilation excluded)."""
        if first_log is not None and done > first_log[1]:
            return (now - first_log[0]) / (done - first_log[1]) * 1000.0
        if done > start:
            return (now - t0) / (done - start) * 1000.0
        return saved_ms

    def checkpoint(done: int, elapsed: float) -> None:
        rng = _rng_state(device)
        if world > 1:
            import torch.distributed as dist

            gathered = [None] * world
            dist.all_gather_object(gathered, rng)
            rng = gathered
        if dist_info.main:
            save_checkpoint(run_dir, {
                "format": CHECKPOINT_FORMAT,
                "method": cls.name,
                "step": step,
                "iteration": done,
                "elapsed": elapsed,
                "dataset_fingerprint": ds.fingerprint,
                "run": json.dumps(run),
                "state": method.state_dict(),
                "rng": rng,
                "loader": loader.state_dict(),
                "ms_per_iteration": steady_ms(time.perf_counter(), done),
                "version": __version__,
            })  # fmt: skip

    sums: dict[str, torch.Tensor] = {}
    window_start, window_iters = time.perf_counter(), 0
    t0 = time.perf_counter()
    first_log: tuple[float, int] | None = None
    last_losses: dict[str, float] = {}
    try:
        for it in range(start, iterations):
            batch = next(loader)
            losses = method.train_step(batch)
            method.lr_step()
            for k, v in losses.items():  # stays on the device: no sync
                sums[k] = sums[k] + v.float() if k in sums else v.float().clone()
            window_iters += 1
            done = it + 1
            if done % opts.log_every == 0 or done == iterations:
                means = torch.stack(list(sums.values())) / window_iters
                if world > 1:
                    import torch.distributed as dist

                    dist.all_reduce(means)
                    means /= world
                last_losses = dict(zip(sums, means.tolist()))  # the one host sync per period
                diverged = [k for k, v in last_losses.items() if not math.isfinite(v)]
                if diverged:  # stop before a checkpoint or model holds NaN weights
                    raise ModelError(
                        f"{run_dir}: training diverged at iteration {done} ({', '.join(diverged)} not finite): "
                        "non-finite values in the dataset, or too high a learning rate? Earlier checkpoints are kept"
                    )
                now = time.perf_counter()
                rate = window_iters / max(now - window_start, 1e-9)
                if first_log is None:
                    first_log = (now, done)  # excludes warm-up and compilation from the timing
                if dist_info.main:
                    log.write(done, method.lr(), last_losses, elapsed_before + now - t0, rate)
                progress.update(done, rate, last_losses)
                sums, window_start, window_iters = {}, now, 0
            if done % opts.checkpoint_every == 0 or done == iterations:
                checkpoint(done, elapsed_before + time.perf_counter() - t0)
    except Exception as exc:
        from survey2survey.train_memory import is_out_of_memory

        if not is_out_of_memory(exc):
            raise
        raise _out_of_memory(exc, run_dir, cls, step, it + 1, opts, device, run) from None
    finally:
        loader.close()
        progress.close()

    t_end = time.perf_counter()
    steady = steady_ms(t_end, iterations)
    summary = {
        "iterations": iterations,
        "seconds": round(elapsed_before + (t_end - t0), 3),
        "ms_per_iteration": None if steady is None else round(steady, 3),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "ranks": world,
        "precision": "bf16-autocast" if amp_dtype is not None else "fp32",
        "compiled": use_compile,
        "channels_last": channels_last,
        "last_losses": last_losses,
        "options": run,
    }
    return method, summary


def _auto(value: str, cuda: bool, flag: str) -> bool:
    if value in (True, False):
        return bool(value)
    if value not in ("auto", "yes", "no"):
        raise UsageError(f"{flag} must be auto, yes or no, not {value!r}")
    return cuda if value == "auto" else value == "yes"


def _init_from_earlier(method, out: Path, opts: TrainOptions, previous) -> None:
    """Load the modules a step needs from an earlier step (``ours`` step 2: NE)."""
    need = method.init_modules()
    if not need:
        return
    if previous is not None and all(n in previous.nets for n in need):
        for n in need:
            method.nets[n].load_state_dict(previous.nets[n].state_dict())
        return
    from survey2survey.model_io import load_model

    src = Path(opts.init) if opts.init else out
    if not (src / "config.json").exists():
        raise UsageError(
            f"{src}: no step-1 model to take {', '.join(need)} from "
            f"(run `s2s train --method {method.name} --step 1` first, or give --init MODEL_DIR)"
        )
    loaded = load_model(src, device="cpu")
    cfg = loaded.config
    if cfg.get("method") != method.name:
        # A step-1 model, or a finished one (its frozen noise emulators are step 1's).
        raise ModelError(f"{src / 'config.json'}: not a {method.name!r} model (method {cfg.get('method')!r})")
    for n in need:
        if n not in loaded.modules:
            raise ModelError(f"{src / 'config.json'}: no module {n!r} (surveys differ from the dataset's?)")
        try:
            method.nets[n].load_state_dict(loaded.modules[n].state_dict())
        except RuntimeError as exc:
            raise ModelError(f"{src}: module {n!r} does not fit ({str(exc).splitlines()[0]})") from None


def _write_model(out: Path, ds, method, history: dict[str, Any], opts: TrainOptions) -> dict[str, Any]:
    """The model directory: the networks to run the method, and ``config.json``."""
    from survey2survey.model_io import save_model

    a, b = ds.surveys["a"], ds.surveys["b"]
    side_b = method.size[method.b]
    steps = {k: {kk: vv for kk, vv in v.items() if kk != "last_losses"} for k, v in history.items()}
    config = {
        "format": "s2s-model/1",
        "name": out.name,
        "method": method.name,
        "step": method.step,
        "version": __version__,
        "surveys": {"a": a.to_dict(), "b": b.to_dict()},
        "bands": {"a": list(a.bands), "b": list(b.bands)},
        "transform": ds.info.get("transform", "lin2021-stretch"),
        "sizes": {"a": [a.n_bands, a.cutout_size, a.cutout_size], "b": [b.n_bands, side_b, side_b]},
        "regridded": bool(method.regridded),
        "directions": method.directions(),
        "iterations": int(sum(v["iterations"] for v in history.values())),
        "steps": steps,
        "dataset_fingerprint": ds.fingerprint,
        "dataset": {"name": ds.root.name, "counts": ds.info.get("counts", {})},
        "timings": {k: {"seconds": v["seconds"], "ms_per_iteration": v["ms_per_iteration"], "device": v["device"]}
                    for k, v in history.items()},  # fmt: skip
        "last_losses": {k: v.get("last_losses", {}) for k, v in history.items()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    modules = {n: method.nets[n] for n in method.saved_modules()}
    save_model(out, modules, config, overwrite=True)
    return json.loads((out / "config.json").read_text())
