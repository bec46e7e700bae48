"""Progress of a long step on stderr: a live bar on a terminal, a plain whole line every 10 % otherwise (a log
file or a CI console gets readable lines, not control codes)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_reporter(what: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback that shows ``what`` advancing; silent until it is first called."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(what, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total or None)
        return
    shown = -1

    def report(done: int, total: int) -> None:
        nonlocal shown
        tenth = 10 * done // total if total > 0 else -1
        if tenth > shown:
            shown = tenth
            print(f"{what}: {done}/{total} ({100 * done // total}%)", file=sys.stderr, flush=True)

    yield report
