"""From cutouts to training sets: simulation, cross-matching, regridding, preparation.

* :mod:`survey2survey.data.simulate` -- a GalSim survey pair (same galaxies seen by two
  surveys) written as the FITS cutouts, catalog and truth a real user would have;
* :mod:`survey2survey.data.crossmatch` -- positions from a catalog or the WCS, and the
  sky cross-match that finds pairs;
* :mod:`survey2survey.data.regrid` -- flux-conserving resampling of one survey's cutout
  onto another survey's grid;
* :mod:`survey2survey.data.prepare` -- the streaming ingest that writes a prepared dataset
  directory (``docs/dev/CONTRACTS.md``), with the row moves of :mod:`survey2survey.data.rows`;
* :mod:`survey2survey.data.build` -- what ``s2s prepare`` does: real cutouts, or a simulated
  pair, to a dataset, in one call;
* :mod:`survey2survey.data.loader` -- the training mini-batch reader of that directory.

Importing this package is cheap (standard library only); the submodules import numpy,
astropy, galsim and reproject.  The helpers here are shared by the process pools of the
simulator and of the ingest.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
from importlib import resources
from pathlib import Path
from typing import Callable, Collection, Iterator, Sequence

from survey2survey.atomic import check_parents, pid_alive
from survey2survey.progress import counting

__all__ = ["example_dir", "default_workers", "process_pool", "run_tasks", "staged_directory"]

#: Environment variables that make numerical libraries use one thread.  Worker processes
#: set them before importing numpy/galsim: with N workers on N cores, a thread pool per
#: worker only oversubscribes the machine.
_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def example_dir() -> Path:
    """Directory of the bundled simulated example set (``survey2survey/examples``).

    It holds ``sdss/`` and ``cfht/`` FITS cutouts of the same galaxies, ``catalog.ecsv``
    and ``truth/`` (noise-free cubes and the noise sigma of every image and band); its
    ``README.md`` gives the command that made it.
    """
    path = Path(str(resources.files("survey2survey").joinpath("examples")))
    return path


def default_workers() -> int:
    """Worker processes to use by default: the CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _init_worker() -> None:
    """Process-pool initializer: one thread per worker for OpenMP/BLAS.

    This module imports nothing heavy, so in a spawned worker the variables are set before
    a task's module (and with it numpy or galsim) is imported.  A forked worker inherits
    the parent's libraries; the variables then reach those loaded later.
    """
    from survey2survey.interrupts import worker_signals

    worker_signals()  # the parent acts on Ctrl-C and SIGTERM; the worker dies with it
    for name in _ONE_THREAD:
        os.environ[name] = "1"


def process_pool(workers: int):
    """A :class:`~concurrent.futures.ProcessPoolExecutor` of ``workers`` one-thread workers.

    Linux forks (workers start in milliseconds and need no ``if __name__ == "__main__"``
    guard in the calling script); callers submit every task before starting any thread of
    their own (the progress bar), because the fork start method launches all workers at
    the first submit and forking a threaded process can deadlock.  Elsewhere the platform's
    spawn start method is used.
    """
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context(method), initializer=_init_worker
    )


def run_tasks(
    fn: Callable,
    tasks: Sequence[tuple],
    sizes: Sequence[int],
    workers: int,
    *,
    progress: bool = False,
    label: str = "",
    unit: str = "items",
) -> list:
    """Run ``fn(*args)`` for every ``args`` in ``tasks``; the results, in the order they completed.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled to the workers).
    tasks : sequence of tuple
        Arguments of each call.
    sizes : sequence of int
        Items in each task, for the progress bar.
    workers : int
        1 runs the tasks in this process, in order; more use :func:`process_pool`.
    progress, label, unit
        See :func:`survey2survey.progress.counting`.

    Notes
    -----
    An exception in a task is raised here; the tasks not yet started are cancelled.
    With workers, Ctrl-C or SIGTERM stops it between results
    (:func:`~survey2survey.interrupts.interrupts_at_safe_points`); a worker that dies
    (out of memory) is one line (:class:`~survey2survey.errors.S2SError`, exit code 1).
    """
    total = int(sum(sizes))
    results = []
    if workers <= 1:
        with counting(progress, total, label, unit) as advance:
            for args, size in zip(tasks, sizes):
                results.append(fn(*args))
                advance(size)
        return results
    from concurrent.futures.process import BrokenProcessPool

    from survey2survey.errors import S2SError
    from survey2survey.interrupts import check_interrupt, interrupts_at_safe_points, wait_some

    with interrupts_at_safe_points():  # Ctrl-C stops between results, not inside the pool's locks
        pool = process_pool(workers)
        try:
            futures = {pool.submit(fn, *args): size for args, size in zip(tasks, sizes)}
            pending = set(futures)
            with counting(progress, total, label, unit) as advance:
                while pending:
                    done, pending = wait_some(pending)
                    for future in done:
                        results.append(future.result())
                        advance(futures[future])
        except BrokenProcessPool:
            check_interrupt()  # a stop was asked: a worker killed since (a scheduler's SIGKILL) is part of it
            error = S2SError(f"a worker process died (out of memory?) while {label or 'running'}: run the same "
                             "command again, with fewer workers (-j) if memory is short")
            error.exit_code = 1
            raise error from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return results


