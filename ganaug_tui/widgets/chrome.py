"""The two lines above every screen: the screen tabs (named from the first paint, each with its key) and the
status line (workspace, engine, queue, runs per state)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from ganaug_tui.reads import Snapshot

# (mode, title) in key order: key N opens the N-th screen.
SCREENS = (("builder", "Builder"), ("queue", "Queue"), ("live", "Live"), ("preview", "Preview"),
           ("results", "Results"))
SHORT = {"dependency-failed": "dep-failed"}
STATE_ORDER = ("running", "paused", "queued", "blocked", "succeeded", "failed", "interrupted", "cancelled",
               "dependency-failed")


class ScreenTabs(Static):
    """``1 Builder  2 Queue  3 Live  4 Preview  5 Results``; the current one highlighted, each clickable."""

    DEFAULT_CSS = """
    ScreenTabs { height: 1; background: $panel; color: $text-muted; }
    """

    def __init__(self, current: str) -> None:
        super().__init__(self.line(current))

    @staticmethod
    def line(current: str) -> Content:
        parts = []
        for n, (mode, title) in enumerate(SCREENS, 1):
            tab = Content.from_markup(f"[@click=app.switch_mode('{mode}')] $n $title [/]", n=str(n), title=title)
            parts.append(tab.stylize("reverse bold") if mode == current else tab)
        return Content(" ").join([Content.from_markup("[b]ganaug[/b] "), *parts])


class StatusLine(Static):
    """Where the user is and what the engine does, refreshed with every snapshot of the store."""

    DEFAULT_CSS = """
    StatusLine { height: 1; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, where: str, read_only: bool) -> None:
        super().__init__(where)
        self.where = where
        self.read_only = read_only

    def show(self, snap: Snapshot | None) -> None:
        markup = Content.from_markup
        parts = [Content(self.where + (" (read-only)" if self.read_only else ""))]
        if snap is None:
            parts.append(Content("reading the store…"))
        else:
            eng = snap.engine
            if eng is None:
                parts.append(markup("[$error]engine off[/]"))
            else:
                slots = " ".join(s.get("name", "?") for s in eng.get("slots", []))
                parts.append(markup("[$success]engine on[/] $rest", rest=f"pid {eng.get('pid')} {slots}".rstrip()))
            if snap.queue_paused:
                parts.append(markup("[$warning]queue paused[/]"))
            counts = snap.counts()
            shown = [f"{counts[s]} {SHORT.get(s, s)}" for s in STATE_ORDER if counts.get(s)]
            parts.append(Content(", ".join(shown) if shown else "no runs"))
        self.update(Content(" · ").join(parts))
