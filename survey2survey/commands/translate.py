"""Translate cutouts into another survey (a trained model, or the surveys' physics), FITS in, FITS out."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def main(
    inputs: List[str] = typer.Argument(..., metavar="INPUT", help="Cutout files, directories (recursive) or globs."),
    to: str = typer.Option(..., "--to", metavar="SURVEY", help="Target survey (e.g. cfht)."),
    source: Optional[str] = typer.Option(
        None, "--from", metavar="SURVEY", help="Source survey; default: from each file's header."
    ),
    model: Optional[str] = typer.Option(
        None, "--model", metavar="DIR|physics",
        help="Model directory (default $S2S_MODEL, else the shipped models/sdss-cfht), or 'physics': "
        "translate by the two surveys' PSFs, pixels, zero points and noise, any registry pair, no training.",
    ),
    out: Optional[Path] = typer.Option(None, "--out", metavar="DIR", help="Output directory; default ./<target survey>/."),
    backend: str = typer.Option("torch", "--backend", help="Inference backend: torch or onnx."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", metavar="N", help="Images per model call; default 512 on CUDA, 16 on CPU."
    ),
    seed: int = typer.Option(0, "--seed", metavar="S", help="Run seed; each object's noise comes from (seed, object id)."),
    samples: int = typer.Option(
        1, "--samples", metavar="N", help="Noise realisations per cutout (extensions SAMPLE2..SAMPLEN)."
    ),
    no_noise: bool = typer.Option(False, "--no-noise", help="Write the generator's noise-free output."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo inputs whose output already exists."),
    shard: Optional[str] = typer.Option(
        None, "--shard", metavar="I/N", help="Take every N-th input from I (job arrays); 'auto' reads RANK/WORLD_SIZE or SLURM."
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", metavar="N",
        help="Reader/writer processes (0: none), at most the usable CPUs; default from the CPU count.",
    ),
    precision: str = typer.Option("auto", "--precision", help="auto (= fp32), fp32, tf32 (CUDA) or bf16: faster, but they bias summed fluxes (docs/translating.md)."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the generator (long GPU runs)."),
    preview: bool = typer.Option(
        False, "--preview", help="Also write <object>.<survey>.png beside each output: input and output per band."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar (nor progress lines in a log), no start line."),
) -> None:
    from survey2survey.pipelines.translate import translate
    from survey2survey.progress import progress_reporter

    try:
        with progress_reporter(not quiet, "translating", "cutouts") as on_progress:
            report = translate(
                inputs, to, source=source, model_dir=model, out_dir=out, backend=backend.lower(), device=device,
                batch_size=batch_size, seed=seed, samples=samples, noise=not no_noise, overwrite=overwrite,
                shard=shard, workers=workers, precision=precision.lower(), compile=compile_, on_progress=on_progress,
                preview=preview, announce=None if quiet else lambda line: typer.echo(f"s2s: {line}", err=True),
            )
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the pool is down, whole outputs are kept
        from survey2survey.errors import S2SError

        stopped = S2SError("interrupted: run the same command again to finish (whole outputs are kept)")
        stopped.exit_code = 130
        raise stopped from None

    for note in report.notes:
        typer.echo(f"s2s: note: {note}", err=True)
    from survey2survey.translators.learned import OUT_OF_RANGE

    unlike = [message for _path, message in report.warned if OUT_OF_RANGE in message]
    for _path, message in report.warned:
        if OUT_OF_RANGE not in message:
            typer.echo(f"s2s: warning: {message}", err=True)
    if unlike:  # once: a directory of bright galaxies would print a line per file
        typer.echo(f"s2s: warning: {len(unlike)} input(s) {OUT_OF_RANGE}, the translation may be poor there; "
                   f"e.g. {unlike[0]}", err=True)
    for _path, message in report.failed:
        typer.echo(f"s2s: failed: {message}", err=True)
    shard_text = f" (shard {report.shard[0]}/{report.shard[1]})" if report.shard else ""
    typer.echo(
        f"translated {report.translated}, skipped {report.skipped} (output exists), failed {len(report.failed)} "
        f"of {report.total} inputs{shard_text} in {report.seconds:.1f} s: {report.rate:.1f} cutouts/s"
    )
    if report.backend:
        provider = f", provider {report.provider}" if report.provider else ""
        typer.echo(
            f"backend {report.backend} (device {report.device}{provider}), batch {report.batch_size}, "
            f"{report.workers} I/O worker(s), output {report.out_dir}"
        )
    if report.ignored:
        typer.echo(f"ignored {report.ignored} earlier output(s) found among the inputs")
    if report.exit_code:
        raise typer.Exit(report.exit_code)
