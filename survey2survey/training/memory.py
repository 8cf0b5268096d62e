"""Will one training iteration fit?  A real probe, and what an out-of-memory failure is.

Before any work, ``survey2survey.train`` runs one iteration of each step at the requested
batch sizes on a throwaway copy of the method (:func:`check_batch_fits`).  When that runs
out of memory the batch is halved until an iteration fits, and the run is refused
(``UsageError``, exit 2) naming the largest batch size that ran.  On CUDA the probe reports
the peak of the iteration that fitted (``torch.cuda.max_memory_allocated``).

The budget is the memory available (:func:`available_memory`).  On CUDA it is enforced
while a probe runs (:func:`memory_limit`, the caching allocator's per-process fraction),
so a batch too large fails with ``torch.OutOfMemoryError``.  On the CPU nothing can bound
an iteration without breaking native libraries for the rest of the process (see
:func:`memory_limit`): a batch fails there when the allocator refuses it, and a batch
whose mini-batch data alone (as drawn and D4-transformed) is larger than the budget is not
run at all.  Where the available memory of the CPU cannot be read (not Linux) or
``S2S_NO_MEMORY_CHECK=1`` is set, nothing is checked.

During training, :func:`is_out_of_memory` recognises the allocation failures that get
through anyway (``torch.OutOfMemoryError`` on CUDA, the CPU allocator's ``RuntimeError``,
NumPy's ``MemoryError`` in the loader thread), which ``survey2survey.train`` turns into
one line.
"""

from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path
from typing import Callable

from survey2survey.errors import UsageError

try:
    import resource  # the process's address-space limit (Unix)
except ImportError:  # pragma: no cover - Windows
    resource = None

__all__ = [
    "available_memory",
    "memory_check_enabled",
    "memory_limit",
    "halving_probe",
    "check_batch_fits",
    "is_out_of_memory",
    "format_bytes",
    "SKIP_ENV",
]

#: Environment variable that turns the check off (``S2S_NO_MEMORY_CHECK=1``).
SKIP_ENV = "S2S_NO_MEMORY_CHECK"

_GIB = float(2**30)
_UNLIMITED = 2**60  # cgroup "no limit" values are about 2**63


def format_bytes(n: float) -> str:
    """``812 GiB``, ``21.3 GiB``, ``0.45 GiB``: three significant digits at most."""
    g = n / _GIB
    if g >= 100:
        return f"{g:,.0f} GiB"
    if g >= 10:
        return f"{g:.1f} GiB"
    return f"{g:.2g} GiB" if g < 1 else f"{g:.2f} GiB"


# --- failures ------------------------------------------------------------------------------------

