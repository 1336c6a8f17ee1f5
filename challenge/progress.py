"""Progress bars for long work; `--quiet` silences them."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)
QUIET = False


def set_quiet(quiet: bool) -> None:
    global QUIET
    QUIET = quiet


def say(message: str) -> None:
    if not QUIET:
        console.print(message)


def announce(message: str) -> None:
    """What a user must read even with --quiet: an address to open, with its token."""
    console.print(message, soft_wrap=True)


def warn(message: str) -> None:
    """Data that was repaired, skipped or ignored: shown even with --quiet, which silences progress only."""
    console.print(f"[yellow]warning: {message}[/]", soft_wrap=True)


@contextmanager
def progress_bar(description: str, total: int, transient: bool = False):
    """Yields an `advance(n=1)` callable. A transient bar (one model's epochs, of which a run
    with folds and seeds fits hundreds) disappears when done and prints nothing to a log file."""
    if QUIET or total == 0:
        yield lambda n=1: None
        return
    if not console.is_terminal:  # a log file, CI, nohup: a bar would print nothing until it ends
        yield LogLines(description, total, every_tenth=not transient).advance
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=transient) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


LOG_EVERY_SECONDS = float(os.environ.get("CHALLENGE_LOG_EVERY", "30"))
_last_line = [0.0]  # when any bar last wrote a line: nested bars (folds, then epochs) share the budget


class LogLines:
    """Progress as plain lines for a log, with elapsed time and an estimate of what remains.
    An outer bar (folds, seeds, trials, clips: `every_tenth`) writes a line at each tenth of its
    total, so each fold of a 5-fold run is seen; an inner bar (one model's epochs, of which a
    run fits hundreds) writes only when no line was written for LOG_EVERY_SECONDS, so a long
    epoch loop shows where it is without flooding the log."""

    def __init__(self, description: str, total: int, every_tenth: bool = True):
        self.description, self.total, self.done, self.every_tenth = description, total, 0, every_tenth
        self.start = time.monotonic()
        if every_tenth or self.start - _last_line[0] >= LOG_EVERY_SECONDS:
            self._line()

    def advance(self, n: int = 1) -> None:
        before, self.done = self.done, self.done + n
        tenth = self.every_tenth and (10 * self.done) // self.total > (10 * before) // self.total
        if tenth or time.monotonic() - _last_line[0] >= LOG_EVERY_SECONDS:
            self._line()

    def _line(self) -> None:
        now = time.monotonic()
        _last_line[0] = now
        elapsed = now - self.start
        left = f", about {_clock(elapsed / self.done * (self.total - self.done))} left" if 0 < self.done < self.total else ""
        console.print(
            f"{self.description}: {self.done}/{self.total} ({self.done / self.total:.0%}), {_clock(elapsed)} elapsed{left}",
            soft_wrap=True,
            highlight=False,
        )


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
