"""Messages that thread workers post back to the UI thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from engine.store import Run


class RunsLoaded(Message):
    """A fresh snapshot of the store; a newer one replaces an undelivered older one."""

    def __init__(self, runs: list[Run], engine: dict[str, Any] | None, queue_paused: bool) -> None:
        super().__init__()
        self.runs = runs
        self.engine = engine
        self.queue_paused = queue_paused

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsLoaded)


@dataclass
class RunDetail:
    """What the detail pane shows for one run: the row, its metric series and the log's tail."""

    run: Run
    series: dict[str, tuple[list[int], list[float]]]
    log_tail: str


class RunDetailLoaded(Message):
    def __init__(self, detail: RunDetail) -> None:
        super().__init__()
        self.detail = detail

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunDetailLoaded)


class ActionDone(Message):
    """A store command finished (``ok`` False: ``text`` is the error line)."""

    def __init__(self, text: str, ok: bool = True) -> None:
        super().__init__()
        self.text = text
        self.ok = ok
