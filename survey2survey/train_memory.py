"""``s2s train``'s memory guard: will one training iteration fit, and what to do when it did not.

Before any work, ``survey2survey.train`` estimates the memory one iteration of each step
needs at the requested batch sizes (:func:`estimate_step_memory`) and refuses
(:func:`check_batch_fits`, ``UsageError``, exit 2) when that is more than the device has
available (:func:`available_memory`), naming the largest batch size that fits.  During
training, :func:`is_out_of_memory` recognises the allocation failures that get through
anyway (``torch.OutOfMemoryError`` on CUDA, the CPU allocator's ``RuntimeError``, NumPy's
``MemoryError`` in the loader thread), which ``survey2survey.train`` turns into one line.

The estimate
------------
The method's own ``train_step`` runs on a throwaway instance (:func:`probe_method`), on
the CPU, on small batches, under a dispatch mode that records every tensor storage the
step creates -- activations saved for the backward passes (through
``saved_tensors_hooks``, so that they are released with their graph), temporaries,
gradients -- and the bytes alive after each allocation.  The arithmetic is skipped: an
operation that returns new tensors is evaluated on the ``meta`` device for its output
shapes and strides and answered with uninitialised CPU tensors of that layout, which cost
no time and, untouched, no memory; views run for real and in-place operations not at all
(neither allocates).  The optimiser updates are replaced by their backward passes.  The
count is the eager step's exactly, bf16 autocast (CPU autocast stands in for CUDA's) and
channels-last included.

Every storage is proportional to the batch sizes or independent of them, so the bytes
alive after the k-th allocation are ``c[k] + a[k] * Nu + b[k] * Np``: two probes (batches
of 2 and 3) give the coefficients for one part of the mini-batch or both moved together
(``--batch-size`` alone), three for both parts apart.  The iteration's peak at any batch
size is the largest of these lines, exact for any size, not an extrapolation of the peak.
Added to it:

* the weights, the optimiser's two state tensors per trainable parameter (Adam and
  Adadelta keep two) and the previous iteration's gradients (held until each optimiser
  group's next update);
* the mini-batches: on the CPU the loader's queue holds ``prefetch`` batches besides the
  one in use and the one being built (twice, before and after augmentation); on CUDA the
  batch and its augmented copy on the device (``survey2survey.train`` adds the whole
  dataset when the loader places it on the device, ``--data-placement``).

Against the CPU allocator's peak measured by ``torch.profiler`` for a real step, the
estimate is within 10 % (``tests/test_train.py``).  On CUDA the caching allocator adds
fragmentation and cuDNN workspaces, and ``torch.compile`` saves fewer activations than
eager mode; the refusal is for batches whose estimate exceeds the available memory, and
the suggested batch size keeps ``1 - HEADROOM`` of it free.  The probes cost a few tenths
of a second (0.3 s to 0.9 s per step of the paper's methods on one CPU core).

Available memory: CUDA, the device's free memory (``torch.cuda.mem_get_info``) plus what
this process's caching allocator holds unused; CPU, ``MemAvailable`` of ``/proc/meminfo``,
lowered to what the process's cgroup memory limit (a batch job's, a container's) leaves;
where that cannot be read (not Linux) the check is skipped.  ``S2S_NO_MEMORY_CHECK=1``
skips it too.
"""

from __future__ import annotations

import gc
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from survey2survey.errors import UsageError

__all__ = [
    "StepMemory",
    "probe_method",
    "estimate_step_memory",
    "available_memory",
    "memory_check_enabled",
    "largest_batch",
    "check_batch_fits",
    "is_out_of_memory",
    "format_bytes",
    "HEADROOM",
    "SKIP_ENV",
]

#: Fraction of the available memory a suggested batch size may use.
HEADROOM = 0.9
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


