"""Live: the selected run as it trains — its curves growing as metrics arrive, the end of its log, its test
AUCs once it finished, the GPUs' memory and load when there are GPUs, and a GAN's latest sample grid."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import ProgressBar, Static

from engine import store as st
from ganaug_tui import gpu, reads
from ganaug_tui.messages import GpuStats, RunViewLoaded
from ganaug_tui.reads import RunView, Snapshot, fmt_duration
from ganaug_tui.screens.base import GanaugScreen
from ganaug_tui.widgets.curves import Curves
from ganaug_tui.widgets.picture import picture

LIVE_POLL_S = 1.0
GPU_POLL_S = 2.0


AUC_CELL = 24  # "  name            0.1234" and a gap


def result_lines(kind: str, result: dict[str, Any] | None, per_row: int = 1) -> list[str]:
    """What a finished run's result.json says that a researcher looks for first; ``per_row`` AUCs share a line
    (a narrow terminal stacks this under the curves, where each line taken is one log line less)."""
    if not result:
        return []
    lines: list[str] = []
    if isinstance(result.get("auc"), dict):
        lines.append("test AUC (melanoma vs benign)")
        cells = [f"  {name:<15} {auc:.4f}" for name, auc in result["auc"].items() if isinstance(auc, int | float)]
        if isinstance(result.get("val_auc"), int | float):
            cells.append(f"  {'validation':<15} {result['val_auc']:.4f}")
        lines += [" ".join(cells[i:i + per_row]) for i in range(0, len(cells), per_row)]
        if result.get("best_epoch") is not None:
            early = ", stopped early" if result.get("stopped_early") else ""
            lines.append(f"best epoch {result['best_epoch']} of {result.get('epochs')}{early}")
    if isinstance(result.get("selected"), dict):
        sel = result["selected"]
        lines.append(f"selected checkpoint: kimg {sel.get('kimg')} ({sel.get('rule', '')})".rstrip())
    return lines


def gpu_lines(gpus: list[dict[str, Any]]) -> list[str]:
    return [f"GPU{g['index']} {g['name'][:18]:<18} mem {g['mem_used'] / 1024:5.1f}/{g['mem_total'] / 1024:.0f} GiB"
            f"  util {g['util']:3.0f}%" for g in gpus]


class LiveScreen(GanaugScreen):
    MODE = "live"
    BINDINGS = [
        Binding("c", "cancel", "Cancel", id="live.cancel", tooltip="Cancel this run (asks first)"),
        Binding("t", "retry", "Retry", id="live.retry", tooltip="Queue this run again (attempt + 1)"),
        Binding("v", "more_curves", "More curves", id="live.curves",
                tooltip="Show the next pair of curves (narrow terminals show two at a time)"),
        Binding("left_square_bracket", "step_run(-1)", "Previous run", id="live.prev", show=False,
                tooltip="Look at the run before this one"),
        Binding("right_square_bracket", "step_run(1)", "Next run", id="live.next", show=False,
                tooltip="Look at the run after this one"),
    ]
    DEFAULT_CSS = """
    LiveScreen #head { height: 2; padding: 0 1; }
    LiveScreen #bar-row { height: 1; padding: 0 1; }
    LiveScreen #bar-row ProgressBar { width: 1fr; }
    LiveScreen #bar-row #eta { width: auto; color: $text-muted; margin-left: 1; }
    LiveScreen #body { height: 1fr; }
    LiveScreen #side { width: 2fr; border-left: vkey $panel; }
    LiveScreen #curves { width: 3fr; }
    LiveScreen #result, LiveScreen #gpu { height: auto; padding: 0 1; }
    LiveScreen #gpu { color: $text-muted; }
    LiveScreen #grid-caption { height: 1; padding: 0 1; color: $text-muted; }
    LiveScreen #grid { height: auto; max-height: 16; width: 1fr; }
    LiveScreen #log-box { height: 1fr; padding: 0 1; }
    LiveScreen #log { color: $text-muted; }
    LiveScreen.-narrow #body { layout: vertical; }
    LiveScreen.-narrow #curves { height: 9; width: 1fr; }
    LiveScreen.-narrow #side { width: 1fr; height: 1fr; border-left: none; }
    LiveScreen.-narrow #grid { max-height: 8; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.view: RunView | None = None
        self._log_size = -1

    def compose_body(self) -> ComposeResult:
        yield Static("no run selected: pick one on the Queue screen (2)", id="head")
        with Horizontal(id="bar-row"):
            yield ProgressBar(total=None, show_eta=False, id="bar")
            yield Static("", id="eta")
        with Horizontal(id="body"):
            yield Curves(id="curves")
            with Vertical(id="side"):
                yield Static("", id="result", markup=False)
                yield Static("", id="gpu", markup=False)
                yield Static("", id="grid-caption", markup=False)
                yield picture(id="grid")
                with VerticalScroll(id="log-box"):
                    yield Static("", id="log", markup=False)

    def on_mount(self) -> None:
        self.query_one("#gpu").display = False
        self.query_one("#grid").display = False
        self.query_one("#grid-caption").display = False
        self.query_one("#log-box", VerticalScroll).anchor()
        self.watch(self.app, "selected_run", self._run_changed)
        self.set_interval(LIVE_POLL_S, self._poll)
        if self.gapp.gpu is not False:
            self.set_interval(GPU_POLL_S, self._probe_gpus)
            self._probe_gpus()
        super().on_mount()

    def on_screen_resume(self) -> None:
        self._poll()

    def on_resize(self) -> None:
        self.query_one(Curves).set_narrow(self.has_class("-narrow"))
        self._show_result()

    def _show_result(self) -> None:
        if self.view is None:
            return
        per_row = max(1, (self.size.width - 2) // (AUC_CELL + 1)) if self.has_class("-narrow") else 1
        lines = result_lines(self.view.run.kind, self.view.result, per_row)
        self.query_one("#result", Static).update("\n".join(lines))

    # ------------------------------------------------------------------ reading
    def _run_changed(self, run_id: str | None) -> None:
        self._log_size = -1
        self._poll()

    def _poll(self) -> None:
        if self.is_current and (run_id := self.gapp.selected_run) is not None:
            self._load(run_id)

    @work(thread=True, exclusive=True, group="live")
    def _load(self, run_id: str) -> None:
        self.post_message(RunViewLoaded(run_id, reads.load_run_view(self.gapp.workspace, run_id, self.gapp.clock)))

    @work(thread=True, exclusive=True, group="gpu")
    def _probe_gpus(self) -> None:
        if self.is_current:
            self.post_message(GpuStats(gpu.probe()))

    def snapshot_changed(self, snap: Snapshot) -> None:
        self._poll()

    # ------------------------------------------------------------------ drawing
    def on_run_view_loaded(self, message: RunViewLoaded) -> None:
        if message.run_id != self.gapp.selected_run:
            return
        view = message.view
        if view is None:
            self.query_one("#head", Static).update(f"{message.run_id} was removed")
            return
        self.view = view
        run = view.run
        head = Content.from_markup(
            "[b]$label[/b]  $kind  [b]$status[/b]  attempt $attempt  slot $slot  seed $seed\n[dim]$id$reason[/dim]",
            label=run.label or "(no label)", kind=run.kind, status=run.status, attempt=str(run.attempt),
            slot=run.slot or "-", seed=str(run.seed), id=run.id,
            reason=f" · {run.exit_reason}" if run.exit_reason else "")
        self.query_one("#head", Static).update(head)
        self._show_progress(run, view.time)
        curves = self.query_one(Curves)
        curves.set_narrow(self.has_class("-narrow"))
        curves.show(run.kind, view.series)
        self._show_result()
        self._show_grid(view)
        if view.log_size != self._log_size:
            self._log_size = view.log_size
            self.query_one("#log", Static).update(view.log_tail or "(the log is empty)")
        self.refresh_bindings()

    def _show_progress(self, run: st.Run, now: float) -> None:
        bar = self.query_one("#bar", ProgressBar)
        p = run.progress or {}
        if run.status in st.ACTIVE and p.get("total"):
            bar.update(total=p["total"], progress=p.get("done", 0))
            eta = self.gapp.rates.eta(run, now)
            left = f" · {fmt_duration(eta)} left in it" if eta is not None else ""
            self.query_one("#eta", Static).update(f"{p.get('desc', '')}{left}")
        else:
            bar.update(total=1, progress=1 if run.status == st.SUCCEEDED else 0)
            ended = fmt_duration(run.ended - run.started) if run.ended and run.started else ""
            self.query_one("#eta", Static).update(f"{run.status} {('after ' + ended) if ended else ''}".rstrip())

    def _show_grid(self, view: RunView) -> None:
        shown = view.grid is not None
        for wid in ("#grid", "#grid-caption"):
            self.query_one(wid).display = shown
        if view.grid is not None:
            grid = self.query_one("#grid")
            if getattr(grid, "image", None) != str(view.grid):
                grid.image = str(view.grid)  # type: ignore[attr-defined]
            kimg = reads.SAMPLE_GRID.match(view.grid.name)
            self.query_one("#grid-caption", Static).update(f"latest samples: kimg {int(kimg[1]) if kimg else '?'}")

    def on_gpu_stats(self, message: GpuStats) -> None:
        panel = self.query_one("#gpu", Static)
        panel.display = bool(message.gpus)
        panel.update("\n".join(gpu_lines(message.gpus)))

    # ------------------------------------------------------------------ commands
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        run = self.view.run if self.view else None
        if action == "cancel":
            return run is not None and run.status in (st.QUEUED, st.BLOCKED, st.INTERRUPTED, *st.ACTIVE) or None
        if action == "retry":
            return run is not None and run.status in st.RETRYABLE or None
        return True

    def action_cancel(self) -> None:
        if self.view is not None:
            self.cancel_run(self.view.run)

    def action_retry(self) -> None:
        if self.view is not None:
            self.retry_run(self.view.run)

    def action_more_curves(self) -> None:
        curves = self.query_one(Curves)
        curves.next_page()
        if self.view is not None:
            curves.show(self.view.run.kind, self.view.series)

    def action_step_run(self, delta: int) -> None:
        snap = self.gapp.snapshot
        if snap is None or not snap.runs:
            return
        ids = [r.id for r in snap.runs]
        at = ids.index(self.gapp.selected_run) if self.gapp.selected_run in ids else 0
        self.gapp.selected_run = ids[max(0, min(len(ids) - 1, at + delta))]
