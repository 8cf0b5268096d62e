"""How ``s2s translate`` spreads its work over processes.

Two schedules, chosen by the translator (:attr:`Translator.per_cutout`):

* :func:`run_per_cutout` -- each worker process reads, translates and writes whole
  chunks of inputs: every core does all of the work (a cheap translator);
* :func:`run_batched` -- workers read and prepare, this process runs the translator on
  large batches in a model thread, workers finish and write.  Reads are kept ahead of
  the model within a memory budget, at most two batches are in the model at once, and
  the loop sleeps until a worker or the model has news.

Both account every input exactly once in the :class:`TranslateReport` (translated,
skipped or failed), call ``on_progress(done, total)`` as inputs finish, and stop with
:class:`KeyboardInterrupt` between their steps when a signal asked for it
(:func:`~survey2survey.interrupts.check_interrupt`; they wake at least every
:data:`~survey2survey.interrupts.POLL_SECONDS`).
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from concurrent.futures.process import BrokenProcessPool  # not an attribute of cf until a pool exists

import numpy as np

from survey2survey.errors import S2SError, first_line
from survey2survey.interrupts import POLL_SECONDS, check_interrupt, wait_some
from survey2survey.pipelines.translate_steps import (
    SKIPPED,
    Job,
    Record,
    Setup,
    read_chunk,
    translate_chunk,
    write_chunk,
    write_job,
)
from survey2survey.runtime.seeds import object_seed

__all__ = ["run_per_cutout", "run_batched"]

#: Inputs per task of a per-cutout translator (enough to amortise the task's pickling).
PER_CUTOUT_CHUNK = 16


class _Ledger:
    """The report's accounting of finished inputs, and the progress callback."""

    def __init__(self, jobs: list[Job], report, on_progress, target: str):
        self.jobs, self.report, self.on_progress, self.target = jobs, report, on_progress, target
        self.done = len(report.failed)

    def advance(self, n: int) -> None:
        self.done += n
        if self.on_progress:
            self.on_progress(self.done, self.report.total)

    def read(self, rec: Record) -> bool:
        """Account one read record; True when it goes on to the translator."""
        self.report.warnings += len(rec.warnings)
        path = self.jobs[rec.index].source.path
        if rec.status == "ok":  # a failed input gets its one failure line only
            self.report.warned += [(str(path), f"{path}: {w}") for w in rec.warnings]
            return True
        if rec.status == "skipped":
            self.report.skipped += 1
        else:
            self.report.failed.append((str(path), rec.message))
        self.advance(1)
        return False

    def translated(self, rec: Record) -> None:
        name = f"{rec.prepared.source.name}->{self.target}"
        self.report.directions[name] = self.report.directions.get(name, 0) + 1

    def written(self, results: list[tuple[int, str | None]]) -> None:
        for index, error in results:
            if error is None:
                self.report.translated += 1
                self.report.outputs.append(self.jobs[index].out_path)
            elif error == SKIPPED:  # another run wrote the same output meanwhile
                self.report.skipped += 1
            else:
                self.report.failed.append((str(self.jobs[index].source.path), error))
        self.advance(len(results))


def _broken_pool(report) -> S2SError:
    check_interrupt()  # a stop was asked: a worker killed since (a scheduler's SIGKILL after its SIGTERM) is part of it
    error = S2SError(
        f"a reader/writer process died (out of memory?) after {report.translated} of {report.total} inputs; "
        "run the same command again to finish (whole outputs are kept)"
    )
    error.exit_code = 1  # some inputs were not translated: not a misuse
    return error


def run_per_cutout(jobs: list[Job], setup: Setup, executor, report, on_progress) -> None:
    """Each worker reads, translates and writes chunks of :data:`PER_CUTOUT_CHUNK` inputs,
    two per worker in flight (one at a time without workers, so that progress and a
    signal are seen between chunks)."""
    ledger = _Ledger(jobs, report, on_progress, setup.translator.target.name)
    chunks = deque(range(0, len(jobs), PER_CUTOUT_CHUNK))
    ahead = 2 * report.workers if report.workers else 1  # a task queued behind each worker's; one at a time inline
    pending: set = set()
    try:
        while chunks or pending:
            check_interrupt()  # no new chunk once a signal came (it may come while several are done)
            while chunks and len(pending) < ahead:
                lo = chunks.popleft()
                pending.add(executor.submit(translate_chunk, jobs[lo : lo + PER_CUTOUT_CHUNK], setup))
            done, pending = wait_some(pending)
            for fut in done:
                for rec, result in fut.result():
                    if ledger.read(rec):
                        ledger.translated(rec)
                        ledger.written([result])
    except BrokenProcessPool:
        raise _broken_pool(report) from None


