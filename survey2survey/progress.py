"""The one progress bar of the toolkit: rich, on stderr, built on demand.

* :func:`progress_bar` returns a :class:`rich.progress.Progress` with the columns every
  command shows (what, bar, done/total, [rate], elapsed, ETA) plus any text fields a caller
  fills with ``update(task, field=...)`` (training shows its losses that way);
* :func:`counting` is the common case, a context that yields ``advance(n)``;
* :func:`progress_reporter` yields ``report(done, total)`` for a library's ``on_progress``:
  a bar on a terminal, else (a batch job's log) a line every :func:`log_interval` seconds.

Importing this module loads nothing heavy (rich comes when a bar is built).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Callable, Iterator

__all__ = ["progress_bar", "counting", "progress_reporter", "log_reporter", "table_console", "log_interval", "LOG_INTERVAL_ENV"]

#: Environment variable: seconds between progress lines when stderr is not a terminal.
LOG_INTERVAL_ENV = "S2S_PROGRESS_INTERVAL"

#: Default seconds between progress lines in a log.
LOG_INTERVAL = 30.0


def log_interval() -> float:
    """Seconds between progress lines in a log: ``$S2S_PROGRESS_INTERVAL`` or :data:`LOG_INTERVAL`."""
    try:
        value = float(os.environ.get(LOG_INTERVAL_ENV, ""))
    except ValueError:
        return LOG_INTERVAL
    return value if value >= 0 else LOG_INTERVAL


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def log_reporter(label: str, unit: str, interval: float, clock=time.monotonic) -> Callable[..., None]:
    """``report(done, total, extra="")`` that prints ``label: done/total unit, rate, ETA[, extra]``
    on stderr at most every ``interval`` seconds (a SLURM log shows progress, not a bar's control
    characters)."""
    state = {"start": None, "last": None, "done0": 0}

    def report(done: int, total: int, extra: str = "") -> None:
        now = clock()
        if state["start"] is None:  # the count it starts from (a resumed run's) is not this run's work
            state["start"] = state["last"] = now
            state["done0"] = done
            return
        if now - state["last"] < interval:
            return
        state["last"] = now
        elapsed = now - state["start"]
        rate = (done - state["done0"]) / elapsed if elapsed > 0 else 0.0
        eta = _duration((total - done) / rate) if rate > 0 else "unknown"
        percent = 100.0 * done / total if total else 100.0
        print(f"{label}: {done}/{total} {unit} ({percent:.0f}%), {rate:.3g} {unit}/s, "
              f"elapsed {_duration(elapsed)}, ETA {eta}" + (f", {extra}" if extra else ""), file=sys.stderr, flush=True)

    return report

#: Width of the tables printed where no terminal tells one (a log, a pipe): wide enough
#: that no column is cut.  rich would use 80 columns there.
_UNBOUNDED_WIDTH = 1000


def table_console(stderr: bool = False):
    """A :class:`rich.console.Console` for tables: a terminal's width, else (a log file,
    a pipe) no limit, so that a table with many columns is never cut or wrapped.

    ``$COLUMNS``, when set, still wins.
    """
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(stderr=stderr, highlight=False, width=_UNBOUNDED_WIDTH)
    return console


def progress_bar(*fields: str, transient: bool = False, elapsed: bool = True, unit: str | None = None):
    """A rich progress display on stderr (not started).

    Parameters
    ----------
    *fields : str
        Names of text fields: the first is shown after the done/total column, the others
        after the ETA; each task must be given them (``add_task(..., rate="")``).
    transient : bool
        Remove the bar from the terminal when stopped.
    elapsed : bool
        Show the elapsed time before the ETA.
    unit : str, optional
        Show the measured rate in ``unit``/s after the done/total column ("812 cutouts/s").

    Returns
    -------
    rich.progress.Progress
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class _Rate(ProgressColumn):
        def render(self, task):  # noqa: D102 - rich's column interface
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} {unit}/s" if speed else f"- {unit}/s")

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [_Rate()] if unit else []
    columns += [TextColumn(f"{{task.fields[{f}]}}") for f in fields[:1]]
    columns += [TimeElapsedColumn()] if elapsed else []
    columns += [TextColumn("ETA")] if elapsed and fields else []
    columns += [TimeRemainingColumn()] + [TextColumn(f"{{task.fields[{f}]}}") for f in fields[1:]]
    return Progress(*columns, console=Console(stderr=True), transient=transient)


@contextlib.contextmanager
def counting(enabled: bool, total: int, label: str, unit: str = "items") -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; with ``enabled``, a progress bar on stderr with the rate.

    Parameters
    ----------
    enabled : bool
        False gives a no-op ``advance`` (tests, ``--quiet``).
    total : int
        Number of items.
    label : str
        Text before the bar.
    unit : str
        Name of the items in the rate column (``cutouts`` -> "812 cutouts/s").
    """
    if not enabled:
        yield lambda n: None
        return
    progress = progress_bar(unit=unit)
    with progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


@contextlib.contextmanager
def progress_reporter(enabled: bool, label: str, unit: str = "items") -> Iterator[Callable[[int, int], None]]:
    """Yield ``report(done, total)`` for a library's ``on_progress`` callback.

    Parameters
    ----------
    enabled : bool
        False (``--quiet``) gives a no-op ``report``.  Stderr not a terminal: one line
        ``label: done/total unit (P%), rate, elapsed, ETA`` every :func:`log_interval`
        seconds instead of a bar.
    label : str
        Text before the bar.
    unit : str
        Name of the items in the rate column (``cutouts`` -> "12 cutouts/s").

    Notes
    -----
    The bar starts at the first report, not on entry: a pipeline that forks worker
    processes reports only once they exist, so no display thread runs during the fork.
    """
    from rich.console import Console

    if not enabled:
        yield lambda done, total: None
        return
    if not Console(stderr=True).is_terminal:
        yield log_reporter(label, unit, log_interval())
        return
    state: dict = {}

    def report(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = progress_bar(transient=True, elapsed=False, unit=unit)
            state["bar"].start()
            state["task"] = state["bar"].add_task(label, total=total)
        state["bar"].update(state["task"], completed=done, total=total)

    try:
        yield report
    finally:
        if "bar" in state:
            state["bar"].stop()
