"""The Results screen is a view over ``engine.analysis`` (the same numbers as ``ganaug results``), and the Queue's
actions on a whole experiment or label go through the engine's housekeeping (``engine.workspace``).

Workspace: the deterministic fixture runs (tests/tui_fixtures.py) plus two submitted experiments with AUC
metrics: ``paper-mini`` (2 groups, 5 labels x 6 replicates, 3 test sets, one failed replicate) and ``mismatch``
(two protocols: the analysis refuses it).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from textual.widgets import Input, Select, Static
from textual_plotext import PlotextPlot
from tui_fixtures import RESULTS_FAILED, add_results_experiments, make_app, make_workspace, settle

from engine import store as st
from engine.analysis import analyse
from engine.analysis.tables import to_csv
from engine.errors import InputError
from ganaug_tui.screens.modals import Confirm, ExperimentActions, ExportDialog
from ganaug_tui.screens.results import ResultsScreen, ResultsTable
from ganaug_tui.widgets.run_table import RunTable

N_BOOT = 10_000  # the analysis module's default: the screen must not compute with fewer resamples


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One workspace for the tests that only read it."""
    ws = tmp_path_factory.mktemp("results") / "runs"
    ids = make_workspace(ws)
    add_results_experiments(ws)
    return ws, ids


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str]]:
    """A workspace of the test's own (for tests that change it)."""
    monkeypatch.chdir(tmp_path)
    workspace = tmp_path / "runs"
    ids = make_workspace(workspace)
    add_results_experiments(workspace)
    return workspace, ids




def _f(x: float, spec: str = ".3f") -> str:
    return format(x, spec)


def expected_cells(row) -> dict[str, str]:
    """What a results row must read, formatted here from the analysis module's own numbers."""
    cells = {"label": row.label, "n": str(row.n), "median": f"{_f(row.median)} [{_f(row.q1)}, {_f(row.q3)}]",
             "mean": f"{_f(row.mean)} ± {_f(row.sd)}", "verdict": row.verdict}
    if row.verdict != "baseline":
        cells["delta"] = f"{_f(row.mean_delta, '+.3f')} [{_f(row.ci_low, '+.3f')}, {_f(row.ci_high, '+.3f')}]"
        cells["p"] = _f(row.p_holm, ".3g")
        cells["pairs"] = str(row.n_pairs) + (f" (no pair: {' '.join(map(str, row.dropped))})" if row.dropped else "")
    return cells


def plot_text(screen: ResultsScreen) -> str:
    plot = screen.query_one("#plot", PlotextPlot)
    return re.sub(r"\x1b\[[0-9;]*m", "", plot.plt.build())


# ------------------------------------------------------------------------------------------ results
async def test_results_show_exactly_the_numbers_of_the_analysis_module(made) -> None:
    workspace, _ = made
    with st.open_store(workspace, readonly=True) as store:
        want = analyse(store, "paper-mini")
    assert want.n_boot == N_BOOT and {"worse", "no evidence", "baseline"} <= set(want.table["verdict"])
    app = make_app(workspace)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ResultsScreen)
        assert screen.query_one("#experiment", Select).value == "paper-mini"  # the first that can be analysed
        for i, ts in enumerate(want.test_sets):
            if i:
                await pilot.press("s")
                await settle(app, pilot)
            assert screen.query_one("#test-set", Select).value == ts
            table = screen.query_one(ResultsTable)
            rows = want.table[want.table["test_set"] == ts]
            assert [r["label"] for r in table.rows] == list(rows["label"])
            for shown, row in zip(table.rows, rows.itertuples(), strict=True):
                for key, cell in expected_cells(row).items():
                    assert shown[key] == cell, (ts, row.label, key)
            text = plot_text(screen)
            for row in rows.itertuples():  # each box's tick: the configuration and its mean
                assert f"{row.label}  {row.mean:.3f}" in text
            assert f"paper-mini · {ts} · AUC" in text
        # The failed replicate: its pair is dropped in the table, and why it is missing is one line away; the
        # arrows move through the rows from the start.
        label, k = RESULTS_FAILED
        await pilot.press(*["down"] * [r["label"] for r in table.rows].index(label))
        await settle(app, pilot)
        assert f"replicate {k}: run failed: RuntimeError: CUDA out of memory" in str(
            screen.query_one("#detail", Static).render())
        # One group: its rows (and its baseline) in the table and the plot; g again: the next; then all groups.
        await pilot.press("g", "g")
        await settle(app, pilot)
        assert screen.query_one("#group", Select).value == "anonymization"
        assert [r["label"] for r in table.rows] == ["1/2:0", "1/2:1/2 div"]
        assert "1:1/2  " not in plot_text(screen) and "1/2:1/2 div  " in plot_text(screen)
        await pilot.press("g")
        await settle(app, pilot)
        assert len(table.rows) == 5