# --- the estimate --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class StepMemory:
    """Memory of one iteration as a function of the batch sizes (bytes, per process).

    The step's tensors alive after its k-th allocation take ``c[k] + a[k] * Nu + b[k] * Np``
    bytes (each storage is proportional to the batch or independent of it); the peak is
    the largest of them.  To it add ``fixed`` (weights, optimiser state, and a dataset
    copied to the GPU) and the mini-batch data, ``data_unpaired * Nu + data_paired * Np``.

    Attributes
    ----------
    label : str
        ``"ours step-1"``, ``"aecnn"``: what the iteration is of, for messages.
    parts : tuple of str
        The parts of the mini-batch the step reads (``"unpaired"``, ``"paired"``).
    c, a, b : numpy.ndarray
        Coefficients of the bytes alive after each allocation of the step.
    joint : bool
        ``a`` is the slope of both sizes moved together (``b`` is 0): measured for equal
        sizes, and used with the larger of the two.
    fixed, data_unpaired, data_paired : float
    """

    label: str
    parts: tuple[str, ...]
    c: np.ndarray
    a: np.ndarray
    b: np.ndarray
    joint: bool
    fixed: float
    data_unpaired: float
    data_paired: float

    def need(self, batch_unpaired: int, batch_paired: int) -> float:
        """Bytes one iteration needs with ``batch_unpaired`` images per domain and ``batch_paired`` pairs."""
        nu, np_ = float(batch_unpaired), float(batch_paired)
        if self.joint:  # measured moving both sizes together: ``a`` is the slope of both
            nu = np_ = max(nu, np_)
        peak = float(np.max(self.c + self.a * nu + self.b * np_)) if len(self.c) else 0.0
        return max(peak, 0.0) + self.fixed + self.data_unpaired * nu + self.data_paired * np_


