"""The one progress bar of the toolkit: rich, on stderr, built on demand.

:func:`progress_bar` returns a :class:`rich.progress.Progress` with the columns every
command shows (what, bar, done/total, elapsed, ETA) plus any text fields a caller fills
with ``update(task, field=...)``.  Importing this module loads nothing heavy.
"""

from __future__ import annotations

__all__ = ["progress_bar"]


def progress_bar(*fields: str, transient: bool = False, elapsed: bool = True):
    """A rich progress display on stderr (not started).

    Parameters
    ----------
    *fields : str
        Names of text fields shown after the done/total column, in order (``"rate"``);
        each task must be given them (``add_task(..., rate="")``).
    transient : bool
        Remove the bar from the terminal when stopped.
    elapsed : bool
        Show the elapsed time before the ETA.

    Returns
    -------
    rich.progress.Progress
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    head = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    head += [TextColumn(f"{{task.fields[{f}]}}") for f in fields[:1]]
    tail = [TimeElapsedColumn(), TextColumn("ETA")] if elapsed else []
    tail += [TimeRemainingColumn()] + [TextColumn(f"{{task.fields[{f}]}}") for f in fields[1:]]
    return Progress(*head, *tail, console=Console(stderr=True), transient=transient)
