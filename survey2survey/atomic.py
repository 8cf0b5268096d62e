"""Atomic file writes: a file appears under its final name whole, or not at all.

Every file ``s2s`` writes (FITS cutouts, model weights and config, checkpoints, ONNX
graphs, reports, plots) goes through :func:`atomic_write`:

1. the content goes to a hidden temporary file in the same directory (same file system,
   so the rename is atomic), ``.<name>.<host>-<pid>-<n>.tmp``, created with mode 0666
   minus the umask, as ``open()`` would (not ``mkstemp``'s 0600);
2. it is flushed and ``fsync``-ed, so that a power loss cannot leave a renamed but empty
   file;
3. it is renamed over the final name (``os.replace``), or, when an existing file must not
   be replaced, hard-linked to it, which fails if another writer took the name meanwhile.

A process killed before step 3 leaves only its hidden temporary file;
:func:`remove_stale` deletes those of dead processes of this host (the commands call it on
their output directories).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import socket
from pathlib import Path
from typing import BinaryIO, Iterator

from survey2survey.errors import UsageError

__all__ = ["atomic_write", "write_bytes", "remove_stale"]

_HOST = re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname()) or "host"
_COUNTER = itertools.count()


def _temp_path(path: Path) -> Path:
    # the counter keeps two threads of one process apart (evaluate writes from threads)
    return path.parent / f".{path.name}.{_HOST}-{os.getpid()}-{next(_COUNTER)}.tmp"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, overwrite: bool = True, fsync: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file object whose content becomes ``path`` when the block ends.

    Parameters
    ----------
    path : path
        The final name; its directory must exist.
    overwrite : bool
        Replace an existing ``path``; otherwise refuse it, before writing and again at the
        rename (hard link), so that two writers never clobber each other.
    fsync : bool
        Flush the data to disk before the rename (crash-safe against power loss, not just
        against a killed process).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is false; nothing is written.
    OSError
        Whatever the file system says (missing or read-only directory, disk full, ...),
        with ``filename`` set to ``path``.  The temporary file is removed; ``path`` is
        untouched.
    """
    path = Path(path)
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
    tmp = _temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None  # name the file, not the temporary one
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        _publish(tmp, path, overwrite)
    except OSError as exc:
        if exc.errno is None or exc.filename not in (None, str(tmp)):
            raise
        # a write, flush or fsync that failed (disk full: ENOSPC) says which file
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # gone after os.replace; a second name after os.link


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if the name was taken meanwhile: never clobber another writer
    except FileExistsError:
        raise
    except OSError:  # file systems without hard links
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(tmp, path)


def write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, overwrite=overwrite, fsync=fsync) as fh:
        fh.write(data)


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (a killed, unreaped process counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, as another user's
        return True
    try:  # a killed process that nobody has reaped yet (a zombie) is as good as gone
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def remove_stale(directory: str | os.PathLike, recursive: bool = False) -> int:
    """Delete the temporary files that killed writers of this host left in ``directory``.

    Only files named by :func:`atomic_write` on this host whose process is gone are
    removed (a shared file system may hold other hosts' files in flight).  Errors are
    ignored: this is housekeeping.

    Returns
    -------
    int
        Files removed.
    """
    marker = f".{_HOST}-"
    removed = 0
    walk = os.walk(directory) if recursive else [(str(directory), [], None)]
    for root, _dirs, names in walk:
        if names is None:
            try:
                names = os.listdir(root)
            except OSError:
                return 0
        for name in names:
            if not (name.startswith(".") and name.endswith(".tmp")) or marker not in name:
                continue
            pid_text = name[name.rindex(marker) + len(marker) : -len(".tmp")].split("-")[0]
            if not pid_text.isdigit() or pid_alive(int(pid_text)):
                continue
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(root, name))
                removed += 1
    return removed


def check_parents(path: Path, shown: object) -> None:
    """Refuse, before any work, an output whose nearest existing parent is a file.

    Raises :class:`~survey2survey.errors.UsageError` naming that parent and ``shown``
    (how the message names the output).
    """
    for parent in Path(path).parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{parent}: is a file, not a directory (cannot create {shown} in it)")
            return
