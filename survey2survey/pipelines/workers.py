"""The reader/writer processes of the pipelines, and an in-process stand-in for small runs."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import sys

from survey2survey.interrupts import check_interrupt, worker_signals
from survey2survey.surveys import Survey, list_surveys, register_survey

__all__ = ["InlineExecutor", "start_pool"]


class InlineExecutor:
    """Runs tasks at submit time in this process (small runs, tests, ``--workers 0``)."""

    def submit(self, fn, *args):
        check_interrupt()  # a long run without workers stops between its tasks
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # surfaced by fut.result()
            fut.set_exception(exc)
        return fut

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def _init_worker(survey_specs: list[dict]) -> None:
    """Worker start: stops when told to or when the parent dies, single-threaded
    numerics, and the parent's survey registry."""
    worker_signals()  # the parent acts on Ctrl-C and SIGTERM; the worker dies with it
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for spec in survey_specs:
        register_survey(Survey.from_dict(spec["name"], spec, "parent process"))


def _noop() -> None:
    return None


def start_pool(workers: int):
    """``workers`` processes with this process's survey registry, started at once.

    Started before any model thread or CUDA context: Linux forks them, which needs no
    ``if __name__ == "__main__"`` guard in a user's script, as PyTorch's DataLoader does;
    the workers never touch torch.  Elsewhere they are spawned.  ``workers == 0`` gives
    an :class:`InlineExecutor`.
    """
    if workers == 0:
        return InlineExecutor()
    specs = [s.to_dict() for s in list_surveys()]
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_init_worker, initargs=(specs,))
    pool.submit(_noop).result()  # a forking pool starts every worker on its first task
    return pool
