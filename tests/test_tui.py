"""The TUI is a view over the store: each screen's main flow on a deterministic workspace (tests/tui_fixtures.py).

The app runs headless with a pinned clock, no GPU probe and the half-cell image renderer, so what it shows
depends only on the workspace.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from textual.widgets import Select, Static
from tui_fixtures import make_app, make_workspace, settle

from engine import store as st
from ganaug_tui import gpu, reads
from ganaug_tui.palette import ScreenCommands
from ganaug_tui.screens.live import LiveScreen
from ganaug_tui.screens.modals import Confirm
from ganaug_tui.screens.welcome import CreateWorkspaceScreen
from ganaug_tui.widgets.curves import Curves
from ganaug_tui.widgets.run_table import RunTable


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str]]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANAUG_TUI_IMAGES", "halfcell")
    workspace = tmp_path / "runs"
    return workspace, make_workspace(workspace)




def status_of(workspace: Path, run_id: str) -> st.Run:
    with st.open_store(workspace, readonly=True) as store:
        return store.get_run(run_id)


# ------------------------------------------------------------------------------------------ queue
async def test_queue_lists_every_run_and_filters(ws) -> None:
    workspace, ids = ws
    app = make_app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(RunTable)
        assert {r.id for r in table.rows} == set(ids.values())
        assert table.cell_text(table.rows[table._row_of[ids["running"]]], "progress") == "30%"
        app.screen.query_one("#f-state", Select).value = "active"
        await settle(app, pilot)
        assert {r.id for r in table.rows} == {ids["running"], ids["gan"]}
        app.screen.query_one("#f-state", Select).clear()
        app.screen.query_one("#f-experiment", Select).value = "anonymization"
        await settle(app, pilot)
        assert [r.id for r in table.rows] == [ids["queued"]]
        app.screen.query_one("#f-experiment", Select).clear()
        app.screen.query_one("#f-kind", Select).value = "gan-pool"
        await settle(app, pilot)
        assert [r.id for r in table.rows] == [ids["pool"]]


async def test_cancel_asks_first_and_goes_through_the_store(ws) -> None:
    workspace, ids = ws
    app = make_app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(RunTable)
        table.select_key(ids["queued"])
        await pilot.press("c")
        await settle(app, pilot)
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")  # keep it
        await settle(app, pilot)
        assert status_of(workspace, ids["queued"]).status == st.QUEUED
        await pilot.press("c")
        await settle(app, pilot)
        await pilot.press("y")
        await settle(app, pilot)
        assert status_of(workspace, ids["queued"]).status == st.CANCELLED
        assert table.cell_text(table.rows[table._row_of[ids["queued"]]], "status") == "cancelled"
        table.select_key(ids["running"])  # a running run is asked to stop (its worker checkpoints first)
        await pilot.press("c", "y")
        await settle(app, pilot)
    run = status_of(workspace, ids["running"])
    assert run.status == st.RUNNING and run.cancel_requested


async def test_pause_priority_retry_and_the_queue_switch(ws) -> None:
    workspace, ids = ws
    app = make_app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(RunTable)
        table.select_key(ids["queued"])
        await pilot.press("s")
        await settle(app, pilot)
        assert status_of(workspace, ids["queued"]).status == st.PAUSED
        await pilot.press("s", "plus", "plus")
        await settle(app, pilot)
        run = status_of(workspace, ids["queued"])
        assert (run.status, run.priority) == (st.QUEUED, 2)
        table.select_key(ids["failed"])
        await pilot.press("t")
        await settle(app, pilot)
        run = status_of(workspace, ids["failed"])
        assert (run.status, run.attempt) == (st.QUEUED, 2)
        await pilot.press("p")
        await settle(app, pilot)
    with st.open_store(workspace, readonly=True) as store:
        assert store.queue_paused()


async def test_read_only_refuses_changes_and_says_why(ws) -> None:
    workspace, ids = ws
    app = make_app(workspace, read_only=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        app.screen.query_one(RunTable).select_key(ids["queued"])
        await pilot.press("c", "y")
        await settle(app, pilot)
        assert any("read-only" in str(n.message) for n in app._notifications)
    assert status_of(workspace, ids["queued"]).status == st.QUEUED


async def test_engine_starts_and_stops_from_the_queue(ws, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.runner.daemon import engine_info

    workspace, _ = ws
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with st.open_store(workspace) as store:
        store.set_queue_paused(True)  # the engine must not pick up the fixture's runs
    app = make_app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("e")
        await settle(app, pilot)
        assert engine_info(workspace) is not None
        await pilot.press("r")
        await settle(app, pilot)
        await pilot.press("e")
        await settle(app, pilot)
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await settle(app, pilot)
    assert engine_info(workspace) is None


# ------------------------------------------------------------------------------------------ live
async def test_live_curves_grow_as_metrics_arrive(ws) -> None:
    workspace, ids = ws
    app = make_app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        app.screen.query_one(RunTable).select_key(ids["running"])
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        live = app.screen
        assert isinstance(live, LiveScreen) and live.view is not None and live.view.run.id == ids["running"]
        assert len(live.view.series["val_auc"][0]) == 3
        plot = live.query_one(Curves).query("PlotextPlot").first()
        before = str(plot.render())
        with st.open_store(workspace) as store:
            store.write_metrics(ids["running"], [("val_auc", 3, 0.8, 0.0), ("train_loss", 3, 0.3, 0.0),
                                                 ("val_loss", 3, 0.4, 0.0), ("val_auc", 4, 0.82, 0.0)])
        live._poll()
        await settle(app, pilot)
        assert live.view.series["val_auc"] == ([0.0, 1.0, 2.0, 3.0, 4.0], [0.7, 0.71, 0.72, 0.8, 0.82])
        assert str(plot.render()) != before


async def test_a_finished_run_shows_its_test_aucs_and_the_end_of_its_log_at_80x24(ws) -> None:
    workspace, ids = ws
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.selected_run = ids["done"]
        await pilot.press("3")
        await settle(app, pilot)
        result = str(app.screen.query_one("#result", Static).render())
        assert "isic19          0.8312" in result and "dermofit        0.7777" in result
        box = app.screen.query_one("#log-box")
        assert "run succeeded" in str(app.screen.query_one("#log", Static).render())
        assert box.scroll_y == box.max_scroll_y  # the newest lines are the ones in view
        assert box.region.height > 0


async def test_gpu_panel_only_when_there_is_a_gpu(ws, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace, ids = ws
    fake = [{"index": 0, "name": "NVIDIA H100", "mem_used": 10240.0, "mem_total": 81920.0, "util": 87.0}]
    for gpus, shown in ((fake, True), ([], False)):
        monkeypatch.setattr(gpu, "probe", lambda g=gpus: g)
        app = make_app(workspace, gpu=None)
        async with app.run_test(size=(120, 36)) as pilot:
            app.selected_run = ids["done"]
            await pilot.press("3")
            await settle(app, pilot)
            panel = app.screen.query_one("#gpu", Static)
            assert panel.display is shown
            if shown:
                assert "GPU0 NVIDIA H100" in str(panel.render()) and "util  87%" in str(panel.render())


def test_nvidia_smi_rows_parse() -> None:
    rows = gpu.parse_smi("0, NVIDIA H100 80GB HBM3, 1024, 81559, 3\n1, NVIDIA H100 80GB HBM3, [N/A], 81559, 0\n")
    assert rows[0] == {"index": 0, "name": "NVIDIA H100 80GB HBM3", "mem_used": 1024.0, "mem_total": 81559.0,
                       "util": 3.0}
    assert np.isnan(rows[1]["mem_used"])


def test_time_left_comes_from_two_sightings_of_the_same_phase(ws) -> None:
    workspace, ids = ws
    rates = reads.PhaseRates()

    def seen(done: int, at: float, desc: str = "epoch 4") -> st.Run:
        with st.open_store(workspace) as store:
            store.set_progress(ids["running"], done, 40, desc)
            run = store.get_run(ids["running"])
        run = replace(run, progress={**run.progress, "time": at})
        rates.update([run])
        return run

    assert rates.eta(seen(10, 100.0), now=100.0) is None  # one sighting: no rate yet
    assert rates.eta(seen(20, 110.0), now=110.0) == pytest.approx(20.0)  # 1 batch/s, 20 to go
    assert rates.eta(seen(20, 110.0), now=115.0) == pytest.approx(15.0)  # time passes between writes
    assert rates.eta(seen(2, 120.0, "epoch 5"), now=120.0) is None  # a new phase starts over


def test_thinning_keeps_each_buckets_extremes() -> None:
    steps = np.arange(10_000, dtype=float)
    values = np.zeros(10_000)
    values[4321] = 9.0  # one spike in a flat loss curve
    xs, ys = reads.thin(steps, values, limit=100)
    assert len(xs) <= 100 and 9.0 in ys and xs[ys.index(9.0)] == 4321.0




# ------------------------------------------------------------------------------------------ app, palette, cli
async def test_palette_offers_what_the_current_screen_offers(ws) -> None:
    workspace, ids = ws
    app = make_app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(RunTable)
        table.select_key(ids["done"])  # a succeeded run: nothing to cancel, retry or reorder
        await settle(app, pilot)
        done = {name for name, _, _ in ScreenCommands(app.screen)._commands()}
        assert {"Engine", "Builder", "Results", "Quit", "Open"} <= done
        assert not {"Cancel", "Retry", "Priority +1"} & done
        table.select_key(ids["queued"])
        await settle(app, pilot)
        queue = {name for name, _, _ in ScreenCommands(app.screen)._commands()}
        assert {"Cancel", "Priority +1", "Pause"} <= queue and "Retry" not in queue
        await pilot.press("1")
        await settle(app, pilot)
        builder = {name for name, _, _ in ScreenCommands(app.screen)._commands()}
        assert "Enqueue" in builder and "Cancel" not in builder


async def test_a_missing_workspace_is_created_only_when_the_user_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "runs"
    app = make_app(missing)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert isinstance(app.screen, CreateWorkspaceScreen)
        assert not missing.exists()
        await pilot.press("q")
        await settle(app, pilot)
    assert not missing.exists()
    app = make_app(missing)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("y")
        await settle(app, pilot)
        assert not isinstance(app.screen, CreateWorkspaceScreen)
        assert app.snapshot is not None and app.snapshot.runs == []
    assert (missing / st.DB_NAME).is_file()


def _tui(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "ganaug_tui", *args], capture_output=True, text=True, env=env,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_a_damaged_store_is_one_line_and_exit_2_before_painting(tmp_path: Path) -> None:
    ws = tmp_path / "runs"
    ws.mkdir()
    (ws / st.DB_NAME).write_bytes(b"this is not an SQLite database" * 100)
    done = _tui("--workspace", str(ws))
    assert done.returncode == 2
    assert done.stderr.startswith("ganaug-tui: error: ") and len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""


def test_ganaug_tui_and_ganaug_tui_command_share_their_options() -> None:
    ours = _tui("--help")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    theirs = subprocess.run([sys.executable, "-c", "import sys; from engine.cli import main; "
                             "sys.argv = ['ganaug', 'tui', '--help']; main()"], capture_output=True, text=True,
                            env=env, timeout=60)
    for out in (ours.stdout, theirs.stdout):
        assert "--workspace" in out and "--read-only" in out and "--poll" in out


def test_a_store_with_a_corrupted_page_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    from test_store_safety import damaged_workspace

    from ganaug_tui.cli import main

    ws = tmp_path / "ws"
    damaged_workspace(ws)
    with pytest.raises(SystemExit) as exc:
        main(["--workspace", str(ws)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "is damaged" in err and ".recover" in err


def test_a_narrow_live_screen_puts_several_aucs_on_a_line() -> None:
    from ganaug_tui.screens.live import result_lines

    result = {"auc": {"isic19": 0.81, "isic20": 0.72, "derm7pt-derm": 0.69, "dermofit": 0.7}, "val_auc": 0.85}
    wide, narrow = result_lines("classify", result), result_lines("classify", result, per_row=3)
    assert len(wide) == 1 + 5 and len(narrow) == 1 + 2
    assert narrow[1].split() == ["isic19", "0.8100", "isic20", "0.7200", "derm7pt-derm", "0.6900"]
    assert narrow[2].split() == ["dermofit", "0.7000", "validation", "0.8500"]
