"""A run's metric curves, one small plot per panel, redrawn as new points arrive.

Which metrics share a panel depends on the run kind (the metric names are the kinds' contracts): a
fine-tune's losses together, its validation AUC, learning rate and throughput apart; a GAN's G and D losses
together, its augmentation probability, and per checkpoint its FID (Inception or domain features) and
precision / recall.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid
from textual_plotext import PlotextPlot

Panels = tuple[tuple[str, tuple[str, ...]], ...]
PANELS: dict[str, Panels] = {
    "classify": (("loss", ("train_loss", "val_loss")), ("validation AUC", ("val_auc",)),
                 ("learning rate", ("lr",)), ("images/s", ("images_per_s",))),
    "gan-train": (("G / D loss", ("loss_g", "loss_d")), ("augmentation p", ("aug_p",)),
                  ("FID per checkpoint (kimg)", ("fid", "fid_domain")),
                  ("precision / recall (kimg)", ("precision", "recall", "precision_domain", "recall_domain"))),
}
MAX_PANELS = 4


def panels_for(kind: str, names: list[str]) -> Panels:
    """The kind's panels; for another kind, one panel per metric it wrote (at most four)."""
    if kind in PANELS:
        return PANELS[kind]
    return tuple((n, (n,)) for n in sorted(names)[:MAX_PANELS])


class Curves(Grid):
    """Up to four plots in a 2x2 grid (``narrow``: the pair ``page`` picks, side by side)."""

    DEFAULT_CSS = """
    Curves { grid-size: 2; grid-gutter: 0 1; height: 1fr; }
    Curves PlotextPlot { height: 1fr; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.panels: Panels = ()
        self.page = 0
        self.narrow = False

    def compose(self) -> ComposeResult:
        for _ in range(MAX_PANELS):
            yield PlotextPlot()

    def show(self, kind: str, series: dict[str, tuple[list[float], list[float]]]) -> None:
        """Plot the panels that have points (all of them empty: the first, saying it waits for points)."""
        every = panels_for(kind, list(series))
        self.panels = tuple(p for p in every if any(series.get(n) and series[n][0] for n in p[1])) or every[:1]
        for i, plot in enumerate(self.query(PlotextPlot)):
            plot.display = i < len(self.panels) and not (self.narrow and i // 2 != self.page)
            if i >= len(self.panels):
                continue
            title, names = self.panels[i]
            plt = plot.plt
            plt.clear_data()
            plt.clear_figure()
            present = [n for n in names if series.get(n) and series[n][0]]
            for name in present:
                xs, ys = series[name]
                plt.plot(xs, ys, label=name if len(names) > 1 else None, marker="braille")
            plt.title(title if present else f"{title}: no points yet")
            plot.refresh()

    def set_narrow(self, narrow: bool) -> None:
        self.narrow = narrow

    def next_page(self) -> None:
        self.page = (self.page + 1) % max(1, -(-len(self.panels) // 2))
