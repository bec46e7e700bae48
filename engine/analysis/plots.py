"""Box-plots in the paper's Figure 2 style: per test set, one horizontal box per configuration (median, quartiles,
whiskers at the range), the replicate AUCs as points, the arithmetic mean as a red dot, groups in alternating
blue / black, configurations top to bottom in the order the experiment lists them.

Two renderers of the same picture: :func:`draw_terminal` on any plotext figure (the CLI's :func:`terminal_boxplot`
and the TUI's ``PlotextPlot.plt``), and :func:`figure` with matplotlib for PNG / SVG (:func:`save_figure`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engine.config import Experiment
from engine.fsutil import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PAPER_COLORS = ("#1f3fbf", "black")  # the paper's alternating group colours
TERMINAL_COLORS = ("blue", "default")  # "default" = the terminal's text colour, readable on dark and light themes
MEAN_COLOR = "red"
GROUP_GAP = 0.5  # extra space between groups, in box heights


def layout(experiment: Experiment) -> list[tuple[str, str, int, float]]:
    """``(label, group, group index, y)`` per configuration, top to bottom; y grows downwards, groups apart."""
    rows, y = [], 0.0
    for gi, (group, confs) in enumerate(experiment.groups):
        if gi:
            y += GROUP_GAP
        for conf in confs:
            rows.append((conf.label, group, gi, y))
            y += 1.0
    return rows


def _values(aucs: pd.DataFrame, test_set: str) -> dict[str, np.ndarray]:
    sub = aucs[aucs["test_set"] == test_set]
    return {label: g["auc"].to_numpy(dtype=float) for label, g in sub.groupby("label", sort=False)}


# ------------------------------------------------------------------------------------------ terminal (plotext)
def draw_terminal(plt: Any, aucs: pd.DataFrame, experiment: Experiment, test_set: str, *,
                  colors: Sequence[str] = TERMINAL_COLORS) -> None:
    """Draw one test set's panel on ``plt`` (the plotext module, a plotext figure, or a textual-plotext ``Plot``);
    the caller sets its size and builds or refreshes it. Tick labels read ``label  mean``."""
    values = _values(aucs, test_set)
    rows = layout(experiment)
    ticks, names = [], []
    for i, (label, _group, gi, _y) in enumerate(rows):
        pos = len(rows) - i  # integer rows (character cells cannot show the file plot's group gaps); first on top
        v = values.get(label, np.empty(0))
        color = colors[gi % len(colors)]
        if len(v):
            plt.box([pos], [list(v)], orientation="horizontal", colors=[color, color], width=0.6, reset_ticks=False)
            plt.scatter(list(v), [pos] * len(v), marker="dot", color=color)
            plt.scatter([float(v.mean())], [pos], marker="●", color=MEAN_COLOR)
        ticks.append(pos)
        names.append(f"{label}  {v.mean():.3f}" if len(v) else f"{label}  no data")
    plt.yticks(ticks, names)
    plt.ylim(0.5, len(rows) + 0.5)
    plt.title(f"{experiment.name} · {test_set} · AUC (red ● = mean)")


def terminal_boxplot(aucs: pd.DataFrame, experiment: Experiment, test_set: str, *, width: int = 100,
                     height: int | None = None, color: bool = True) -> str:
    """The panel as text for a ``width`` x ``height`` terminal area (height default: 4 rows per configuration);
    ``color=False`` gives plain text."""
    from plotext._figure import _figure_class

    fig = _figure_class()
    fig.theme("clear")  # no background: the terminal's own
    fig._limit_size(False, False)  # the size asked for, not that of whatever terminal runs this (private API)
    fig.plotsize(width, height or 4 * len(experiment.labels) + 5)  # 4 rows per box; title, frame, x axis
    draw_terminal(fig, aucs, experiment, test_set)
    text = fig.build()
    return text if color else re.sub(r"\x1b\[[0-9;]*m", "", text)


# ------------------------------------------------------------------------------------------ files (matplotlib)
def figure(aucs: pd.DataFrame, experiment: Experiment, test_sets: Sequence[str] | None = None, *,
           colors: Sequence[str] = PAPER_COLORS, panel_width: float = 3.0) -> Figure:
    """One panel per test set side by side (the paper's rows of Figure 2), configurations on a shared y axis.
    Each drawn box is a patch with gid ``box:<test set>:<label>``; a configuration without data gets none."""
    from matplotlib.figure import Figure

    sets = list(test_sets or experiment.test_sets)
    rows = layout(experiment)
    height = 0.8 + 0.3 * (rows[-1][3] + 1)
    fig = Figure(figsize=(1.6 + panel_width * len(sets), height), layout="constrained")
    axes = fig.subplots(1, len(sets), sharey=True, squeeze=False)[0]
    jitter = np.random.default_rng(0)
    for ax, ts in zip(axes, sets, strict=True):
        values = _values(aucs, ts)
        means_x, means_y = [], []
        for gi, (group, _confs) in enumerate(experiment.groups):  # one call per group: fast at 100s of boxes
            color = colors[gi % len(colors)]
            drawn = [(label, y, values[label]) for label, g, _, y in rows if g == group and len(values.get(label, ()))]
            for label, _g, _gi, y in rows:
                if _g == group and not len(values.get(label, ())):
                    ax.text(0.5, y, "no data", transform=ax.get_yaxis_transform(), ha="center", va="center",
                            fontsize=7, color="grey")
            if not drawn:
                continue
            parts = ax.boxplot([v for *_, v in drawn], positions=[y for _, y, _ in drawn], orientation="horizontal",
                               widths=0.6, whis=(0, 100), showfliers=False, patch_artist=True, manage_ticks=False,
                               boxprops={"facecolor": "none", "edgecolor": color, "linewidth": 1.0},
                               whiskerprops={"color": color}, capprops={"color": color},
                               medianprops={"color": color, "linewidth": 1.5})
            for box, (label, _y, _v) in zip(parts["boxes"], drawn, strict=True):
                box.set_gid(f"box:{ts}:{label}")
            xs = np.concatenate([v for *_, v in drawn])
            ys = np.concatenate([np.full(len(v), y) for _, y, v in drawn])
            ax.scatter(xs, ys + jitter.uniform(-0.15, 0.15, len(xs)), s=8, color=color, alpha=0.55, linewidths=0,
                       zorder=3)
            means_x += [float(v.mean()) for *_, v in drawn]
            means_y += [y for _, y, _ in drawn]
        ax.scatter(means_x, means_y, s=22, color=MEAN_COLOR, zorder=4)
        ax.set_title(ts, fontsize=10)
        ax.set_xlabel("AUC")
        ax.grid(axis="x", color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(labelsize=8)
    first = axes[0]
    first.set_yticks([y for *_, y in rows], [label for label, *_ in rows])
    for tick, (_label, _group, gi, _y) in zip(first.get_yticklabels(), rows, strict=True):
        tick.set_color(colors[gi % len(colors)])
    first.set_ylim(rows[-1][3] + 0.7, -0.7)  # first configuration on top
    fig.suptitle(f"{experiment.name}: AUC per test set (red = mean)", fontsize=10)
    return fig


def save_figure(fig: Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` (200 dpi) and ``stem.svg``, each atomically; returns both paths."""
    out = []
    for suffix, kwargs in ((".png", {"dpi": 200}), (".svg", {})):
        path = Path(f"{stem}{suffix}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], **kwargs)
        out.append(path)
    return out
