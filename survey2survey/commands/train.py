"""Train a translation model on a prepared dataset and write a model directory.

Methods: {methods}.
Defaults are the paper's recipe (60,000 iterations per step, batches 24+24+24, Adam
1e-4 / 5 every 20,000 iterations, clipping at norm 5, D4 augmentation).  Multi-GPU:
torchrun --nproc_per_node=N -m survey2survey train ... (see docs/training.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from survey2survey.methods import method_help, method_names

# The method list comes from the registry (survey2survey.methods), like --method's check.
__doc__ = __doc__.format(methods=method_help())


def main(
    dataset: Path = typer.Argument(..., help="Prepared dataset directory (s2s prepare)."),
    method: str = typer.Option("ours", "--method", "-m", help=f"Training method: {', '.join(method_names())}."),
    out: Path = typer.Option(..., "--out", "-o", help="Model directory to write."),
    step: Optional[int] = typer.Option(None, "--step", help="ours: run only step 1 or step 2."),
    init: Optional[Path] = typer.Option(
        None, "--init", help="ours --step 2: step-1 model directory with the noise emulators (default: --out); "
        "ours-phys --step 2: also a finished ours-phys model, to fine-tune."
    ),
    photometry: Optional[float] = typer.Option(
        None, "--photometry", help="ours-phys: weight of the aperture photometry term of the identity loss (default 0: off)."
    ),
    direction: Optional[str] = typer.Option(
        None, "--direction", help="One-way methods (pix2pix, aecnn): e.g. sdss->cfht (default: a->b of the dataset)."
    ),
    iterations: Optional[int] = typer.Option(
        None, "--iterations", "-n", help="Iterations per step (default 60000; --resume: the run's, a larger N extends it)."
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help="Unpaired images per domain and pairs per mini-batch (default 24)."
    ),
    batch_paired: Optional[int] = typer.Option(None, "--batch-paired", help="Pairs per mini-batch (default --batch-size)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default 1e-4; aecnn 1.0)."),
    lr_decay_every: Optional[int] = typer.Option(
        None, "--lr-decay-every", help="Divide the learning rate every N iterations (default 20000)."
    ),
    lr_decay_factor: Optional[float] = typer.Option(None, "--lr-decay-factor", help="... by this factor (default 5)."),
    clip_norm: Optional[float] = typer.Option(None, "--clip-norm", help="Gradient clipping norm, 0 = off (default 5)."),
    augment: Optional[bool] = typer.Option(
        None, "--augment/--no-augment", help="Random 90-degree rotations and flips (default on)."
    ),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0)."),
    checkpoint_every: Optional[int] = typer.Option(
        None, "--checkpoint-every", help="Checkpoint period in iterations (default 5000; --resume: the run's)."
    ),
    log_every: Optional[int] = typer.Option(
        None, "--log-every", help="Loss logging period in iterations (default 100; --resume: the run's)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier run in --out."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on GPU), bf16 or fp32."),
    compile: str = typer.Option("auto", "--compile", help="torch.compile the networks: auto (GPU), yes, no."),
    channels_last: str = typer.Option("auto", "--channels-last", help="Channels-last tensors: auto (GPU), yes, no."),
    data_placement: str = typer.Option(
        "auto", "--data-placement", help="auto, host (prefetch thread) or device (whole set on the GPU)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    from survey2survey.train import TrainOptions, train

    options = TrainOptions(
        method=method,
        step=step,
        iterations=iterations,
        batch_unpaired=batch_size,
        batch_paired=batch_paired if batch_paired is not None else batch_size,
        lr=lr,
        lr_decay_every=lr_decay_every,
        lr_decay_factor=lr_decay_factor,
        clip_norm=clip_norm,
        augment=augment,
        seed=seed,
        direction=direction,
        init=str(init) if init is not None else None,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        resume=resume,
        overwrite=overwrite,
        device=device,
        precision=precision,
        compile=compile,
        channels_last=channels_last,
        data_placement=data_placement,
        progress=not quiet,
        method_options={"photometry": photometry} if photometry is not None else None,
    )
    result = train(dataset, out, options)
    parts = []
    for key, s in result.steps.items():
        ms = f", {s['ms_per_iteration']:.1f} ms/it" if s.get("ms_per_iteration") else ""
        parts.append(f"{key}: {s['iterations']} iterations in {s['seconds']:.1f} s{ms}")
    if result.config:
        typer.echo(f"wrote {result.model_dir} ({result.method}; {'; '.join(parts)})")