#: Messages of allocation failures that torch raises as a plain RuntimeError.
_OOM_TEXT = ("can't allocate memory", "out of memory", "cudnn_status_alloc_failed", "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an allocation failure: CUDA's ``torch.OutOfMemoryError``, the CPU
    allocator's ``RuntimeError`` ("DefaultCPUAllocator: can't allocate memory"), NumPy's
    ``MemoryError`` (the loader's host buffers)."""
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return any(t in text for t in _OOM_TEXT)
    return False


# --- what is available -------------------------------------------------------------------------


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _cgroup_available(root: Path = Path("/sys/fs/cgroup"), proc: Path = Path("/proc/self/cgroup")) -> int | None:
    """Memory the process's cgroup limit leaves (limit - usage + inactive page cache), or None."""
    found = []
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        lines = []
    paths = {"v2": ["/"], "v1": ["/"]}
    for line in lines:
        _, controllers, where = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            paths["v2"].insert(0, where)
        elif "memory" in controllers.split(","):
            paths["v1"].insert(0, where)
    for version, limit_file, usage_file, inactive in (
        ("v2", "memory.max", "memory.current", "inactive_file"),
        ("v1", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
    ):
        base = root if version == "v2" else root / "memory"
        for where in paths[version]:
            d = base / where.lstrip("/")
            limit, usage = _read_int(d / limit_file), _read_int(d / usage_file)
            if limit is None or usage is None or limit >= _UNLIMITED:
                continue
            found.append(limit - max(0, usage - _stat(d / "memory.stat", inactive)))
            break
    return max(0, min(found)) if found else None


def _address_space() -> int | None:
    """Bytes of address space this process maps now (``VmSize``), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_left() -> int | None:
    """What an address-space limit already set on the process (``ulimit -v``) leaves, or None."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    used = _address_space()
    if soft == resource.RLIM_INFINITY or used is None:
        return None
    return max(0, soft - used)


def available_memory(device) -> tuple[int, str] | None:
    """``(bytes, where)`` available for training on ``device``, or None when unknown.

    CUDA: free device memory plus this process's unused cached blocks.  CPU:
    ``MemAvailable`` (Linux), lowered to what a cgroup memory limit or the process's
    address-space limit (``ulimit -v``) leaves.
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached), f"free on {torch.cuda.get_device_name(device)}"
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        return None
    for limited, where in ((_cgroup_available(), "cgroup memory limit"), (_address_space_left(), "ulimit -v")):
        if limited is not None and limited < avail:
            return limited, f"available ({where})"
    return avail, "available"


def memory_check_enabled() -> bool:
    """False when ``$S2S_NO_MEMORY_CHECK`` is set (to anything but 0)."""
    return os.environ.get(SKIP_ENV, "").strip() in ("", "0")


# --- the probe -----------------------------------------------------------------------------------


@contextlib.contextmanager
def memory_limit(device, budget: int):
    """Let the code in the block allocate at most about ``budget`` more bytes on ``device``.

    CUDA: the caching allocator's per-process memory fraction (reset to the whole device
    afterwards); an allocation beyond it raises ``torch.OutOfMemoryError``.  CPU: no
    limit is set.  The process's address-space limit would be one, but an allocation that
    fails under it inside oneDNN (the CPU convolutions' JIT kernels) leaves every later
    convolution of the process failing ("could not create a primitive"), and one inside
    OpenMP aborts the process; so on the CPU the probe relies on the allocator's own
    errors and on the data bound of :func:`check_batch_fits`.  Tests replace this
    function to impose a limit.
    """
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        yield
        return
    total = torch.cuda.get_device_properties(device).total_memory
    fraction = min(1.0, (torch.cuda.memory_allocated(device) + budget) / total)
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)


def _round_down(n: int) -> int:
    """``2637`` -> ``2600``: two significant digits, rounded down (at least 1)."""
    if n < 100:
        return max(1, n)
    unit = 10 ** (len(str(n)) - 2)
    return n // unit * unit


def halving_probe(fits: Callable[[dict[str, int]], bool], sizes: dict[str, int],
                  multiple: int = 1) -> dict[str, int] | None:  # fmt: skip
    """The largest of ``sizes``, ``sizes / 2``, ``sizes / 4``, ... for which ``fits`` is true.

    All sizes are scaled by the same factor and stay multiples of ``multiple`` (the
    data-parallel processes).  A suggestion below the request is rounded down to two
    significant digits when the sizes are one number.  None when not even the smallest
    batch (``multiple`` each) fits.
    """
    ref = max(sizes.values())
    one_number = len(set(sizes.values())) == 1

    def scaled(k: int) -> dict[str, int]:
        k = _round_down(k) if one_number else k
        return {name: max(multiple, n * k // ref // multiple * multiple) for name, n in sizes.items()}

    k, tried = ref, set()
    while True:
        batch = scaled(k)
        key = tuple(batch.values())
        if key not in tried:
            tried.add(key)
            if fits(batch):
                return batch
        if all(v <= multiple for v in batch.values()):
            return None
        k = max(1, k // 2)


def check_batch_fits(run_once: Callable[[int, int], int | None], batch_unpaired: int, batch_paired: int, *,
                     parts: tuple[str, ...], label: str, available: tuple[int, str], device,
                     data_bytes: Callable[[int, int], int] | None = None, world: int = 1, local_world: int = 1,
                     resumed: bool = False) -> int | None:  # fmt: skip
    """Run one iteration at the requested batch; refuse (:class:`UsageError`) if it does not fit.

    Parameters
    ----------
    run_once : callable(batch_unpaired, batch_paired) -> peak bytes or None
        One iteration of the step at this process's share of the batch, on the device
        (a throwaway copy of the method).  It raises the allocator's error when out of
        memory.
    batch_unpaired, batch_paired : int
        The global sizes; each of ``world`` data-parallel processes takes ``1/world``.
    parts : tuple of str
        The parts of the mini-batch the step reads (``"unpaired"``, ``"paired"``).
    label : str
        What the iteration is of (``"ours step-1"``), for the message.
    available : (int, str)
        Bytes available and how to call them (:func:`available_memory`).
    device : torch.device
        On the CPU the ``local_world`` processes of this machine share its memory.
    data_bytes : callable(batch_unpaired, batch_paired) -> int, optional
        Bytes of one mini-batch: a batch whose data alone exceeds the budget is not run.
    resumed : bool
        The sizes are those of a run being resumed, which cannot change them: the advice
        is to free memory or start again.

    Returns
    -------
    int or None
        The peak bytes of the requested iteration where the device reports it (CUDA).

    Notes
    -----
    The message names the options that set the sizes the step reads: ``--batch-size``
    when the two sizes are equal (it sets both), else ``--batch-size`` for the unpaired
    images and ``--batch-paired`` for the pairs.
    """
    world = max(1, int(world))
    cpu = getattr(device, "type", str(device)) == "cpu"
    share = max(1, int(local_world)) if cpu else 1
    total, where = available
    budget = total // share
    peaks: dict[tuple[int, int], int | None] = {}

    def fits(sizes: dict[str, int]) -> bool:
        bu = max(1, sizes.get("batch_unpaired", batch_unpaired) // world)
        bp = max(1, sizes.get("batch_paired", batch_paired) // world)
        if data_bytes is not None and data_bytes(bu, bp) > budget:
            return False
        try:
            with memory_limit(device, budget):
                peaks[bu, bp] = run_once(bu, bp)
            return True
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            del exc  # (its traceback holds the failed iteration's tensors)
            gc.collect()  # free them before the next, smaller try
            if not cpu:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            return False

    same = batch_unpaired == batch_paired
    read = {"batch_unpaired": batch_unpaired, "batch_paired": batch_paired}
    if same or len(parts) == 1:
        read = {k: v for k, v in read.items() if k[6:] in parts} or read
    if fits(read):
        return peaks.popitem()[1]

    def flags(sizes: dict[str, int]) -> str:
        if same:
            return f"--batch-size {next(iter(sizes.values()))}"
        names = {"batch_unpaired": "--batch-size", "batch_paired": "--batch-paired"}
        return " ".join(f"{names[k]} {v}" for k, v in sizes.items())

    smaller = halving_probe(fits, {k: max(world, v // 2) for k, v in read.items()}, multiple=world)
    peak = peaks.popitem()[1] if smaller is not None and peaks else None
    peak_text = f", peak {format_bytes(peak)} at that size" if peak is not None else ""
    if smaller is None:
        advice = "not even the smallest batch fits: free memory or use a larger device"
    elif resumed:
        advice = f"free memory, or start again with {flags(smaller)} or less (--overwrite){peak_text}"
    else:
        advice = f"use {flags(smaller)} or less{peak_text}"
    ranks = f" in each of {world} processes" if world > 1 and share == 1 else ""
    ranks = f" in {share} processes" if share > 1 else ranks
    raise UsageError(
        f"{flags(read)} does not fit: one {label} iteration{ranks} ran out of memory, "
        f"{format_bytes(total)} {where}: {advice}"
    )
