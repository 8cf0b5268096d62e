"""The paper's mini-batch, read from a prepared dataset directory.

Lin & Fouchez (2021), section IV-B: every iteration draws 24 unpaired images of domain a,
24 unpaired images of domain b and 24 pairs (96 images), each turned by a random element
of the dihedral group D4 (rotation by a multiple of 90 degrees, optionally mirrored); both
images of a pair get the same transform, so the pair stays aligned.

Reading never stalls the training step:

* ``placement="host"`` -- a background thread gathers the rows from the memory-mapped
  ``.npy`` arrays into pinned buffers; the training thread only enqueues an asynchronous
  host-to-device copy and the D4 gather kernel.  This is the path for sets larger than the
  GPU (the paper's set is ~100 GB in float32).
* ``placement="device"`` -- the arrays the method needs are copied to the GPU once; the
  thread then only prepares the (tiny) index and transform tensors.
* ``placement="auto"`` -- ``device`` when the arrays take less than 40 % of the free GPU
  memory, ``host`` otherwise (and always ``host`` on CPU).

Batches are reproducible and resumable without saving any RNG state: the indices and
transforms of iteration ``i`` come from ``numpy.random.default_rng([seed, stream, i])``,
so the loader's whole state is ``(seed, stream, iteration)``.  Indices are drawn with
replacement, like the paper's random selection per iteration.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from survey2survey.errors import UsageError
from survey2survey.surveys import Survey

__all__ = [
    "PreparedDataset",
    "open_dataset",
    "source_paths",
    "source_path",
    "Batch",
    "MiniBatchLoader",
    "d4_index_maps",
    "apply_d4",
    "PARTS",
]

#: The format ``s2s prepare`` writes.  ``s2s-dataset/2``: ``source_file`` is relative to the
#: dataset directory (or absolute) and the fingerprint leaves that column out.
DATASET_FORMAT = "s2s-dataset/2"
#: Formats :func:`open_dataset` reads.  ``s2s-dataset/1`` has the same layout, but its
#: relative ``source_file`` values are relative to the directory ``s2s prepare`` ran from,
#: and its fingerprint also hashed that column.
READABLE_FORMATS = ("s2s-dataset/1", DATASET_FORMAT)

#: Parts of the paper's mini-batch a method can ask for.
PARTS = ("unpaired", "paired")


# --- the prepared dataset directory ----------------------------------------------------


@dataclass
class PreparedDataset:
    """A prepared dataset directory opened for reading (arrays memory-mapped).

    Attributes
    ----------
    root : Path
        The directory.
    info : dict
        ``dataset.json`` as read.
    surveys : dict
        ``{"a": Survey, "b": Survey}``.
    arrays : dict
        Array name (``"unpaired_a"``, ``"train_b_on_a"``, ...) -> read-only memmap,
        float32 ``(N, C, H, W)`` in model space.
    """

    root: Path
    info: dict[str, Any]
    surveys: dict[str, Survey]
    arrays: dict[str, np.ndarray] = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return str(self.info.get("fingerprint", ""))

    @property
    def regridded(self) -> bool:
        """True when the b arrays regridded onto a's grid (``*_b_on_a``) are present."""
        return all(f"{n}_b_on_a" in self.arrays for n in ("unpaired", "train"))

    @property
    def format(self) -> str:
        """The dataset format (``s2s-dataset/2``)."""
        return str(self.info.get("format", ""))

    def test_pairs(self) -> list[dict[str, dict[str, str]]]:
        """The held-out test pairs in row order, as rows of ``manifest.csv``.

        Returns
        -------
        list of dict
            ``[{"a": row, "b": row}, ...]``: item ``k`` is row ``k`` of ``test_a`` and of
            ``test_b``, one galaxy (``id``, ``ra``, ``dec``, ``survey``, ``source_file``, ...;
            :func:`source_paths` turns a row into its input files).

        Raises
        ------
        UsageError
            ``manifest.csv`` missing or unreadable, or its test rows of a and b differ in number.
        """
        import csv

        path = self.root / "manifest.csv"
        rows: dict[str, dict[int, dict[str, str]]] = {"a": {}, "b": {}}
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                for r in csv.DictReader(fh):
                    if r.get("split") == "test" and r.get("domain") in rows:
                        rows[r["domain"]][int(r["index"])] = r
        except (OSError, UnicodeDecodeError, KeyError, ValueError) as exc:
            raise UsageError(f"{path}: unreadable ({exc})") from None
        if sorted(rows["a"]) != sorted(rows["b"]):
            raise UsageError(f"{path}: {len(rows['a'])} test rows of a, {len(rows['b'])} of b (they must pair up)")
        return [{"a": rows["a"][k], "b": rows["b"][k]} for k in sorted(rows["a"])]

    def array_names(self, parts: tuple[str, ...], regridded: bool = False) -> dict[str, str]:
        """Batch field -> array name for the requested parts of the mini-batch."""
        b = "b_on_a" if regridded else "b"
        names = {}
        if "unpaired" in parts:
            names.update(a="unpaired_a", b=f"unpaired_{b}")
        if "paired" in parts:
            names.update(pair_a="train_a", pair_b=f"train_{b}")
        return names


