"""A progress bar on stderr for records waiting for Kafka's confirmation."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

SHOWN_FROM = 500
"""Fewer records are confirmed in about a second: a bar would only flicker."""


@contextmanager
def confirmations(
    description: str, stream: TextIO | None = None
) -> Iterator[Callable[[int, int], None]]:
    """A `(confirmed, total)` callback that draws a bar on `stream` (stderr) while the
    context is open, when the stream is a terminal and `total` is at least SHOWN_FROM;
    otherwise it draws nothing, so redirected output and scripts see no bar."""
    out = sys.stderr if stream is None else stream
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=out),
    )
    task = bar.add_task(description, total=None)
    drawn = False

    def confirmed(done: int, total: int) -> None:
        nonlocal drawn
        if total < SHOWN_FROM or not out.isatty():
            return
        if not drawn:
            bar.start()
            drawn = True
        bar.update(task, completed=done, total=total)

    try:
        yield confirmed
    finally:
        if drawn:
            bar.stop()
