"""Progress bars for long work; `--quiet` silences them."""

from __future__ import annotations

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
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=transient) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)
