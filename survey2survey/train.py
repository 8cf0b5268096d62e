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

Before any work, one iteration of each step runs at the requested batch sizes on a
throwaway copy of the method (:mod:`survey2survey.training.memory`): a batch that does
not fit is refused with the largest one that does.

Speed on a GPU: bf16 autocast, channels-last tensors, ``torch.compile`` d networks, fused
Adam, data prepared by a background thread, and no host synchronisation in the hot loop
(losses are accumulated on the device and read every ``log_every`` iterations).  On CPU
the same code runs in fp32, eagerly.

Multi-GPU: ``torchrun --nproc_per_node=N -m survey2survey train ...`` runs data parallel
(DDP): each rank draws its own share of the mini-batch, gradients are averaged across
ranks before clipping, rank 0 writes checkpoints, logs and the model.

Layout of the model directory (``docs/dev/CONTRACTS.md``)::

    MODEL_DIR/config.json, weights.safetensors    the model (model.save_model)
    MODEL_DIR/train/[stepN/]ckpt-00060000.pt       the last two checkpoints
    MODEL_DIR/train/[stepN/]losses.csv             losses every log_every iterations

Options and their checks live in :mod:`survey2survey.training.options`, checkpoints in
:mod:`survey2survey.training.checkpoints`, ``losses.csv`` and the progress bar in
:mod:`survey2survey.training.log`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from survey2survey import __version__
from survey2survey.errors import ModelError, ResourceError, S2SError, UsageError, first_line, write_failure
from survey2survey.training import memory
from survey2survey.training.device import Ranks, init_distributed, leave_distributed, select_device, setup_cuda_flags
from survey2survey.training.checkpoints import (
    CHECKPOINT_FORMAT,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    warn,
)
from survey2survey.training.log import LossLog, TrainProgress
from survey2survey.training.options import (
    PAPER_DEFAULTS,
    SCHEDULE_DEFAULTS,
    TrainOptions,
    auto,
    check_options,
    check_output,
    clear_replaced_run,
    flag,
    resolve_run_values,
    resolve_schedule,
    steps_to_run,
)

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


