"""The paper's box-plots: terminal text (plotext, reused by the TUI) and PNG/SVG files (matplotlib)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.patches import PathPatch
from test_analysis import aucs_frame, experiment

from engine.analysis.plots import PAPER_COLORS, draw_terminal, figure, save_figure, terminal_boxplot

GROUPS = 'base = ["1:0"]\nratio = ["1:1/4", "(1:1/2:3/4)"]\nsampler = ["1:1/2 bst"]\nx4 = ["1/4:3/4", "1/4:0"]'
RNG = np.random.default_rng(0)


@pytest.fixture
def data():
    exp = experiment(GROUPS, replicates=4, tests=("isic20",))
    values = {label: list(np.round(0.7 + 0.1 * i / 6 + 0.01 * RNG.standard_normal(4), 4))
              for i, label in enumerate(exp.labels)}
    values["1/4:0"] = [None] * 4  # never scored: a row without a box
    return exp, aucs_frame(exp, {"isic19": values, "isic20": {"1:0": [0.6, 0.61, 0.62, 0.63]}}), values


def test_terminal_plot_shows_every_label_with_its_mean_in_the_experiments_order(data) -> None:
    exp, aucs, values = data
    text = terminal_boxplot(aucs, exp, "isic19", width=100, color=False)
    assert "\x1b[" not in text and "isic19" in text
    ticks = [m.group(1).strip() for m in re.finditer(r"^\s*(.+?)┤", text, re.M)]
    assert exp.labels[-1] == "1/4:0"
    want = [f"{label}  {np.mean(v):.3f}" for label, v in values.items() if v[0] is not None] + ["1/4:0  no data"]
    assert ticks == want  # top to bottom in the experiment's order, each with its mean
    assert len(text.splitlines()) == 4 * len(exp.labels) + 5
    assert "\x1b[" in terminal_boxplot(aucs, exp, "isic19", width=100)  # colours by default


def test_the_drawing_function_works_on_any_plotext_figure(data) -> None:
    """The TUI hands its PlotextPlot.plt; the panel is drawn the same way there."""
    from textual_plotext import Plot

    exp, aucs, _ = data
    plt = Plot()
    plt.plotsize(90, 40)
    draw_terminal(plt, aucs, exp, "isic20")
    text = re.sub(r"\x1b\[[0-9;]*m", "", plt.build())
    assert "1:0  0.615" in text and "1:1/4  no data" in text


def test_png_and_svg_have_one_box_per_scored_configuration(tmp_path, data) -> None:
    exp, aucs, values = data
    fig = figure(aucs, exp)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["isic19", "isic20"]
    boxes = [[p.get_gid() for p in ax.patches if isinstance(p, PathPatch) and (p.get_gid() or "").startswith("box:")]
             for ax in axes]
    assert boxes == [[f"box:isic19:{label}" for label in exp.labels[:5]], ["box:isic20:1:0"]]
    # Means: a red dot on each box at the arithmetic mean; y labels: the configurations in order, group colours.
    (reds,) = [c for c in axes[0].collections if tuple(c.get_facecolor()[0][:3]) == (1.0, 0.0, 0.0)]
    assert list(reds.get_offsets()[:, 0]) == pytest.approx([np.mean(values[label]) for label in exp.labels[:5]])
    assert [t.get_text() for t in axes[0].get_yticklabels()] == exp.labels
    colors = [t.get_color() for t in axes[0].get_yticklabels()]
    assert colors == [PAPER_COLORS[i] for i in (0, 1, 1, 0, 1, 1)]
    paths = save_figure(fig, tmp_path / "out" / "e")
    assert [p.name for p in paths] == ["e.png", "e.svg"]
    assert paths[0].read_bytes().startswith(b"\x89PNG") and b"<svg" in paths[1].read_bytes()[:500]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["e.png", "e.svg"]  # no temporary left