class _BatchedRun:
    """The state of one batched run: reads, batches in the model, writes in flight."""

    def __init__(self, jobs: list[Job], setup: Setup, executor, report, on_progress):
        self.jobs, self.setup, self.executor, self.report = jobs, setup, executor, report
        self.translator = setup.translator
        self.ledger = _Ledger(jobs, report, on_progress, self.translator.target.name)
        self.batch = report.batch_size
        workers = report.workers
        self.chunk = max(1, min(32, self.batch // max(1, workers))) if workers else self.batch
        self.max_in_flight = 3 * self.batch + 2 * self.chunk * max(1, workers)  # records held in memory
        self.todo = deque(jobs)
        self.reads: set = set()
        self.writes: set = set()
        self.inferring: deque = deque()  # (future, records), in submission order
        self.buffers: dict[str, list[Record]] = {name: [] for name in self.translator.sources}
        self.in_flight = 0
        self.model = cf.ThreadPoolExecutor(1, thread_name_prefix="s2s-model")

    def busy(self) -> bool:
        return bool(self.todo or self.reads or self.inferring or self.writes or any(self.buffers.values()))

    def submit_reads(self) -> None:
        """Keep the readers busy, within the memory budget."""
        while self.todo and self.in_flight < self.max_in_flight:
            part = [self.todo.popleft() for _ in range(min(self.chunk, len(self.todo)))]
            self.reads.add(self.executor.submit(read_chunk, part, self.setup))
            self.in_flight += len(part)

    def collect_reads(self) -> None:
        for fut in [f for f in self.reads if f.done()]:
            self.reads.discard(fut)
            for rec in fut.result():
                if self.ledger.read(rec):
                    self.buffers[rec.prepared.source.name].append(rec)
                else:
                    self.in_flight -= 1

    def _flush(self) -> bool:
        """True when no more reads will join the buffers before they are run."""
        return not self.reads and (not self.todo or self.in_flight >= self.max_in_flight)

    def submit_batches(self) -> None:
        """Full batches (or the rest, once nothing more will come) go to the model, two at most."""
        for name, buf in self.buffers.items():
            while (len(buf) >= self.batch or (buf and self._flush())) and len(self.inferring) < 2:
                recs, buf = buf[: self.batch], buf[self.batch :]
                self.buffers[name] = buf
                keys = np.array([object_seed(self.setup.seed, self.jobs[r.index].source.object_id) for r in recs], dtype=np.int64)
                fut = self.model.submit(self.translator.run, [r.prepared for r in recs], keys, self.setup.samples)
                self.inferring.append((fut, recs))

    def collect_batches(self) -> None:
        """Model results, in order, go to the writers."""
        while self.inferring and self.inferring[0][0].done():
            fut, recs = self.inferring.popleft()
            try:
                out = fut.result()  # (N, S, C, H, W)
            except (S2SError, RuntimeError, MemoryError) as exc:  # torch and ONNX Runtime raise RuntimeError
                for r in recs:
                    path = self.jobs[r.index].source.path
                    why = first_line(exc, 10_000, with_type=isinstance(exc, MemoryError))
                    self.report.failed.append((str(path), f"{path}: model failed ({why})"))
                self.in_flight -= len(recs)
                self.ledger.advance(len(recs))
                continue
            wjobs = []
            for i, r in enumerate(recs):
                self.ledger.translated(r)
                wjobs.append(write_job(self.jobs[r.index], r, out[i]))
            for lo in range(0, len(wjobs), self.chunk):
                self.writes.add(self.executor.submit(write_chunk, wjobs[lo : lo + self.chunk], self.setup))

    def collect_writes(self) -> None:
        for fut in [f for f in self.writes if f.done()]:
            self.writes.discard(fut)
            results = fut.result()
            self.ledger.written(results)
            self.in_flight -= len(results)

    def wait(self) -> None:
        """Sleep until a worker or the model has news, unless there is work to do now."""
        waiting = list(self.reads) + list(self.writes) + [f for f, _ in self.inferring]
        if not waiting:
            return
        if self.todo and self.in_flight < self.max_in_flight:
            return
        if len(self.inferring) < 2 and any(len(b) >= self.batch or (b and self._flush()) for b in self.buffers.values()):
            return
        cf.wait(waiting, timeout=POLL_SECONDS, return_when=cf.FIRST_COMPLETED)


def run_batched(jobs: list[Job], setup: Setup, executor, report, on_progress) -> None:
    """Workers read and write; this process runs the translator on batches of ``report.batch_size``."""
    run = _BatchedRun(jobs, setup, executor, report, on_progress)
    try:
        while run.busy():
            check_interrupt()
            run.submit_reads()
            run.collect_reads()
            run.submit_batches()
            run.collect_batches()
            run.collect_writes()
            run.wait()
    except BrokenProcessPool:
        raise _broken_pool(report) from None
    finally:
        run.model.shutdown(wait=True, cancel_futures=True)