def _remove_stale_partials(out: Path, host: str) -> None:
    """Remove the temporary directories that killed runs on this host left beside ``out``.

    Only this host's (process ids mean nothing across the nodes of a shared file system)
    and only those whose process is gone (a live one may be a concurrent run).
    """
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.partial-{re.escape(host)}-(\d+)$")
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        m = pattern.match(entry.name)
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            shutil.rmtree(entry, ignore_errors=True)


def _entries(directory: Path) -> set[str]:
    try:
        return {p.name for p in directory.iterdir()}
    except OSError:
        return set()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _publish(tmp: Path, out: Path, owned: Callable[[Path], list[str]]) -> None:
    """Move the finished ``tmp`` into place as ``out``, replacing only ``owned(out)``.

    An ``out`` that holds only what the command wrote is swapped whole (two renames).
    One that also holds other files keeps them: the command's old entries are removed
    (its marker, first in the list, before the rest, so that a run killed in between
    leaves no directory that looks complete) and the new ones moved in, marker last.
    """
    if not out.exists():
        os.replace(tmp, out)
        return
    ours = owned(out)
    if not (_entries(out) - set(ours)):
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
        return
    for name in ours:
        _remove(out / name)
    marker = owned(tmp)[:1]
    for name in sorted(_entries(tmp), key=lambda n: n in marker):  # the marker last
        os.replace(tmp / name, out / name)
    tmp.rmdir()


@contextlib.contextmanager
def staged_directory(
    out: str | os.PathLike,
    overwrite: bool = False,
    *,
    owned: Callable[[Path], list[str]] | None = None,
    produces: Collection[str] = (),
) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place when done.

    The temporary directory ``.<name>.partial-<host>-<pid>`` is a sibling of ``out`` (same
    file system, so the final move is a rename).  On error it is removed and ``out`` is
    left as it was; on success an existing ``out`` is replaced only when ``overwrite`` is
    true, and then only what the command wrote there before: ``owned(out)`` lists those
    entries (its marker file first; ``[]`` when ``out`` is not the command's output).
    Anything else in ``out`` stays.  A run killed outright (SIGKILL, node failure) leaves
    its temporary directory; the next run for the same ``out`` on the same host removes it.

    Parameters
    ----------
    out : path
    overwrite : bool
    owned : callable, optional
        ``owned(directory) -> list of entry names`` the command wrote in ``directory``.
        Default: nothing is known to be the command's (nothing in ``out`` is removed).
    produces : collection of str
        Entry names the build may create: one that ``out`` holds and the command did not
        write is refused before any work.

    Raises
    ------
    UsageError
        ``out`` exists (and is not an empty directory) and ``overwrite`` is false, holds
        a file of another origin under a name the command writes, or the directory cannot
        be created.
    ResourceError
        The file system filled up while building (the temporary directory is removed).
    """
    from survey2survey.errors import CutoutError, UsageError, write_failure

    out = Path(out)
    owned = owned or (lambda directory: [])
    if out.exists() and not overwrite:
        if not out.is_dir() or any(out.iterdir()):
            raise UsageError(f"{out}: output exists (use --overwrite to replace it)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    if out.is_dir() and overwrite:
        clash = sorted((_entries(out) - set(owned(out))) & set(produces))
        if clash:
            raise UsageError(f"{out / clash[0]}: exists and was not written by s2s (--overwrite replaces only "
                             "what s2s wrote): move it or choose another output")
    check_parents(out, out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{out.parent}: cannot create directory ({exc.strerror or exc})") from None
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"
    _remove_stale_partials(out, host)
    tmp = out.parent / f".{out.name}.partial-{host}-{os.getpid()}"
    if tmp.exists():  # left behind by a killed run of this very process id
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
    except OSError as exc:
        raise UsageError(f"{out.parent}: cannot create {out.name} there ({exc.strerror or exc})") from None
    try:
        yield tmp
        _publish(tmp, out, owned)
    except OSError as exc:  # disk full, read-only: one line; the partial directory goes
        shutil.rmtree(tmp, ignore_errors=True)
        where = Path(exc.filename) if isinstance(exc.filename, str) else out
        if where.is_relative_to(tmp):  # name the output, not the hidden temporary directory
            where = out / where.relative_to(tmp)
        raise write_failure(where, exc) from None
    except CutoutError as exc:  # a file the build writes (a worker's FITS file) could not be written
        shutil.rmtree(tmp, ignore_errors=True)
        if not exc.path.is_relative_to(tmp):
            raise
        raise CutoutError(out / exc.path.relative_to(tmp), exc.reason) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