def open_dataset(path: str | Path) -> PreparedDataset:
    """Open a prepared dataset directory (``s2s prepare`` output) for training.

    Checks ``dataset.json`` against the arrays on disk (format, names, shapes, dtype,
    survey sizes) and memory-maps every array; nothing is read into memory.

    Parameters
    ----------
    path : path
        The dataset directory.

    Returns
    -------
    PreparedDataset

    Raises
    ------
    UsageError
        One line naming the file and the problem, for anything unusable.
    """
    root = Path(path)
    meta_path = root / "dataset.json"
    if not root.is_dir():
        raise UsageError(f"{root}: not a dataset directory (run `s2s prepare` first)")
    try:
        info = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{meta_path}: missing (not a prepared dataset directory)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{meta_path}: unreadable ({exc})") from None
    if not isinstance(info, dict) or info.get("format") not in READABLE_FORMATS:
        raise UsageError(f"{meta_path}: format is {info.get('format') if isinstance(info, dict) else None!r}, "
                         f"expected {' or '.join(map(repr, READABLE_FORMATS))}")
    try:
        surveys = {k: Survey.from_dict(info["surveys"][k]["name"], info["surveys"][k], str(meta_path)) for k in "ab"}
        listed = info["arrays"]
        if not isinstance(listed, dict):
            raise TypeError("'arrays' is not a table")
    except (KeyError, TypeError) as exc:
        raise UsageError(f"{meta_path}: malformed ({exc!s})") from None
    arrays: dict[str, np.ndarray] = {}
    for name, entry in listed.items():
        file = root / str(entry.get("file", f"{name}.npy"))
        try:
            arr = np.load(file, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise UsageError(f"{file}: missing (listed in {meta_path.name})") from None
        except (OSError, ValueError) as exc:
            try:
                with open(file, "rb") as fh:
                    magic = fh.read(6)
            except OSError:
                magic = b""
            reason = "not a NumPy .npy file" if magic != b"\x93NUMPY" else f"corrupted or truncated ({exc})"
            raise UsageError(f"{file}: cannot memory-map: {reason}") from None
        if arr.dtype != np.float32 or arr.ndim != 4:
            raise UsageError(f"{file}: expected float32 (N, C, H, W), found {arr.dtype} {arr.shape}")
        if list(arr.shape) != list(entry.get("shape", arr.shape)):
            raise UsageError(f"{file}: shape {list(arr.shape)} differs from dataset.json {entry['shape']}")
        domain = "a" if name.endswith("_a") else "b"
        survey = surveys["a" if name.endswith("_on_a") else domain]
        want = (survey.n_bands, survey.cutout_size, survey.cutout_size)
        if name.endswith("_on_a"):
            want = (surveys["b"].n_bands,) + want[1:]
        if tuple(arr.shape[1:]) != want:
            raise UsageError(f"{file}: cutouts are {tuple(arr.shape[1:])}, survey {survey.name!r} needs {want}")
        arrays[name] = arr
    for name in ("train_a", "train_b"):
        if name not in arrays:
            raise UsageError(f"{meta_path}: no {name!r} array listed")
    if len(arrays["train_a"]) != len(arrays["train_b"]):
        raise UsageError(f"{meta_path}: train_a and train_b have different lengths (pairs must align)")
    return PreparedDataset(root=root, info=info, surveys=surveys, arrays=arrays)


def _dataset_format(root: Path) -> str:
    """The ``format`` of ``root/dataset.json`` (the current one when it cannot be read)."""
    try:
        info = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return DATASET_FORMAT
    return str(info.get("format", DATASET_FORMAT)) if isinstance(info, dict) else DATASET_FORMAT


def _absolute(path: Path) -> Path:
    """``path`` made absolute with its directory resolved (``..`` and directory symlinks);
    the file name is kept, so a linked file keeps its own name."""
    return path.parent.resolve() / path.name


def source_paths(
    dataset: str | os.PathLike | PreparedDataset,
    row: Mapping[str, str] | str,
    dataset_format: str | None = None,
) -> list[Path]:
    """The input file(s) a row of ``manifest.csv`` was read from, as absolute paths.

    ``source_file`` is one path, or one path per band joined with ``;``.  Each is absolute,
    or relative to the dataset directory (``s2s-dataset/2``), so it resolves from any
    working directory and after the dataset moves together with its sources.  In an
    ``s2s-dataset/1`` dataset relative paths are relative to the directory ``s2s prepare``
    ran from: they are resolved against the current working directory, as that version did.

    Parameters
    ----------
    dataset : path or PreparedDataset
        The dataset directory (or the opened dataset).
    row : mapping or str
        A row of ``manifest.csv`` (as read by :class:`csv.DictReader`), or its
        ``source_file`` value.
    dataset_format : str, optional
        The dataset's format; read from its ``dataset.json`` when not given.

    Returns
    -------
    list of Path
        Absolute paths, one per file (the files may no longer exist).
    """
    if isinstance(dataset, PreparedDataset):
        root = dataset.root
        dataset_format = dataset_format or str(dataset.info.get("format", DATASET_FORMAT))
    else:
        root = Path(dataset)
    value = row if isinstance(row, str) else row["source_file"]
    paths = []
    for part in value.split(";"):
        path = Path(part)
        if not path.is_absolute():
            if dataset_format is None:
                dataset_format = _dataset_format(root)
            path = path if dataset_format == "s2s-dataset/1" else root / path
        paths.append(_absolute(path))
    return paths


def source_path(
    dataset: str | os.PathLike | PreparedDataset,
    row: Mapping[str, str] | str,
    dataset_format: str | None = None,
) -> Path:
    """The input file a row of ``manifest.csv`` was read from (absolute; see :func:`source_paths`).

    For an object read from one file per band, the first of them (the file that names the
    object in messages).
    """
    return source_paths(dataset, row, dataset_format)[0]


# --- the D4 augmentation ---------------------------------------------------------------


def d4_index_maps(size: int, device: Any = "cpu"):
    """Pixel permutations of the 8 elements of D4 on a ``size x size`` grid.

    Returns
    -------
    torch.Tensor
        int64 ``(8, size * size)``; row ``t`` maps output pixel -> input pixel for
        ``rot90`` by ``t % 4`` quarter turns followed by a left-right flip when ``t >= 4``.
        One ``gather`` with these maps applies a different transform to every image
        in a single kernel.
    """
    import torch

    base = torch.arange(size * size).reshape(size, size)
    maps = []
    for t in range(8):
        m = torch.rot90(base, t % 4, dims=(0, 1))
        if t >= 4:
            m = torch.flip(m, dims=(1,))
        maps.append(m.reshape(-1))
    return torch.stack(maps).to(device)


def apply_d4(x, codes, maps):
    """Apply transform ``codes[i]`` of D4 to image ``x[i]``.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, H, W)`` with ``H == W``.
    codes : torch.Tensor
        int64 ``(N,)`` in 0..7 (see :func:`d4_index_maps`).
    maps : torch.Tensor
        ``d4_index_maps(H)`` on ``x``'s device.

    Returns
    -------
    torch.Tensor
        ``(N, C, H, W)``, contiguous.
    """
    n, c, h, w = x.shape
    index = maps[codes]  # (N, H*W)
    out = x.reshape(n, c, h * w).gather(2, index[:, None, :].expand(n, c, h * w))  # (N, C, H*W)
    return out.reshape(n, c, h, w)


# --- the mini-batch --------------------------------------------------------------------


@dataclass
class Batch:
    """One mini-batch; fields a method did not ask for are ``None``.

    Attributes
    ----------
    a : torch.Tensor or None
        Unpaired domain-a images ``(Nu, Ca, Ha, Wa)``.
    b : torch.Tensor or None
        Unpaired domain-b images ``(Nu, Cb, Hb, Wb)``.
    pair_a, pair_b : torch.Tensor or None
        Paired images ``(Np, C, H, W)``; row i of both is the same galaxy, same transform.
    iteration : int
        The iteration this batch was drawn for.
    """

    a: Any = None
    b: Any = None
    pair_a: Any = None
    pair_b: Any = None
    iteration: int = 0


_FIELDS = ("a", "b", "pair_a", "pair_b")


class MiniBatchLoader:
    """Endless, seeded, resumable iterator of :class:`Batch` on ``device``.

    Parameters
    ----------
    dataset : PreparedDataset
    batch_unpaired : int
        Unpaired images per domain (paper: 24).
    batch_paired : int
        Pairs (paper: 24).
    parts : tuple of str
        Which parts the method needs: ``"unpaired"``, ``"paired"`` (others are not read).
    regridded : bool
        Use b regridded onto a's grid (methods g, h).
    augment : bool
        Random D4 transform per image (shared within a pair).
    seed, stream : int
        The batches of iteration ``i`` depend on ``(seed, stream, i)`` only.  ``stream``
        separates training steps and data-parallel ranks.
    start : int
        First iteration to produce (``load_state_dict`` sets it on resume).
    device : str or torch.device
    placement : {"auto", "host", "device"}
        Where the arrays live (see the module docstring).
    prefetch : int
        Batches prepared ahead by the background thread.
    channels_last : bool
        Return images in channels-last memory format (faster convolutions on GPUs).
    """

    def __init__(
        self,
        dataset: PreparedDataset,
        *,
        batch_unpaired: int = 24,
        batch_paired: int = 24,
        parts: tuple[str, ...] = PARTS,
        regridded: bool = False,
        augment: bool = True,
        seed: int = 0,
        stream: int = 0,
        start: int = 0,
        device: Any = "cpu",
        placement: str = "auto",
        prefetch: int = 3,
        channels_last: bool = False,
    ):
        import torch

        unknown = set(parts) - set(PARTS)
        if unknown:
            raise UsageError(f"unknown mini-batch part(s) {sorted(unknown)}; known: {PARTS}")
        if regridded and not dataset.regridded:
            raise UsageError(
                f"{dataset.root / 'dataset.json'}: this method needs b regridded onto a's grid "
                "(unpaired_b_on_a.npy, train_b_on_a.npy); prepare the dataset with regridding"
            )
        self.names = dataset.array_names(tuple(parts), regridded)
        for fld, name in self.names.items():
            if name not in dataset.arrays:
                raise UsageError(f"{dataset.root / 'dataset.json'}: no {name!r} array (needed for {fld})")
            if len(dataset.arrays[name]) == 0:
                what = "unpaired images" if name.startswith("unpaired") else "pairs"
                raise UsageError(f"{dataset.root / name}.npy: no {what}, and this method's mini-batch needs them")
        self.sizes = {"a": batch_unpaired, "b": batch_unpaired, "pair_a": batch_paired, "pair_b": batch_paired}
        for fld in self.names:
            if self.sizes[fld] < 1:
                raise UsageError(f"batch size for {fld} must be >= 1, got {self.sizes[fld]}")
        self.dataset = dataset
        self.augment = augment
        self.seed, self.stream = int(seed), int(stream)
        self.iteration = int(start)
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.channels_last = channels_last
        self.prefetch = max(1, int(prefetch))
        self._arrays = {fld: dataset.arrays[name] for fld, name in self.names.items()}
        for fld, arr in self._arrays.items():
            if arr.shape[2] != arr.shape[3] and augment:
                raise UsageError(f"{dataset.root / self.names[fld]}.npy: D4 augmentation needs square cutouts")
        self._maps = {s: d4_index_maps(s, self.device) for s in {a.shape[2] for a in self._arrays.values()}}
        self.placement = self._choose_placement(placement)
        self._resident = {}
        if self.placement == "device":
            # Chunked copy: never more than ~256 MB of the memmap in host RAM at once.
            for fld, arr in self._arrays.items():
                dst = torch.empty(arr.shape, dtype=torch.float32, device=self.device)
                step = max(1, (256 << 20) // max(1, arr[0].nbytes))
                for i in range(0, len(arr), step):
                    dst[i : i + step].copy_(torch.from_numpy(np.ascontiguousarray(arr[i : i + step])))
                self._resident[fld] = dst
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()

    # -- placement -----------------------------------------------------------------------

    def _choose_placement(self, placement: str) -> str:
        import torch

        if placement not in ("auto", "host", "device"):
            raise UsageError(f"--data-placement must be auto, host or device, got {placement!r}")
        if not self.cuda:
            return "host"  # on CPU the memmap (page cache) already is "device memory"
        if placement != "auto":
            return placement
        need = sum(a.nbytes for a in self._arrays.values())
        free, _total = torch.cuda.mem_get_info(self.device)
        return "device" if need < 0.4 * free else "host"

    # -- state ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, int]:
        """The loader's whole state: the next batch is ``(seed, stream, iteration)``."""
        return {"seed": self.seed, "stream": self.stream, "iteration": self.iteration}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.close()
        self.seed, self.stream, self.iteration = int(state["seed"]), int(state["stream"]), int(state["iteration"])

    # -- drawing -------------------------------------------------------------------------

    def draw(self, iteration: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Indices and D4 codes of ``iteration`` (pure function of seed, stream, iteration).

        Returns
        -------
        indices, codes : dict
            Batch field -> int64 array; the pair fields share both arrays.
        """
        rng = np.random.default_rng([self.seed, self.stream, iteration])
        idx, codes = {}, {}
        for group in (("a",), ("b",), ("pair_a", "pair_b")):
            if group[0] not in self._arrays:
                continue
            n = self.sizes[group[0]]
            i = np.sort(rng.integers(0, len(self._arrays[group[0]]), n))  # sorted: memmap locality
            c = rng.integers(0, 8, n) if self.augment else np.zeros(n, np.int64)
            for fld in group:
                idx[fld], codes[fld] = i, c
        return idx, codes

    def _gather_host(self, idx: dict[str, np.ndarray], out: dict[str, np.ndarray] | None = None):
        """Rows of the memmaps, ``(n, C, H, W)`` float32 per field (into ``out`` if given)."""
        rows = {}
        for fld, i in idx.items():
            if self.placement == "device":
                continue
            dst = None if out is None else out[fld]
            rows[fld] = np.take(self._arrays[fld], i, axis=0, out=dst)
        return rows

    def batch_at(self, iteration: int) -> Batch:
        """The batch of ``iteration``, built synchronously (no thread; for tests and checks)."""
        import torch

        idx, codes = self.draw(iteration)
        rows = self._gather_host(idx)
        return self._finish(
            {f: torch.from_numpy(r) for f, r in rows.items()},
            {f: torch.from_numpy(i) for f, i in idx.items()},
            {f: torch.from_numpy(c) for f, c in codes.items()},
            iteration,
        )

    def _finish(self, rows, idx, codes, iteration: int) -> Batch:
        """Move to the device (asynchronously), gather resident rows, apply D4."""
        import torch

        out = {}
        for fld in self.names:
            if self.placement == "device":
                x = self._resident[fld].index_select(0, idx[fld].to(self.device, non_blocking=True))
            else:
                x = rows[fld].to(self.device, non_blocking=True)
            if self.augment:
                x = apply_d4(x, codes[fld].to(self.device, non_blocking=True), self._maps[x.shape[-1]])
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out[fld] = x
        return Batch(iteration=iteration, **out)

    # -- the background thread -----------------------------------------------------------

    def _producer(self, start: int, slots: list, free: list, done_events: list, out: queue.Queue) -> None:
        """Fill ring slots with the rows (host placement) or indices of the next batches.

        ``out`` is this thread's own queue: :meth:`close` may give up waiting for a thread
        busy with a large batch, which then finds its stop flag set and leaves.
        """
        import torch

        def put(item) -> None:
            while not self._stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        it = start
        try:
            while not self._stop.is_set():
                k = it % len(slots)
                while not free[k].wait(0.1):
                    if self._stop.is_set():
                        return
                free[k].clear()
                if done_events[k] is not None:
                    done_events[k].synchronize()  # the copy out of this pinned slot has finished
                idx, codes = self.draw(it)
                if slots[k] is None:
                    # CPU: fresh arrays each time (the training step keeps them alive), and
                    # the D4 gather done here so the training thread does no data work.
                    rows = {f: torch.from_numpy(r) for f, r in self._gather_host(idx).items()}
                    idxs = {f: torch.from_numpy(i) for f, i in idx.items()}
                    cds = {f: torch.from_numpy(c) for f, c in codes.items()}
                    put((it, k, self._finish(rows, idxs, cds, it)))
                    free[k].set()
                    it += 1
                    continue
                else:
                    rows, idxs, cds = slots[k]
                    self._gather_host(idx, {f: r.numpy() for f, r in rows.items()})
                    for f in idx:
                        idxs[f].numpy()[:] = idx[f]
                        cds[f].numpy()[:] = codes[f]
                put((it, k, (rows, idxs, cds)))
                it += 1
        except BaseException as exc:  # hand the error to the training thread
            put((it, -1, exc))

    def _start(self) -> None:
        import torch

        self._stop.clear()
        self._queue = queue.Queue(maxsize=self.prefetch)
        n_slots = self.prefetch + 2
        slots: list = [None] * n_slots
        if self.cuda:
            for k in range(n_slots):
                rows = {}
                if self.placement == "host":
                    rows = {
                        f: torch.empty((self.sizes[f],) + a.shape[1:], dtype=torch.float32).pin_memory()
                        for f, a in self._arrays.items()
                    }
                idxs = {f: torch.empty(self.sizes[f], dtype=torch.int64).pin_memory() for f in self._arrays}
                cds = {f: torch.empty(self.sizes[f], dtype=torch.int64).pin_memory() for f in self._arrays}
                slots[k] = (rows, idxs, cds)
        self._free = [threading.Event() for _ in range(n_slots)]
        for e in self._free:
            e.set()
        self._done = [None] * n_slots
        self._thread = threading.Thread(
            target=self._producer, args=(self.iteration, slots, self._free, self._done, self._queue), daemon=True,
            name="s2s-loader",
        )
        self._thread.start()

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        import torch

        if self._thread is None:
            self._start()
        it, k, item = self._queue.get()
        if k < 0:
            self.close()
            raise item
        assert it == self.iteration, (it, self.iteration)
        if isinstance(item, Batch):
            batch = item
        else:
            rows, idxs, cds = item
            batch = self._finish(rows, idxs, cds, it)
            if self.cuda:
                ev = torch.cuda.Event()
                ev.record()  # the producer waits on this before overwriting the pinned slot
                self._done[k] = ev
            self._free[k].set()
        self.iteration += 1
        return batch

    def close(self) -> None:
        """Stop the background thread (the next ``next()`` restarts it where it was)."""
        if self._thread is not None:
            self._stop.set()
            # Unblock a producer waiting on a full queue.
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=5)
            self._thread = None
            self._queue = None

    def __del__(self):  # pragma: no cover - best effort at interpreter shutdown
        try:
            self.close()
        except Exception:
            pass
