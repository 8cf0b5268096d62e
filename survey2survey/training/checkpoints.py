"""Training checkpoints: written atomically, the newest two kept, loaded without running code.

A checkpoint is one ``torch.save`` file ``ckpt-<iteration>.pt`` in the step's run
directory, loaded with ``torch.load(..., weights_only=True)``: a file that tries to run
code is refused and, like a damaged file, makes :func:`load_checkpoint` fall back to the
previous checkpoint with a warning.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, Callable

from survey2survey.atomic import remove_stale, write_bytes
from survey2survey.errors import ModelError, first_line

__all__ = [
    "CHECKPOINT_FORMAT",
    "list_checkpoints",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "warn",
]

CHECKPOINT_FORMAT = "s2s-checkpoint/1"


def warn(message: str) -> None:
    """One ``s2s: warning:`` line on stderr."""
    print(f"s2s: warning: {message}", file=sys.stderr, flush=True)


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
    # torch.save straight into a full file reports a confusing RuntimeError ("unexpected
    # pos"); serialised in memory first, a full disk is an OSError naming the checkpoint
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getbuffer())
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

    warn = warn or globals()["warn"]
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
            nxt = f"; falling back to {paths[i + 1].name}" if i + 1 < len(paths) else ""
            warn(f"{path}: unusable checkpoint ({first_line(exc, with_type=True)}){nxt}")
    raise ModelError(f"{run_dir}: no usable checkpoint ({len(paths)} tried)")


def rng_state(device) -> dict[str, Any]:
    """The torch random state (and the device's, on CUDA) to store in a checkpoint."""
    import torch

    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device) -> None:
    """Restore what :func:`rng_state` stored."""
    import torch

    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
