"""The detail pane of the selected run: summary, metric curves, tail of its log."""

from __future__ import annotations

import json

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from ganaug_tui.messages import RunDetail

# The curves a researcher watches during a fine-tune, in order of preference.
PLOTTED = ("val_auc", "train_loss", "val_loss")


class RunDetailPane(Vertical):
    def compose(self) -> ComposeResult:
        yield Static("no run selected", id="summary")
        yield PlotextPlot(id="curves")
        yield Static("", id="log", markup=False)

    def show(self, detail: RunDetail) -> None:
        run = detail.run
        lines = [
            f"[b]{run.id}[/b]  {run.kind}  [i]{run.label or ''}[/i]",
            f"status {run.status}  attempt {run.attempt}  slot {run.slot or '-'}  seed {run.seed}",
        ]
        if run.exit_reason:
            lines.append(f"[red]{run.exit_reason}[/red]")
        last = {name: ys[-1] for name, (_, ys) in detail.series.items() if ys}
        if last:
            lines.append("  ".join(f"{k} {v:.4g}" for k, v in sorted(last.items())))
        lines.append(f"config {json.dumps(run.config, sort_keys=True)[:200]}")
        self.query_one("#summary", Static).update("\n".join(lines))
        plot = self.query_one("#curves", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        shown = [n for n in PLOTTED if n in detail.series] or sorted(detail.series)[:2]
        for name in shown:
            xs, ys = detail.series[name]
            plt.plot(xs, ys, label=name)
        plt.title("metrics" if shown else "no metrics yet")
        plot.refresh()
        self.query_one("#log", Static).update(detail.log_tail)
