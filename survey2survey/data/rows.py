"""Row surgery on memory-mapped ``.npy`` files, for building a prepared dataset.

``s2s prepare`` writes every input into a row of one array per domain, then moves rows:
paired rows are gathered into the ``train_*``/``test_*`` arrays (:func:`gather`), the holes
they leave are filled from the end and the file is cut to length (:func:`compact`,
:func:`truncate_npy`).  Memory stays bounded: rows move ``_COPY_ROWS`` at a time.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["allocate", "truncate_npy", "compact", "move_rows", "gather"]

#: Rows copied per step when moving rows between memory-mapped arrays (bounded memory:
#: 64 CFHT cutouts are 24 MB).
_COPY_ROWS = 64


def allocate(path: Path, n: int, shape: tuple[int, ...]) -> None:
    """Create ``path`` as an ``(n, *shape)`` float32 ``.npy`` file, its disk space reserved.

    ``open_memmap`` makes a sparse file: a row written through the map into a hole that
    the full disk cannot back kills the process with SIGBUS.  The blocks are therefore
    reserved here, where a full disk is an ``OSError`` (ENOSPC).
    """
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n,) + tuple(shape))
    del arr
    _reserve(path)


def _reserve(path: Path) -> None:
    """Give every byte of ``path`` its disk block now (``posix_fallocate``, else zeros written)."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise OSError(exc.errno, exc.strerror, str(path)) from None
        chunk = bytes(1 << 22)  # a file system without fallocate: write the zeros ourselves
        try:
            for start in range(0, size, len(chunk)):
                fh.write(chunk[: min(len(chunk), size - start)])
            fh.flush()
            os.fsync(fh.fileno())  # delayed allocation reports a full disk here at the latest
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None


def truncate_npy(path: Path, n_rows: int) -> None:
    """Cut a C-ordered ``.npy`` file to its first ``n_rows`` rows, in place.

    The header is rewritten with the new shape, padded with spaces to its old length so
    that the data offset (and its 64-byte alignment) does not move.
    """
    fmt = np.lib.format
    with open(path, "r+b") as fh:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
            prefix = 10  # magic (6), version (2), header length (uint16)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
            prefix = 12  # header length as uint32
        else:  # pragma: no cover - open_memmap writes 1.0 or 2.0
            raise RuntimeError(f"{path}: unexpected .npy version {version}")
        offset = fh.tell()
        if fortran:  # pragma: no cover - allocate writes C order
            raise RuntimeError(f"{path}: Fortran-ordered array cannot be truncated by rows")
        header = repr({"descr": fmt.dtype_to_descr(dtype), "fortran_order": False, "shape": (n_rows,) + shape[1:]})
        room = offset - prefix
        if len(header) + 1 > room:  # pragma: no cover - fewer rows never need more digits
            raise RuntimeError(f"{path}: new header does not fit")
        fh.seek(prefix)
        fh.write((header + " " * (room - len(header) - 1) + "\n").encode("latin1"))
        fh.truncate(offset + n_rows * dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64)))


def compact(path: Path, holes: np.ndarray, n_keep: int) -> list[tuple[int, int]]:
    """Fill ``holes`` below ``n_keep`` with the kept rows at or after ``n_keep``; truncate.

    Returns the (destination, source) row moves, for the caller to mirror on its records
    and on parallel arrays.
    """
    arr = np.load(path, mmap_mode="r+")
    n = len(arr)
    is_hole = np.zeros(n, bool)
    is_hole[holes] = True
    targets = np.flatnonzero(is_hole[:n_keep])
    sources = np.flatnonzero(~is_hole[n_keep:]) + n_keep
    assert len(targets) == len(sources)
    moves = list(zip(targets.tolist(), sources.tolist()))
    _apply_moves(arr, moves)
    arr.flush()
    del arr
    truncate_npy(path, n_keep)
    return moves


def _apply_moves(arr: np.ndarray, moves: list[tuple[int, int]]) -> None:
    for k in range(0, len(moves), _COPY_ROWS):
        dst, src = zip(*moves[k : k + _COPY_ROWS])
        arr[list(dst)] = arr[list(src)]


def move_rows(path: Path, moves: list[tuple[int, int]], n_keep: int) -> None:
    """Apply the (destination, source) row ``moves`` of :func:`compact` to ``path``; keep ``n_keep`` rows."""
    arr = np.load(path, mmap_mode="r+")
    _apply_moves(arr, moves)
    arr.flush()
    del arr
    truncate_npy(path, n_keep)


def gather(src_path: Path, rows: Sequence[int], dst_path: Path) -> None:
    """Write rows ``rows`` of ``src_path`` (in that order) as a new array ``dst_path``."""
    src = np.load(src_path, mmap_mode="r")
    allocate(dst_path, len(rows), src.shape[1:])
    if not len(rows):
        return
    dst = np.load(dst_path, mmap_mode="r+")
    for k in range(0, len(rows), _COPY_ROWS):
        dst[k : k + _COPY_ROWS] = src[list(rows[k : k + _COPY_ROWS])]
    dst.flush()
    del dst, src
