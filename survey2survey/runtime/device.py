"""Where and in what arithmetic a model runs: device choice, precision, batch size.

Model-level runtime settings shared by ``s2s translate``, ``s2s emulate-noise`` and
training (:func:`set_cuda_fp32_precision`, :func:`resolve_device`).
"""

from __future__ import annotations

import os

from survey2survey.errors import UsageError

__all__ = [
    "BACKENDS",
    "DEFAULT_BATCH",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "resolve_device",
    "check_precision",
    "set_cuda_fp32_precision",
    "cuda_device_id",
    "ort_has_cuda",
    "batch_size",
]

#: Inference backends of a model (``--backend``).
BACKENDS = ("torch", "onnx")
#: Default images per model call.
DEFAULT_BATCH = {"cuda": 512, "cpu": 16}


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` (``cuda:$LOCAL_RANK`` under torchrun) when torch sees a GPU, else ``cpu``."""
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        device = "cuda"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA GPU is available to torch here (use --device cpu or auto)")
        if device == "cuda" and "LOCAL_RANK" in os.environ:
            device = f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
        return device
    raise UsageError(f"--device must be auto, cpu or cuda[:N], not {device!r}")


#: Arithmetic of the torch backend's generator (``--precision``, besides ``auto``).
PRECISIONS = ("fp32", "tf32", "bf16")
PRECISION_CHOICES = "auto, fp32, tf32 or bf16"


def set_cuda_fp32_precision(tf32: bool) -> None:
    """Let float32 convolutions and matrix products on CUDA use TF32 tensor cores, or not.

    A process-wide switch of PyTorch (the newer ``fp32_precision`` settings where they
    exist, ``allow_tf32`` before torch 2.9).
    """
    import torch

    mode = "tf32" if tf32 else "ieee"
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        conv.fp32_precision = mode
        torch.backends.cuda.matmul.fp32_precision = mode
    else:  # pragma: no cover - older torch
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32


def check_precision(precision: str, backend: str = "torch", device: str | None = None) -> str:
    """Validate ``--precision`` for a backend (and device, when known); ``auto`` -> ``fp32``.

    Raises
    ------
    UsageError
        An unknown precision, a reduced precision on the onnx backend, tf32 off CUDA.
    """
    if precision not in ("auto", *PRECISIONS):
        raise UsageError(f"--precision must be {PRECISION_CHOICES}, not {precision!r}")
    if backend == "onnx" and precision not in ("auto", "fp32"):
        raise UsageError(f"the onnx backend runs in fp32 (precision {precision} is for the torch backend)")
    if precision == "tf32" and device is not None and not str(device).startswith("cuda"):
        raise UsageError("--precision tf32 needs a CUDA GPU (TF32 is a tensor-core format); use fp32 on the CPU")
    return "fp32" if precision == "auto" else precision


def cuda_device_id(device: str) -> int:
    """GPU index of ``cuda:N``; for ``cuda``/``auto`` torchrun's LOCAL_RANK (one process per GPU), else 0."""
    device = str(device)
    if ":" in device:
        try:
            return int(device.split(":", 1)[1])
        except ValueError:
            raise UsageError(f"--device {device}: expected cuda:N") from None
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def ort_has_cuda() -> bool:
    """A first guess, before the session exists, that ONNX Runtime will run on a GPU.

    It only sizes the pool of I/O workers, started while the model loads.  The
    compiled-in provider list alone says nothing about the machine (onnxruntime-gpu is
    installed on CPU-only hosts too), so a GPU must also be visible.
    """
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/dxg")


def batch_size(batch_size: int | None, on_cuda: bool, samples: int) -> int:
    """Images per model call: ``--batch-size`` or the device's default."""
    batch = batch_size or DEFAULT_BATCH["cuda" if on_cuda else "cpu"]
    # Keep the images of one model call in memory: S realisations per image count.
    return max(1, min(batch, 4 * batch // samples)) if samples > 1 else batch
