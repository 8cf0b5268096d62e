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

Many small files (``s2s translate``'s outputs) are written in an :class:`AtomicGroup`:
step 2 is done once for the group (one flush of the file system, not an ``fsync`` per
file, which costs about as much as writing a small file), then every file is renamed,
then each directory is flushed once, so that the renames are durable too.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import socket
import sys
from pathlib import Path
from typing import BinaryIO, Iterator

from survey2survey.errors import UsageError

__all__ = ["atomic_write", "write_bytes", "remove_stale", "AtomicGroup"]

_HOST = re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname()) or "host"
_COUNTER = itertools.count()


def _temp_path(path: Path) -> Path:
    # the counter keeps two threads of one process apart (evaluate writes from threads)
    return path.parent / f".{path.name}.{_HOST}-{os.getpid()}-{next(_COUNTER)}.tmp"


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, *, overwrite: bool = True, fsync: bool = True, group: AtomicGroup | None = None
) -> Iterator[BinaryIO]:
    """Yield a binary file object whose content becomes ``path`` when the block ends
    (or when ``group`` is committed).

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
    group : AtomicGroup, optional
        Leave the complete temporary file to ``group``: it is made durable and renamed to
        ``path`` by :meth:`AtomicGroup.commit` (``fsync`` is then the group's business).

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
    kept = None  # a descriptor of the temporary file, for the group
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if group is not None:
                kept = os.dup(fh.fileno())
            elif fsync:
                os.fsync(fh.fileno())
        if group is not None:  # complete: the group's to flush and rename, or to remove
            group.add(tmp, path, overwrite, kept)
            kept = tmp = None
        else:
            _publish(tmp, path, overwrite)
    except OSError as exc:
        if exc.errno is None or exc.filename not in (None, str(tmp)):
            raise
        # a write, flush or fsync that failed (disk full: ENOSPC) says which file
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        if kept is not None:
            os.close(kept)
        if tmp is not None:
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


class AtomicGroup:
    """Atomic writes of several files made durable together, then renamed into place.

    :func:`atomic_write` with ``group=`` leaves each complete temporary file here, not yet
    under its final name.  :meth:`commit` flushes them to disk at once (``syncfs`` of their
    file system on Linux, an ``fsync`` per file elsewhere), renames each to its final name
    as :func:`atomic_write` does, then flushes each directory once (the renames).  No file
    is ever under its final name before its data are on disk, and each one is whole.
    Leaving a ``with`` block (an error, Ctrl-C) removes the temporary files that were not
    renamed (:meth:`discard`).
    """

    def __init__(self) -> None:
        #: (temporary file, final name, overwrite, a descriptor of the temporary file)
        self._pending: list[tuple[Path, Path, bool, int]] = []

    def __enter__(self) -> AtomicGroup:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()

    def add(self, tmp: Path, path: Path, overwrite: bool, fd: int) -> None:
        """Take a complete temporary file; ``fd`` (open since before it was written, so that
        a write-back error since then is reported by the flush) is the group's to close."""
        self._pending.append((tmp, path, overwrite, fd))

    def commit(self) -> dict[Path, OSError]:
        """Make the group's files durable and rename them into place.

        Returns
        -------
        dict of Path to OSError
            The final names not written, with why (``FileExistsError``: another writer took
            the name meanwhile and ``overwrite`` was false; a failed flush fails every file
            of the group), ``filename`` set to the final name.  Their temporary files are
            removed.
        """
        pending, self._pending = self._pending, []
        failed: dict[Path, OSError] = {}
        try:
            try:
                _sync_files([fd for _, _, _, fd in pending])
            except OSError as exc:
                return {path: OSError(exc.errno, exc.strerror, str(path)) for _, path, _, _ in pending}
            directories = set()
            for tmp, path, overwrite, _ in pending:
                try:
                    _publish(tmp, path, overwrite)
                    directories.add(path.parent)
                except OSError as exc:
                    failed[path] = exc if isinstance(exc, FileExistsError) else OSError(exc.errno, exc.strerror, str(path))
            for directory in directories:
                _sync_directory(directory)
            return failed
        finally:
            _remove(pending)

    def discard(self) -> None:
        """Remove the temporary files not committed; none of them gets its final name."""
        pending, self._pending = self._pending, []
        _remove(pending)


def _remove(pending: list[tuple[Path, Path, bool, int]]) -> None:
    for tmp, _, _, fd in pending:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # gone after os.replace; a second name after os.link


def _syncfs():
    """Linux's ``syncfs(fd)`` (flush one file system), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]

    def syncfs(fd: int) -> None:
        if call(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


_SYNCFS = _syncfs()


def _sync_files(fds: list[int]) -> None:
    """Put the data of the open files ``fds`` on disk: one ``syncfs`` per file system (Linux),
    else an ``fsync`` each.

    ``syncfs`` reports a write-back error of its file system since the descriptor was
    opened (Linux 5.8 and later), so a failure here fails the whole group.
    """
    if _SYNCFS is not None:
        done: set[int] = set()
        try:
            for fd in fds:
                device = os.fstat(fd).st_dev
                if device not in done:
                    _SYNCFS(fd)
                    done.add(device)
            return
        except OSError as exc:
            if exc.errno != errno.ENOSYS:  # a kernel without it (or a sandbox refusing it): fsync
                raise
    for fd in fds:
        os.fsync(fd)


def _sync_directory(directory: Path) -> None:
    """``fsync`` a directory (its new entries); skipped where a directory cannot be opened
    or flushed (not every platform or file system can): the files themselves are on disk."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
