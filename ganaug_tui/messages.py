"""Messages that thread workers post back to the UI thread.

A message that carries a whole state (a snapshot of the store, a run's curves, a page of images) replaces an
undelivered older one of the same kind and subject (toolong's ``can_replace``): when the store changes faster
than the screen redraws, only the newest state is drawn and nothing queues up.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from ganaug_tui.reads import RunView, Snapshot


class SnapshotLoaded(Message):
    """A fresh snapshot of the whole store."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotLoaded)


class RunViewLoaded(Message):
    """One run's curves, log tail and result (``view`` None: the run was removed meanwhile)."""

    def __init__(self, run_id: str, view: RunView | None) -> None:
        super().__init__()
        self.run_id = run_id
        self.view = view

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunViewLoaded) and message.run_id == self.run_id


class Loaded(Message):
    """The answer of a one-off read for a screen (``topic`` says which; ``error`` is a one-line refusal)."""

    def __init__(self, topic: str, data: Any = None, error: str | None = None) -> None:
        super().__init__()
        self.topic = topic
        self.data = data
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Loaded) and message.topic == self.topic


class ActionDone(Message):
    """A store command finished (``ok`` False: ``text`` is the error line)."""

    def __init__(self, text: str, ok: bool = True) -> None:
        super().__init__()
        self.text = text
        self.ok = ok


class GpuStats(Message):
    """The GPUs' memory and utilisation (an empty list means there is no GPU: the panel stays hidden)."""

    def __init__(self, gpus: list[dict[str, Any]]) -> None:
        super().__init__()
        self.gpus = gpus

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, GpuStats)
