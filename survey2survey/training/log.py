"""What a training run shows and keeps of its losses: ``losses.csv`` and the progress bar."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from survey2survey.atomic import write_bytes

__all__ = ["LossLog", "TrainProgress"]


class LossLog:
    """``losses.csv``: one row per log period (mean losses over the period).

    Rows are appended and flushed; on resume the file is rewritten (atomically) without
    the rows after the checkpoint, so that it reads as one uninterrupted run.
    """

    def __init__(self, path: Path, start: int):
        self.path = path
        self.header: list[str] | None = None
        if start > 0 and path.exists():
            with open(path, newline="") as fh:
                rows = list(csv.reader(fh))
            if rows:
                self.header = rows[0]
                kept = [r for r in rows[1:] if len(r) == len(rows[0]) and r[0].isdigit() and int(r[0]) <= start]
                buf = io.StringIO()
                csv.writer(buf).writerows([self.header] + kept)
                write_bytes(path, buf.getvalue().encode())
        elif path.exists():
            path.unlink()

    def write(self, iteration: int, lr: float, losses: dict[str, float], seconds: float, rate: float) -> None:
        header = ["iteration", "lr", *losses, "seconds", "it_per_s"]
        if self.header is None:
            self.header = header
            with open(self.path, "w", newline="") as fh:
                csv.writer(fh).writerow(header)
        row = [iteration, f"{lr:.6g}", *(f"{v:.8g}" for v in losses.values()), f"{seconds:.3f}", f"{rate:.4g}"]
        with open(self.path, "a", newline="") as fh:
            csv.writer(fh).writerow(row)


class TrainProgress:
    """Progress on stderr: iteration, it/s, ETA and the losses (updated at log points)."""

    def __init__(self, enabled: bool, label: str, total: int, start: int):
        self.enabled, self.total, self.log = enabled, total, None
        if not enabled:
            return
        from rich.console import Console

        from survey2survey.progress import log_reporter, log_interval, progress_bar

        if not Console(stderr=True).is_terminal:  # a log: whole lines every few seconds, not a cut bar
            self.log = log_reporter(label, "it", log_interval())
            self.log(start, total)
            return
        self.bar = progress_bar("rate", "losses")
        self.bar.start()
        self.task = self.bar.add_task(label, total=total, completed=start, rate="- it/s", losses="")

    def update(self, completed: int, rate: float, losses: dict[str, float]) -> None:
        if self.enabled:
            text = "  ".join(f"{k} {v:.4g}" for k, v in losses.items())
            if self.log is not None:
                self.log(completed, self.total, text)
            else:
                self.bar.update(self.task, completed=completed, rate=f"{rate:.2f} it/s", losses=text)

    def close(self) -> None:
        if self.enabled and self.log is None:
            self.bar.stop()
