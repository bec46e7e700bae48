"""The runs table: one row per run, refreshed in place from store snapshots."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import DataTable

from engine.store import Run

STATUS_STYLE = {
    "queued": "cyan",
    "blocked": "dim cyan",
    "running": "bold yellow",
    "paused": "magenta",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "dim",
    "interrupted": "red",
    "dependency-failed": "dim red",
}
COLUMNS = ("run", "kind", "label", "status", "progress", "try", "elapsed")


def _elapsed(run: Run, now: float) -> str:
    if run.started is None:
        return ""
    secs = int((run.ended or now) - run.started)
    return f"{secs // 3600}:{secs % 3600 // 60:02d}:{secs % 60:02d}"


def _progress(run: Run) -> str:
    p = run.progress or {}
    total = p.get("total") or 0
    if run.status != "running" or not total:
        return ""
    return f"{100 * p.get('done', 0) / total:5.1f}% {p.get('desc', '')}".rstrip()


def row_cells(run: Run, now: float) -> tuple[str | Text, ...]:
    return (
        run.id,
        run.kind,
        run.label or "",
        Text(run.status, style=STATUS_STYLE.get(run.status, "")),
        _progress(run),
        str(run.attempt),
        _elapsed(run, now),
    )


class RunsTable(DataTable):
    """Rows keyed by run id; a refresh touches only the rows whose cells changed (10,000 runs stay cheap)."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self._shown: dict[str, tuple[str | Text, ...]] = {}
        for name in COLUMNS:
            self.add_column(name, key=name)

    def show(self, runs: list[Run]) -> None:
        now = time.time()
        wanted = {r.id for r in runs}
        for gone in set(self._shown) - wanted:
            self.remove_row(gone)
            del self._shown[gone]
        for run in runs:
            cells = row_cells(run, now)
            old = self._shown.get(run.id)
            if old is None:
                self.add_row(*cells, key=run.id)
            elif old != cells:
                for col, before, value in zip(COLUMNS, old, cells, strict=True):
                    if before != value:
                        self.update_cell(run.id, col, value)
            self._shown[run.id] = cells

    @property
    def selected_run_id(self) -> str | None:
        if not self.row_count:
            return None
        key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return str(key.value)