async def test_a_terminal_too_short_for_plots_and_table_keeps_the_table_and_says_so(made) -> None:
    workspace, _ = made
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        screen = app.screen
        plot, table = screen.query_one("#plot", PlotextPlot), screen.query_one(ResultsTable)
        assert len(table.rows) == 5 and table.display and not plot.display
        assert "v shows them alone" in str(screen.query_one("#detail", Static).render())
        await pilot.press("v", "v")  # table only, then the plots alone: they get the whole height
        await settle(app, pilot)
        assert plot.display and not table.display and plot.size.height >= 2 * 5 + 5
        await pilot.resize_terminal(160, 48)
        await pilot.press("v")  # both again: now there is room
        await settle(app, pilot)
        assert plot.display and table.display
        assert "v shows them alone" not in str(screen.query_one("#detail", Static).render())


async def test_an_experiment_that_cannot_be_analysed_says_why_in_one_line(made) -> None:
    workspace, _ = made
    with st.open_store(workspace, readonly=True) as store, pytest.raises(InputError) as refused:
        analyse(store, "mismatch")
    app = make_app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        screen = app.screen
        await pilot.press("x")  # paper-mini -> mismatch
        await settle(app, pilot)
        state = screen.query_one("#state", Static)
        assert screen.query_one("#experiment", Select).value == "mismatch"
        assert str(state.render()) == str(refused.value) and state.has_class("-error")
        assert screen.query_one(ResultsTable).rows == [] and not screen.query_one("#plot").display
        assert screen.query_one("#test-set", Select).is_blank()  # nothing of paper-mini stays shown
        await pilot.press("x")  # the fixture's augmentation runs were queued without a spec
        await settle(app, pilot)
        assert "has no stored spec" in str(state.render())
        await pilot.press("X", "X")  # back to paper-mini: computed before, shown again
        await settle(app, pilot)
        assert screen.query_one("#experiment", Select).value == "paper-mini"
        assert not state.has_class("-error") and len(screen.query_one(ResultsTable).rows) == 5


async def test_results_follow_runs_that_finish_while_they_are_shown(ws) -> None:
    workspace, _ = ws
    app = make_app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        table = app.screen.query_one(ResultsTable)
        assert table.rows[table._row_of["1:1 bst"]]["n"] == "5"
        with st.open_store(workspace) as store:  # the failed replicate, retried, succeeds
            run_id = next(r.id for r in store.list_runs(experiment="paper-mini", status=st.FAILED))
            store.retry(run_id)
            store.claim(run_id, slot="cpu0", engine_pid=None)
            store.write_metrics(run_id, [(f"auc/{t}", 0, 0.79, 0.0) for t in ("isic19", "isic20", "dermofit")])
            store.finish(run_id, st.SUCCEEDED)
        await pilot.press("r")
        await settle(app, pilot)
        assert table.rows[table._row_of["1:1 bst"]]["n"] == "6"