class _LiveBytes(TorchDispatchMode):
    """Bytes of the tensor storages alive, and their peak, while a step runs; no arithmetic.

    Every operation that returns new tensors is answered with uninitialised CPU tensors of
    the layout its meta kernel gives (remembered in ``layouts``: the same operation on the
    same shapes is asked for again and again); views run, and in-place operations return
    their argument untouched (neither creates a storage).  A storage counts from the first
    tensor seen on it until the last of the tensors and saved-for-backward references
    holding it is gone.
    """

    def __init__(self, layouts: dict) -> None:
        super().__init__()
        self.layouts = layouts  # (op, argument layouts) -> output layouts, or None: run it
        self.live: dict[int, list[int]] = {}  # storage id -> [bytes, holders]
        self.refs: dict[int, weakref.ref] = {}  # weak references to the holders (release callbacks)
        self.current = 0
        self.peak = 0
        self.trace: list[int] = []  # bytes alive after each new storage

    def hold(self, t: torch.Tensor, owner: Any) -> None:
        storage = t.untyped_storage()
        key = storage._cdata
        entry = self.live.get(key)
        if entry is None:
            entry = self.live[key] = [storage.nbytes(), 0]
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
            self.trace.append(self.current)
        entry[1] += 1
        ref = weakref.ref(owner, lambda ref, key=key: self._release(ref, key))
        self.refs[id(ref)] = ref

    def _release(self, ref, key: int) -> None:
        self.refs.pop(id(ref), None)
        entry = self.live.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                del self.live[key]
                self.current -= entry[0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        written = _written_arguments(func)
        if written is not None:  # in place (or out=): no new storage, and the values are never read
            out = [args[i] if i < len(args) else kwargs.get(name) for i, name in written]
            if all(isinstance(t, torch.Tensor) for t in out):
                return out[0] if len(out) == 1 else tuple(out)
        try:
            key = (func, _layout(args), _layout(kwargs))
            hash(key)
        except TypeError:
            key = None
        layout = self.layouts.get(key, _UNKNOWN) if key is not None else _UNKNOWN
        if layout is _UNKNOWN:
            layout = _output_layout(func, args, kwargs)
            if key is not None:
                self.layouts[key] = layout
        # (Inside __torch_dispatch__ this mode is off: the calls below are not seen again.)
        out = func(*args, **kwargs) if layout is None else _allocate(layout)
        if isinstance(out, torch.Tensor):
            self.hold(out, out)
        elif isinstance(out, (list, tuple)):
            for t in out:
                if isinstance(t, torch.Tensor):
                    self.hold(t, t)
        return out


_UNKNOWN = object()


def _written_arguments(func) -> list[tuple[int, str]] | None:
    """For an operation that writes into its arguments and returns them: their positions and
    names, in the order returned.  None for any other operation (and ``resize_``, ``set_``)."""
    try:
        return _WRITES[func]
    except KeyError:
        pass
    schema = func._schema
    found = None
    rets = schema.returns
    if rets and all(r.alias_info is not None and r.alias_info.is_write for r in rets) and "resize" not in schema.name \
            and not schema.name.endswith("::set_"):  # fmt: skip
        by_set = {frozenset(a.alias_info.before_set): (i, a.name) for i, a in enumerate(schema.arguments)
                  if a.alias_info is not None and a.alias_info.is_write}  # fmt: skip
        found = [by_set.get(frozenset(r.alias_info.before_set)) for r in rets]
        if any(f is None for f in found):
            found = None
    _WRITES[func] = found
    return found


_WRITES: dict = {}

#: Output layouts by (operation, argument layouts), shared by every probe of the process:
#: the probes' batches are always of 2 and 3, so a network probed again costs no meta kernel.
_LAYOUTS: dict = {}


def _layout(x):
    """A hashable description of an argument: tensors by shape, strides and dtype."""
    if isinstance(x, torch.Tensor):
        return (tuple(x.shape), x.stride(), x.dtype, x.device.type)
    if isinstance(x, (list, tuple)):
        return tuple(_layout(v) for v in x)
    if isinstance(x, dict):
        return tuple((k, _layout(v)) for k, v in x.items())
    return x


def _allocate(layout):
    """Uninitialised CPU tensors of ``layout`` (see ``_output_layout``)."""
    kind = layout[0]
    if kind == "tensor":
        return torch.empty_strided(layout[1], layout[2], dtype=layout[3], device="cpu")
    if kind == "none":
        return None
    items = [_allocate(v) for v in layout[1:]]
    return items if kind == "list" else tuple(items)


def _output_layout(func, args, kwargs):
    """The layouts of ``func``'s outputs from its meta kernel, or None to run it for real."""
    if any(r.alias_info is not None for r in func._schema.returns):
        return None  # a view, an in-place or out= operation: no new storage
    if not any(isinstance(a, torch.Tensor) for a in tree_flatten((args, kwargs))[0]):
        return None  # a factory (torch.empty, randn): cheap, run it
    device = kwargs.get("device")
    if device is not None and torch.device(device).type != "cpu":
        return None

    def to_meta(x):
        if isinstance(x, torch.Tensor):
            return torch.empty_strided(x.size(), x.stride(), dtype=x.dtype, device="meta")
        return x

    meta_kwargs = tree_map(to_meta, kwargs)
    if device is not None:
        meta_kwargs["device"] = torch.device("meta")
    try:
        out = func(*tree_map(to_meta, args), **meta_kwargs)
    except Exception:  # no meta kernel, or a value is needed (.item()): run it
        return None

    def describe(x):
        if isinstance(x, torch.Tensor):
            return ("tensor", tuple(x.shape), x.stride(), x.dtype)
        if x is None:
            return ("none",)
        if isinstance(x, (list, tuple)):
            return ("list" if isinstance(x, list) else "tuple", *(describe(v) for v in x))
        raise TypeError(type(x))  # a number or a bool: run the operation

    try:
        return describe(out)
    except TypeError:
        return None


class _Saved:
    """What ``saved_tensors_hooks`` keeps for a tensor saved for backward (so that its
    release is seen when the graph frees it)."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor


def _probe(method, sizes: dict[str, int], channels_last: bool, layouts: dict) -> list[int]:
    """Bytes alive after each allocation of ``method.train_step`` on a batch of these sizes.

    Runs on the CPU without arithmetic (see :class:`_LiveBytes`); the batch itself and the
    weights are not counted.
    """
    from survey2survey.data.loader import Batch

    for p in method.nets.parameters():
        p.grad = None
    shapes = {
        "a": method.size[method.a], "b": method.size[method.b],
        "pair_a": method.size[method.a], "pair_b": method.size[method.b],
    }  # fmt: skip
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    batch = Batch(**{
        f: torch.empty((n, method.bands, shapes[f], shapes[f])).contiguous(memory_format=fmt)
        for f, n in sizes.items()
    })  # fmt: skip
    tracker = _LiveBytes(layouts)

    def pack(t: torch.Tensor) -> _Saved:
        saved = _Saved(t)
        tracker.hold(t, saved)
        return saved

    collecting = gc.isenabled()
    gc.disable()  # releases by reference counting only: the same trace every time
    try:
        with tracker, torch.autograd.graph.saved_tensors_hooks(pack, lambda s: s.tensor):
            method.train_step(batch)
    finally:
        if collecting:
            gc.enable()
    return tracker.trace


def probe_method(cls, surveys: dict, step: int | None, options: dict | None = None):
    """A throwaway instance of method ``cls`` for :func:`estimate_step_memory`.

    Built as training builds it (the same errors for bad options); the random-number state
    is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        return cls(surveys, step=step, options=options)


def estimate_step_memory(
    method,
    *,
    device_type: str = "cpu",
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    prefetch: int = 3,
    same_sizes: bool = False,
) -> StepMemory:
    """Estimate the memory of one iteration of ``method`` as a :class:`StepMemory`.

    Parameters
    ----------
    method : TrainingMethod
        A throwaway instance (:func:`probe_method`); it is modified.
    device_type : {"cpu", "cuda"}
        Where training runs (the mini-batch pipeline differs).
    amp_dtype : torch.dtype, optional
        ``torch.bfloat16`` for bf16 autocast.
    channels_last : bool
    prefetch : int
        Batches the loader prepares ahead (CPU: they are in the same memory).
    same_sizes : bool
        The unpaired and paired batch sizes will be equal (``--batch-size`` alone): one
        probe fewer; :meth:`StepMemory.need` then takes the larger of the two sizes for both.

    Notes
    -----
    See the module docstring.  Costs a few tenths of a second on a CPU and allocates
    almost nothing; the random-number state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        # The method as training sets it up, on the CPU, without optimisers: each update
        # is a backward pass whose gradients stay until the group's next update.
        method.device = torch.device("cpu")
        method.amp_dtype = amp_dtype
        method.world = 1
        if channels_last:
            method.nets.to(memory_format=torch.channels_last)
        for name, module in method.nets.items():
            module.train(name not in method._frozen_names())
            method.fn[name] = module
        for group, names in method.groups.items():
            method._params[group] = [p for n in names for p in method.nets[n].parameters() if p.requires_grad]

        def update(group: str, loss: torch.Tensor) -> None:
            params = method._params[group]
            for p in params:
                p.grad = None
            loss.backward(inputs=params)

        method.update = update
        parts = tuple(method.parts)
        fields = {"unpaired": ("a", "b"), "paired": ("pair_a", "pair_b")}

        def sizes(nu: int, np_: int) -> dict[str, int]:
            out = {}
            for part, n in (("unpaired", nu), ("paired", np_)):
                if part in parts:
                    out.update({f: n for f in fields[part]})
            return out

        if len(_LAYOUTS) > 200_000:  # a long-lived process that probed many networks
            _LAYOUTS.clear()
        # Unpaired-only and paired-only methods need two probes; both parts, three, or two
        # moving both together when the sizes are equal (the slope is then in ``a``).
        # Batches of 2 and 3, not 1: a dimension of size 1 makes more layouts contiguous,
        # which can spare a copy that larger batches make.
        both = len(parts) == 2
        joint = both and same_sizes
        probes = [(2, 2), (3, 3) if joint else (3, 2) if "unpaired" in parts else (2, 3)]
        if both and not joint:
            probes.append((2, 3))
        traces = [np.asarray(_probe(method, sizes(*nn), channels_last, _LAYOUTS), dtype=np.float64) for nn in probes]
        for p in method.nets.parameters():
            p.grad = None
    if len({len(t) for t in traces}) > 1:  # the step's operations depend on the batch size: fit the peaks
        traces = [np.array([t.max(initial=0.0)]) for t in traces]
    slopes = [t - traces[0] for t in traces[1:]]
    if both and not joint:
        a, b = slopes
    elif "unpaired" in parts:
        a, b = slopes[0], np.zeros_like(slopes[0])
    else:
        a, b = np.zeros_like(slopes[0]), slopes[0]
    c = traces[0] - 2 * a - 2 * b

    # Weights, optimiser state (two tensors per trainable parameter), and the gradients of
    # the previous iteration, held until each group's next update.
    params = sum(p.numel() * p.element_size() for p in method.nets.parameters())
    trainable = sum(p.numel() * p.element_size() for n in method._params.values() for p in n)
    # The mini-batches: bytes of one image of each field, times the copies alive at once.
    image = sum(method.bands * method.size[d] ** 2 * 4 for d in (method.a, method.b))
    copies = (max(1, int(prefetch)) + 3) if device_type == "cpu" else 2
    return StepMemory(
        label=method.name + (f" step-{method.step}" if method.step is not None else ""),
        parts=parts,
        c=c, a=a, b=b,
        joint=joint,
        fixed=float(params + 3 * trainable),
        data_unpaired=float(copies * image if "unpaired" in parts else 0),
        data_paired=float(copies * image if "paired" in parts else 0),
    )  # fmt: skip


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


def available_memory(device) -> tuple[int, str] | None:
    """``(bytes, where)`` available for training on ``device``, or None when unknown.

    CUDA: free device memory plus this process's unused cached blocks.  CPU:
    ``MemAvailable`` (Linux), lowered to what a cgroup memory limit leaves.
    """
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
    limited = _cgroup_available()
    if limited is not None and limited < avail:
        return limited, "available (cgroup memory limit)"
    return avail, "available"


# --- the check ---------------------------------------------------------------------------------


def memory_check_enabled() -> bool:
    """False when ``$S2S_NO_MEMORY_CHECK`` is set (to anything but 0)."""
    return os.environ.get(SKIP_ENV, "").strip() in ("", "0")


def _round_down(n: int) -> int:
    """``2637`` -> ``2600``: two significant digits, rounded down (at least 1)."""
    if n < 100:
        return max(1, n)
    unit = 10 ** (len(str(n)) - 2)
    return n // unit * unit


def largest_batch(need, budget: float, sizes: dict[str, int], multiple: int = 1) -> dict[str, int] | None:
    """The largest batch in the proportion of ``sizes`` with ``need(**batch) <= budget``.

    ``sizes`` maps the sizes to scale (``batch_unpaired``, ``batch_paired``, or both) to
    the requested values; all are scaled by the same factor, stay multiples of ``multiple``
    (data-parallel processes) and, when there is one or they are equal, are rounded down to
    two significant digits.  None when not even the smallest batch fits.
    """
    ref = max(sizes.values())

    def scaled(k: int) -> dict[str, int]:
        return {name: max(multiple, n * k // ref // multiple * multiple) for name, n in sizes.items()}

    best = None
    lo, hi = 1, ref  # the largest k in [1, ref] whose scaled batch fits
    while lo <= hi:
        k = (lo + hi) // 2
        if need(**scaled(k)) <= budget:
            best, lo = k, k + 1
        else:
            hi = k - 1
    if best is None:
        return None
    if len(set(sizes.values())) == 1:
        best = max(multiple, _round_down(best) // multiple * multiple)
    return scaled(best)


def check_batch_fits(
    est: StepMemory,
    batch_unpaired: int,
    batch_paired: int,
    available: tuple[int, str],
    *,
    device_type: str = "cpu",
    world: int = 1,
    local_world: int = 1,
    resumed: bool = False,
) -> None:
    """Refuse (:class:`UsageError`) batch sizes whose estimate is more than ``available``.

    Parameters
    ----------
    est : StepMemory
    batch_unpaired, batch_paired : int
        The global sizes; each of ``world`` data-parallel processes takes ``1/world``.
    available : (int, str)
        Bytes available and how to call them (:func:`available_memory`).
    device_type : str
        On the CPU the ``local_world`` processes of this machine share its memory.
    resumed : bool
        The sizes are those of a run being resumed, which cannot change them: the advice
        is to free memory or start again.

    Notes
    -----
    The message names the options that set the sizes the step reads: ``--batch-size``
    when the two sizes are equal (it sets both), else ``--batch-size`` for the unpaired
    images and ``--batch-paired`` for the pairs.
    """
    world = max(1, int(world))
    share = max(1, int(local_world)) if device_type == "cpu" else 1

    def need(batch_unpaired: int = batch_unpaired, batch_paired: int = batch_paired) -> float:
        return est.need(max(1, batch_unpaired // world), max(1, batch_paired // world)) * share

    total, where = available
    asked = need()
    if asked <= total:
        return
    same = batch_unpaired == batch_paired
    read = {"batch_unpaired": batch_unpaired, "batch_paired": batch_paired}
    if same or len(est.parts) == 1:
        read = {k: v for k, v in read.items() if k[6:] in est.parts} or read

    def flags(sizes: dict[str, int]) -> str:
        if same:
            return f"--batch-size {next(iter(sizes.values()))}"
        names = {"batch_unpaired": "--batch-size", "batch_paired": "--batch-paired"}
        return " ".join(f"{names[k]} {v}" for k, v in sizes.items())

    fits = largest_batch(need, HEADROOM * total, read, multiple=world)
    if fits is None:
        advice = "not even the smallest batch fits: free memory or use a larger device"
    elif resumed:
        advice = f"free memory, or start again with {flags(fits)} or less (--overwrite)"
    else:
        advice = f"use {flags(fits)} or less"
    ranks = f" in each of {world} processes" if world > 1 and share == 1 else ""
    ranks = f" in {share} processes" if share > 1 else ranks
    raise UsageError(
        f"{flags(read)} needs about {format_bytes(asked)} for one {est.label} iteration{ranks}, "
        f"{format_bytes(total)} {where}: {advice}"
    )


# --- failures during training --------------------------------------------------------------------

#: Messages of allocation failures that torch raises as a plain RuntimeError.
_OOM_TEXT = ("can't allocate memory", "out of memory", "cudnn_status_alloc_failed", "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an allocation failure: CUDA's ``torch.OutOfMemoryError``, the CPU
    allocator's ``RuntimeError`` ("DefaultCPUAllocator: can't allocate memory"), NumPy's
    ``MemoryError`` (the loader's host buffers)."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return any(t in text for t in _OOM_TEXT)
    return False
