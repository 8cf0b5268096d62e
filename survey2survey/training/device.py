"""Where a training run executes: the device, its precision, and the torchrun ranks."""

from __future__ import annotations

import os
from dataclasses import dataclass

from survey2survey.errors import UsageError

__all__ = ["select_device", "setup_cuda_flags", "Ranks", "init_distributed", "leave_distributed"]


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


def setup_cuda_flags() -> None:
    """cuDNN autotuning and TF32 for the fp32 parts of training on a GPU."""
    import torch

    from survey2survey.runtime.device import set_cuda_fp32_precision

    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    set_cuda_fp32_precision(tf32=True)  # fp32 parts (FFT branch, losses) on tensor cores


def setup_cuda_flags() -> None:
    """cuDNN autotuning and TF32 for the fp32 parts of training on a GPU."""
    import torch

    from survey2survey.runtime.device import set_cuda_fp32_precision

    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    set_cuda_fp32_precision(tf32=True)  # fp32 parts (FFT branch, losses) on tensor cores


@dataclass
class Ranks:
    """This process's place among the data-parallel processes (one, without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # this call created the process group (and destroys it at the end)

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> Ranks:
    """Join the torchrun process group when launched with WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    import torch
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Ranks(rank=rank, world=world, local_rank=local, owned=owned)


def leave_distributed(ranks: Ranks, finished: bool) -> None:
    """Wait for rank 0 to have written the model, and leave the process group we made."""
    if ranks.world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            if finished:
                dist.barrier()  # rank 0 has written the model before anyone leaves
            if ranks.owned:
                dist.destroy_process_group()