async def test_export_writes_the_analysis_modules_files_where_the_user_confirms(ws, tmp_path: Path) -> None:
    workspace, _ = ws
    copy = tmp_path / "laptop" / "runs"  # an offline copy, opened read-only: no engine, nothing written in it
    shutil.copytree(workspace, copy)
    out = tmp_path / "exported"
    app = make_app(copy, read_only=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        await pilot.press("e")
        await settle(app, pilot)
        assert isinstance(app.screen, ExportDialog)
        folder = app.screen.query_one(Input)
        assert not Path(folder.value).is_relative_to(copy)  # a read-only store: the default is not inside it
        folder.value = str(out)
        await pilot.press("enter")
        await settle(app, pilot)
        said = [str(n.message) for n in app._notifications]
    with st.open_store(workspace, readonly=True) as store:
        want = analyse(store, "paper-mini")
    assert (out / "paper-mini.csv").read_text() == to_csv(want.table)
    assert {p.name for p in out.iterdir()} == {"paper-mini.csv", "paper-mini.png", "paper-mini.svg",
                                               *(f"paper-mini-{t}.{x}" for t in want.test_sets for x in ("png", "svg"))}
    assert any(f"wrote 9 files to {out}" in line for line in said)


# ------------------------------------------------------------------------------------------ queue
async def test_queue_shows_executor_job_experiment_and_label(ws) -> None:
    workspace, ids = ws
    with st.open_store(workspace) as store:
        job = store.create_run("sleep", {"seconds": 1}, label="on the cluster", experiment="anonymization",
                               executor="slurm")
        store.set_job(job, "4242")
    app = make_app(workspace)
    async with app.run_test(size=(200, 36)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(RunTable)
        row = table.rows[table._row_of[job]]
        assert [table.cell_text(row, k) for k in ("executor", "job_id", "experiment", "label")] == [
            "slurm", "4242", "anonymization", "on the cluster"]
        local = table.rows[table._row_of[ids["done"]]]
        assert [table.cell_text(local, k) for k in ("executor", "job_id")] == ["local", ""]
        table.select_key(job)
        await settle(app, pilot)
        assert "slurm job 4242" in str(app.screen.query_one("#detail", Static).render())


async def test_queue_acts_on_a_whole_experiment_or_label_through_the_engine(ws) -> None:
    workspace, ids = ws
    with st.open_store(workspace) as store:
        second = store.create_run("classify", {"replicate": 1, "real_fraction": "1/2"}, label="1/2:0",
                                  experiment="anonymization")
        other = store.create_run("classify", {"replicate": 0, "real_fraction": "1/4"}, label="1/4:0",
                                 experiment="anonymization")
    label_runs, everything = {ids["queued"], second}, {ids["queued"], second, other}

    def states(run_ids: set[str]) -> set[str]:
        with st.open_store(workspace, readonly=True) as store:
            return {store.get_run(r).status for r in run_ids}

    app = make_app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        app.screen.query_one(RunTable).select_key(ids["queued"])
        await settle(app, pilot)
        await pilot.press("x")
        await settle(app, pilot)
        assert isinstance(app.screen, ExperimentActions)
        await pilot.press("s")  # pause: the label's runs (the scope starts at the selected run's label)
        await settle(app, pilot)
        assert states(label_runs) == {st.PAUSED} and states({other}) == {st.QUEUED}
        await pilot.press("x", "l", "u")  # the whole experiment: resume
        await settle(app, pilot)
        assert states(everything) == {st.QUEUED}
        await pilot.press("x", "l", "c")  # cancel asks first, saying what it will do
        await settle(app, pilot)
        assert isinstance(app.screen, Confirm) and "anonymization" in app.screen.body
        await pilot.press("n")
        await settle(app, pilot)
        assert states(everything) == {st.QUEUED}
        await pilot.press("x", "l", "c", "y")
        await settle(app, pilot)
        assert states(everything) == {st.CANCELLED}
        await pilot.press("x", "l", "t")  # retry: attempt + 1
        await settle(app, pilot)
        assert states(everything) == {st.QUEUED}
        said = [str(n.message) for n in app._notifications]
    assert any(line.startswith("anonymization / 1/2:0: pause: 2 paused") for line in said)
    assert any(line.startswith("anonymization: cancel: 3 cancelled") for line in said)


async def test_cancelling_an_experiment_says_what_the_engine_will_stop(ws) -> None:
    """The confirmation counts the runs the engine's cancel takes (its own links, shared runs left alone), not the
    runs whose first label is the experiment's: a GAN another experiment also uses goes on and is not said to stop."""
    workspace, ids = ws
    with st.open_store(workspace) as store:
        store.link_runs("anonymization", [(ids["gan"], "1/2:0")])  # the running GAN serves both experiments
    app = make_app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        app.screen.query_one(RunTable).select_key(ids["done"])
        await settle(app, pilot)
        await pilot.press("x", "l", "c")
        await settle(app, pilot)
        assert isinstance(app.screen, Confirm)
        body = app.screen.body
        # running and blocked are cancelled (one of them is running); the shared GAN is left alone
        assert "2 waiting or running run(s)" in body and "1 running now" in body
        assert "1 run(s) it shares with other labels or experiments" in body
        await pilot.press("y")
        await settle(app, pilot)
    with st.open_store(workspace, readonly=True) as store:
        assert store.get_run(ids["gan"]).status == st.RUNNING
        assert store.get_run(ids["blocked"]).status == st.CANCELLED
