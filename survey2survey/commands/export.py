"""Export a model's generators and noise emulators (one graph per direction) as ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def main(
    model: Optional[Path] = typer.Option(
        None, "--model", metavar="DIR", help="Model directory; default $S2S_MODEL, else the shipped models/sdss-cfht."
    ),
    fmt: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="DIR", help="Output directory; default DIR/onnx/."),
    direction: Optional[List[str]] = typer.Option(
        None, "--direction", metavar="A->B", help="Only this direction (repeatable); default all."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing files."),
) -> None:
    from survey2survey.runtime.export import TOLERANCE, export_model

    results = export_model(model, out, fmt=fmt, directions=direction or None, overwrite=overwrite)
    for r in results:
        inputs = "x -> generator"
        if r.has_noise or r.has_latent:
            inputs = "x, z1, z2 -> generator, noisy" if r.has_noise else "x, z -> generator"
        typer.echo(
            f"{r.direction}: {r.path} ({inputs}; ONNX Runtime vs torch max |diff| {r.max_abs_diff:.1e} "
            f"<= {TOLERANCE:g}, model space)"
        )
