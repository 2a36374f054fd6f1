"""The one progress-bar policy for long work (training, eval runs, ingest, model provisioning).

Bars are rich progress bars on stderr, so a `--json` command keeps stdout to exactly one JSON
document; `disable=True` (the `--quiet`/`progress=False` paths) draws nothing.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def stderr_console() -> Console:
    return Console(stderr=True)


def progress_bar(disable: bool = False, console: Console | None = None, transient: bool = False) -> Progress:
    """A counted bar: description, bar, done/total, elapsed and remaining time."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console or stderr_console(), disable=disable, transient=transient)


def spinner(disable: bool = False) -> Progress:
    """Steps of unknown length: a spinner, the step's description and the elapsed time."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    console=stderr_console(), disable=disable)