# --- the recipe ---------------------------------------------------------------------------------


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
        no usable checkpoint to resume, an ``--init`` model without what is needed, a
        batch that does not fit in memory.
    ResourceError
        Out of memory during training.
    """
    import torch

    from survey2survey.data.loader import open_dataset
    from survey2survey.methods import get_method

    # -- what to run, checked before any work --------------------------------------------------
    opts = dataclasses.replace(options or TrainOptions(), **overrides)
    out = Path(out)
    cls = get_method(opts.method)
    steps = steps_to_run(cls, opts.step)
    if opts.init is not None and (cls.steps == (None,) or steps[0] == cls.steps[0]):
        raise UsageError(f"--init is for a later step run alone (ours --step 2), not {cls.name!r} {opts.step or ''}".strip())
    if opts.direction is not None and not cls.one_way:
        raise UsageError(f"--direction is for one-way methods; {cls.name!r} translates both ways")
    unknown = sorted(set(opts.method_options or {}) - set(cls.accepted_options))
    if unknown:
        raise UsageError(f"method {cls.name!r} takes no option {unknown[0]!r}")
    if (opts.method_options or {}).get("photometry") and 2 not in steps:
        raise UsageError("--photometry weighs a step-2 loss: run step 2 (--step 2, or both steps)")
    check_options(opts)
    if opts.resume and opts.overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    ds = open_dataset(dataset)

    # -- where it runs ------------------------------------------------------------------------------
    ranks = init_distributed(opts.device)
    use_rank_gpu = ranks.world > 1 and opts.device in ("auto", "cuda") and torch.cuda.is_available()
    device, amp_dtype = select_device(f"cuda:{ranks.local_rank}" if use_rank_gpu else opts.device, opts.precision)
    if device.type == "cuda":
        setup_cuda_flags()
    run_dirs = {s: out / "train" / (f"step{s}" if s is not None else "") for s in steps}
    check_output(out, cls, steps, run_dirs, opts)
    if not opts.resume:  # (a resumed run's batch sizes are its checkpoint's: checked in _run_step)
        for step in steps:
            _check_memory(ds, cls, step, opts.run_values(), opts, device, amp_dtype, ranks)
    clear_replaced_run(steps, run_dirs, opts)

    # -- each step, then the model ---------------------------------------------------------------------
    result = TrainResult(model_dir=out, method=cls.name)
    previous = None  # the method object of the step just run (ours: step 1 -> step 2)
    schedule = None  # the step just run's -n and periods: a resumed later step without checkpoint keeps them
    history: dict[str, Any] = _history_from_init(out, cls, steps, opts)
    finished = False
    try:
        for i, step in enumerate(steps):
            try:
                method, summary = _run_step(
                    ds, out, cls, step, run_dirs[step], opts, device, amp_dtype, ranks,
                    resume=opts.resume, must_resume=opts.resume and i == 0, previous=previous, schedule=schedule,
                )  # fmt: skip
                schedule = summary.pop("schedule")
            except Exception as exc:  # out of memory outside the loop: setting up, the model
                if not memory.is_out_of_memory(exc):
                    raise
                raise _out_of_memory(exc, run_dirs[step], cls, step, None, opts, device) from None
            key = f"step{step}" if step is not None else "train"
            finalized = method.finalize(ds)
            if finalized:
                summary["finalized"] = finalized
            history[key] = result.steps[key] = summary
            if ranks.main:
                result.config = _write_model(out, ds, method, history, opts)
            previous = method
        finished = True
    except OSError as exc:  # the disk filled up (exit 1) or became unwritable (exit 2) during the run
        raise write_failure(exc.filename or out, exc, "free space, then --resume") from None
    finally:
        leave_distributed(ranks, finished)
    return result


# --- one step ----------------------------------------------------------------------------------------


@dataclass
class _Step:
    """One step being trained: what the loop and its checkpoints need."""

    ds: Any
    cls: Any
    step: int | None
    run_dir: Path
    run: dict[str, Any]
    ranks: Ranks
    device: Any
    method: Any = None
    loader: Any = None
    start: int = 0  # the iteration the run resumes after
    elapsed_before: float = 0.0  # seconds spent before this process (resumed runs)
    saved_ms: float | None = None  # ms per iteration the checkpoint had measured
    schedule: dict[str, int] | None = None  # iterations, checkpoint_every, log_every (kept on resume)
    t0: float = 0.0
    first_log: tuple[float, int] | None = None  # (time, iteration) of the first log point

    @property
    def label(self) -> str:
        return self.cls.name + (f" step {self.step}" if self.step is not None else "")

    def steady_ms(self, now: float, done: int) -> float | None:
        """ms per iteration since the first log point (warm-up and compilation excluded)."""
        if self.first_log is not None and done > self.first_log[1]:
            return (now - self.first_log[0]) / (done - self.first_log[1]) * 1000.0
        if done > self.start:
            return (now - self.t0) / (done - self.start) * 1000.0
        return self.saved_ms


def _run_step(ds, out, cls, step, run_dir: Path, opts: TrainOptions, device, amp_dtype, ranks: Ranks,
              *, resume: bool, must_resume: bool, previous, schedule=None):  # fmt: skip
    """Train one step of a method; returns (method, summary).  ``schedule``: the earlier step's
    -n and periods, for a resumed step that has no checkpoint of its own yet."""
    import torch

    ckpt = _open_checkpoint(ds, cls, step, run_dir, resume=resume, must_resume=must_resume)
    run = resolve_run_values(opts, json.loads(ckpt["run"]) if ckpt else None, run_dir)
    opts = resolve_schedule(opts, ckpt.get("schedule") if ckpt else schedule if resume else None)
    if run["lr"] is None:
        run["lr"] = cls.default_lr  # record the learning rate actually used
    for k in ("batch_unpaired", "batch_paired"):
        if run[k] < ranks.world or run[k] % ranks.world:
            raise UsageError(f"{flag(k)} {run[k]} must be a multiple of the {ranks.world} data-parallel ranks")
    if resume:  # a fresh run was checked before any work (train)
        _check_memory(ds, cls, step, run, opts, device, amp_dtype, ranks)

    s = _Step(ds=ds, cls=cls, step=step, run_dir=run_dir, run=run, ranks=ranks, device=device,
              schedule={k: int(getattr(opts, k)) for k in SCHEDULE_DEFAULTS})
    cuda = device.type == "cuda"
    compiled, channels_last = auto(opts.compile, cuda, "--compile"), auto(opts.channels_last, cuda, "--channels-last")
    torch.manual_seed(run["seed"])  # same initial weights on every rank
    s.method = _build_method(cls, ds, step, run)
    if ckpt is None:
        _init_from_earlier(s.method, out, opts, previous)
    _setup_method(s.method, run, device, amp_dtype, compiled, channels_last, ranks.world)
    # Per-rank randomness (noise seeds) after the shared initialisation.
    torch.manual_seed(run["seed"] * 1_000_003 + (step or 0) * 1_009 + ranks.rank + 1)
    s.loader = _loader(ds, cls, s.method, run, device, opts, channels_last, ranks.world,
                       stream=(step or 0) * 1024 + ranks.rank)  # fmt: skip
    if ckpt is not None:
        _restore(s, ckpt, opts)
        if ranks.main:
            what = (f"{run_dir}: resuming {s.label} at iteration {s.start} of {opts.iterations} "
                    f"(checkpoint every {opts.checkpoint_every}, log every {opts.log_every})")
            if "schedule" in ckpt:
                if opts.progress:  # a start line, as translate's: not with --quiet
                    print(f"s2s: {what}", file=sys.stderr, flush=True)
            else:  # written before checkpoints kept them: the defaults, unless given again
                warn(f"{what}; this checkpoint does not record -n, --checkpoint-every or --log-every: "
                     "give them again if the run had others")
    if ranks.main:
        _warn_batch_over_dataset(s.loader, run)

    last_losses = _loop(s, opts)
    t_end = time.perf_counter()
    steady = s.steady_ms(t_end, int(opts.iterations))
    summary = {
        "iterations": int(opts.iterations),
        "seconds": round(s.elapsed_before + (t_end - s.t0), 3),
        "ms_per_iteration": None if steady is None else round(steady, 3),
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "ranks": ranks.world,
        "precision": "bf16-autocast" if amp_dtype is not None else "fp32",
        "compiled": compiled,
        "channels_last": channels_last,
        "last_losses": last_losses,
        "options": run,
        "schedule": s.schedule,
    }
    return s.method, summary


def _open_checkpoint(ds, cls, step, run_dir: Path, *, resume: bool, must_resume: bool) -> dict[str, Any] | None:
    """The checkpoint to resume from (checked to be this method, step and dataset), or None."""
    if resume and list_checkpoints(run_dir):
        ckpt, ckpt_path = load_checkpoint(run_dir)
        if ckpt.get("method") != cls.name or ckpt.get("step") != step:
            raise UsageError(f"{ckpt_path}: a checkpoint of {ckpt.get('method')!r} step {ckpt.get('step')}, "
                             f"not {cls.name!r} step {step}")  # fmt: skip
        if ckpt.get("dataset_fingerprint") != ds.fingerprint:
            raise UsageError(f"{ckpt_path}: trained on another dataset (fingerprint differs from {ds.root})")
        return ckpt
    if must_resume:
        raise UsageError(f"{run_dir}: no checkpoint to resume from")
    return None


def _setup_method(method, run: dict[str, Any], device, amp_dtype, compiled: bool, channels_last: bool,
                  world: int) -> None:  # fmt: skip
    """Networks to the device, optimisers and schedule of the paper's recipe."""
    method.setup(
        device,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
        compile=compiled,
        lr=run["lr"],
        lr_decay_every=run["lr_decay_every"],
        lr_decay_factor=run["lr_decay_factor"],
        clip_norm=run["clip_norm"],
        world=world,
    )


