"""Progress on the terminal for long commands: one bar, on stderr, started lazily.

Library functions report progress through a plain ``on_progress(done, total)`` callback;
commands turn it into a bar with :func:`progress_reporter`.  Nothing here is imported
at CLI start-up (rich is imported when a bar is shown).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

__all__ = ["progress_reporter"]


@contextlib.contextmanager
def progress_reporter(enabled: bool, label: str, unit: str = "items") -> Iterator[Callable[[int, int], None]]:
    """Yield ``report(done, total)``: a transient rich bar on stderr with the rate.

    Parameters
    ----------
    enabled : bool
        False (``--quiet``), or stderr not a terminal, gives a no-op ``report``.
    label : str
        Text before the bar.
    unit : str
        Name of the items in the rate column (``cutouts`` -> "12.3 cutouts/s").

    Notes
    -----
    The bar starts at the first report, not on entry: a pipeline that forks worker
    processes reports only once they exist, so no display thread runs during the fork.
    """
    from rich.console import Console

    err = Console(stderr=True)
    if not enabled or not err.is_terminal:
        yield lambda done, total: None
        return
    state: dict = {}

    def report(done: int, total: int) -> None:
        if "bar" not in state:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            bar = Progress(
                TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(), console=err, transient=True,
            )
            bar.start()
            state["bar"], state["task"] = bar, bar.add_task(label, total=total, rate="")
        bar, task = state["bar"], state["task"]
        elapsed = bar.tasks[0].elapsed or 0.0
        bar.update(task, completed=done, rate=f"{done / elapsed:.1f} {unit}/s" if elapsed > 0 else "")

    try:
        yield report
    finally:
        if "bar" in state:
            state["bar"].stop()