def _loader(ds, cls, method, run: dict[str, Any], device, opts: TrainOptions, channels_last: bool, world: int,
            *, stream: int, batch: tuple[int, int] | None = None):  # fmt: skip
    """The mini-batch loader of this rank (``batch``: its share, default the run's / world)."""
    from survey2survey.data.loader import MiniBatchLoader

    bu, bp = batch or (run["batch_unpaired"] // world, run["batch_paired"] // world)
    return MiniBatchLoader(
        ds,
        batch_unpaired=bu,
        batch_paired=bp,
        parts=tuple(method.parts),
        regridded=cls.regridded,
        augment=run["augment"],
        seed=run["seed"],
        stream=stream,
        device=device,
        placement=opts.data_placement,
        prefetch=opts.prefetch,
        channels_last=channels_last,
    )


def _warn_batch_over_dataset(loader, run: dict[str, Any]) -> None:
    """One line per batch larger than the array it draws from: allowed (images are drawn
    with replacement), but then every batch repeats images, which is rarely what was meant."""
    said = set()
    for fld, name in loader.names.items():
        key = "batch_paired" if fld.startswith("pair") else "batch_unpaired"
        n = len(loader.dataset.arrays[name])
        if run[key] > n and key not in said:
            said.add(key)
            what = "pairs" if key == "batch_paired" else "images"
            warn(f"a batch of {run[key]} {what} is larger than the dataset's {n} ({name}.npy): "
                 "every batch repeats images")


def _restore(s: _Step, ckpt: dict[str, Any], opts: TrainOptions) -> None:
    """Networks, optimisers, loader position, timings and random state from ``ckpt``."""
    s.method.load_state_dict(ckpt["state"])
    s.loader.load_state_dict(ckpt["loader"])
    s.start, s.elapsed_before = int(ckpt["iteration"]), float(ckpt.get("elapsed", 0.0))
    s.saved_ms = ckpt.get("ms_per_iteration")
    if s.start > int(opts.iterations):
        raise UsageError(f"{s.run_dir}: the checkpoint is at iteration {s.start}, past --iterations {opts.iterations}")
    rng = ckpt["rng"]
    if isinstance(rng, list):  # one state per data-parallel rank
        rng = rng[s.ranks.rank] if len(rng) == s.ranks.world else None
        if rng is None:
            warn(f"{s.run_dir}: resumed with a different number of ranks; noise seeds restart")
    if rng is not None:
        set_rng_state(rng, s.device)


def _loop(s: _Step, opts: TrainOptions) -> dict[str, float]:
    """The iterations of one step; returns the last logged mean losses."""
    import torch

    iterations = int(opts.iterations)
    log = None
    if s.ranks.main:
        s.run_dir.mkdir(parents=True, exist_ok=True)
        log = LossLog(s.run_dir / "losses.csv", s.start)
    progress = TrainProgress(opts.progress and s.ranks.main, s.label, iterations, s.start)
    sums: dict[str, torch.Tensor] = {}
    window_start, window_iters = time.perf_counter(), 0
    s.t0 = time.perf_counter()
    last_losses: dict[str, float] = {}
    it = s.start
    try:
        for it in range(s.start, iterations):
            losses = s.method.train_step(next(s.loader))
            s.method.lr_step()
            for k, v in losses.items():  # stays on the device: no sync
                sums[k] = sums[k] + v.float() if k in sums else v.float().clone()
            window_iters += 1
            done = it + 1
            if done % opts.log_every == 0 or done == iterations:
                now = time.perf_counter()
                last_losses = _mean_losses(s, sums, window_iters, done)  # the one host sync per period
                rate = window_iters / max(now - window_start, 1e-9)
                if s.first_log is None:
                    s.first_log = (now, done)  # excludes warm-up and compilation from the timing
                if log is not None:
                    log.write(done, s.method.lr(), last_losses, s.elapsed_before + now - s.t0, rate)
                progress.update(done, rate, last_losses)
                sums, window_start, window_iters = {}, now, 0
            if done % opts.checkpoint_every == 0 or done == iterations:
                _checkpoint(s, done, s.elapsed_before + time.perf_counter() - s.t0)
    except Exception as exc:
        if not memory.is_out_of_memory(exc):
            raise
        raise _out_of_memory(exc, s.run_dir, s.cls, s.step, it + 1, opts, s.device, s.run) from None
    finally:
        s.loader.close()
        progress.close()
    return last_losses


def _mean_losses(s: _Step, sums: dict[str, Any], n: int, done: int) -> dict[str, float]:
    """Mean losses over the last ``n`` iterations and the ranks; stops a diverged run."""
    import torch

    means = torch.stack(list(sums.values())) / n
    if s.ranks.world > 1:
        import torch.distributed as dist

        dist.all_reduce(means)
        means /= s.ranks.world
    losses = dict(zip(sums, means.tolist()))
    diverged = [k for k, v in losses.items() if not math.isfinite(v)]
    if diverged:  # stop before a checkpoint or model holds NaN weights
        raise ModelError(
            f"{s.run_dir}: training diverged at iteration {done} ({', '.join(diverged)} not finite): "
            "non-finite values in the dataset, or too high a learning rate? Earlier checkpoints are kept"
        )
    return losses


def _checkpoint(s: _Step, done: int, elapsed: float) -> None:
    """Everything to resume after iteration ``done`` (every rank's random state; rank 0 writes)."""
    rng = rng_state(s.device)
    if s.ranks.world > 1:
        import torch.distributed as dist

        gathered = [None] * s.ranks.world
        dist.all_gather_object(gathered, rng)
        rng = gathered
    if s.ranks.main:
        save_checkpoint(s.run_dir, {
            "format": CHECKPOINT_FORMAT,
            "method": s.cls.name,
            "step": s.step,
            "iteration": done,
            "elapsed": elapsed,
            "dataset_fingerprint": s.ds.fingerprint,
            "run": json.dumps(s.run),
            "schedule": s.schedule,
            "state": s.method.state_dict(),
            "rng": rng,
            "loader": s.loader.state_dict(),
            "ms_per_iteration": s.steady_ms(time.perf_counter(), done),
            "version": __version__,
        })  # fmt: skip


# --- memory: will one iteration fit, and when it did not ----------------------------------------------


def _check_memory(ds, cls, step, run: dict[str, Any], opts: TrainOptions, device, amp_dtype, ranks: Ranks) -> None:
    """Run one iteration at the run's batch sizes and refuse them if it does not fit.

    Skipped where the available memory is unknown or ``$S2S_NO_MEMORY_CHECK`` is set.  A
    probe that fails for another reason than memory is a warning, not an error: the run
    itself will say what is wrong.
    """
    if not memory.memory_check_enabled():
        return
    available = memory.available_memory(device)
    if available is None:
        return
    cuda = device.type == "cuda"
    channels_last = auto(opts.channels_last, cuda, "--channels-last")
    import torch

    with torch.random.fork_rng(devices=[]):
        parts = tuple(_build_method(cls, ds, step, run).parts)  # bad method options: the run's own error
    per_image = {part: sum(math.prod(ds.arrays[n].shape[1:]) * ds.arrays[n].itemsize  # bytes of one image
                           for n in ds.array_names((part,), cls.regridded).values() if n in ds.arrays)
                 for part in ("unpaired", "paired")}  # fmt: skip

    copies = 2 if run["augment"] else 1  # the mini-batch as drawn, and its D4-transformed copy

    def run_once(bu: int, bp: int) -> int | None:
        return _one_iteration(ds, cls, step, run, opts, device, amp_dtype, channels_last, (bu, bp))

    local = int(os.environ.get("LOCAL_WORLD_SIZE", ranks.world)) if ranks.world > 1 else 1
    label = cls.name + (f" step-{step}" if step is not None else "")
    try:
        memory.check_batch_fits(
            run_once, int(run["batch_unpaired"]), int(run["batch_paired"]), parts=parts, label=label,
            available=available, device=device, world=ranks.world, local_world=local, resumed=opts.resume,
            data_bytes=lambda bu, bp: copies * (bu * per_image["unpaired"] * ("unpaired" in parts)
                                                + bp * per_image["paired"] * ("paired" in parts)),
        )  # fmt: skip
    except S2SError:
        raise
    except Exception as exc:  # the guard must never be what stops a run
        warn(f"could not try one {cls.name} iteration ({first_line(exc, with_type=True)}); memory not checked")


def _one_iteration(ds, cls, step, run, opts: TrainOptions, device, amp_dtype, channels_last: bool,
                   batch: tuple[int, int]) -> int | None:  # fmt: skip
    """One eager training iteration on a throwaway copy of the method; the peak bytes on CUDA.

    The random state is left as it was: the run draws the same numbers as without it.
    """
    import torch

    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        method = _build_method(cls, ds, step, run)
        _setup_method(method, run, device, amp_dtype, False, channels_last, 1)
        loader = _loader(ds, cls, method, run, device, opts, channels_last, 1, stream=0, batch=batch)
        try:
            if cuda:
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            method.train_step(loader.batch_at(0))
            if cuda:
                torch.cuda.synchronize(device)
                return int(torch.cuda.max_memory_allocated(device))
            return None
        finally:
            loader.close()


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


# --- the method and the model directory ----------------------------------------------------------------


def _history_from_init(out: Path, cls, steps: tuple, opts: TrainOptions) -> dict[str, Any]:
    """Per-step summaries of earlier steps (``ours --step 2``: step 1's, from its model)."""
    if steps[0] in (None, cls.steps[0]):
        return {}
    src = Path(opts.init) if opts.init else out
    try:
        return dict(json.loads((src / "config.json").read_text()).get("steps", {}))
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}


def _method_options(cls, run: dict[str, Any]) -> dict[str, Any]:
    options = dict(run["method_options"])
    if cls.one_way:
        options["direction"] = run["direction"]
    return options


def _build_method(cls, ds, step, run: dict[str, Any], build=None):
    """The method's object for ``step`` (``build``: the constructor, or a stand-in with its signature)."""
    try:
        method = (build or cls)(ds.surveys, step=step, options=_method_options(cls, run))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"method {cls.name!r}: {exc}") from None
    from survey2survey.nets.layers import fold_upsampling

    for net in getattr(method, "nets", {}).values():
        fold_upsampling(net)  # same function and state dict, fewer operations (nets.layers)
    return method


def _init_from_earlier(method, out: Path, opts: TrainOptions, previous) -> None:
    """Load the modules a step needs from an earlier step (``ours`` step 2: NE)."""
    need = method.init_modules()
    optional = not need
    need = need or method.optional_init_modules()
    if not need:
        return
    if previous is not None and all(n in previous.nets for n in need):
        for n in need:
            method.nets[n].load_state_dict(previous.nets[n].state_dict())
        return
    from survey2survey.model import load_model

    src = Path(opts.init) if opts.init else out
    if optional and not (src / "config.json").exists():
        return  # no earlier step: the modules stay as the method built them
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
            raise ModelError(f"{src}: module {n!r} does not fit ({first_line(exc)})") from None
    method.initialised_from(loaded, explicit=opts.init is not None)


def _write_model(out: Path, ds, method, history: dict[str, Any], opts: TrainOptions) -> dict[str, Any]:
    """The model directory: the networks to run the method, and ``config.json``."""
    from survey2survey.model import save_model

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
