"""The TUI is a view over the store: it shows what the store holds and acts only through store commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import store as st
from ganaug_tui.app import GanaugApp
from ganaug_tui.widgets.run_detail import RunDetailPane
from ganaug_tui.widgets.runs_table import RunsTable


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "runs"
    store = st.open_store(ws)
    done = store.create_run("count", {"n": 3}, label="baseline 1:0")
    store.claim(done, slot="cpu0", engine_pid=None)
    store.write_metrics(done, [("val_auc", step, 0.5 + 0.1 * step, 0.0) for step in range(3)])
    store.finish(done, st.SUCCEEDED)
    store.create_run("count", {"n": 5}, label="1:1/2 sgn")
    store.close()
    return ws


async def _settle(app: GanaugApp, pilot) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_shows_runs_and_selected_run_metrics(workspace: Path) -> None:
    app = GanaugApp(workspace, poll_s=60)
    async with app.run_test(size=(140, 40)) as pilot:
        await _settle(app, pilot)
        table = app.query_one(RunsTable)
        assert table.row_count == 2
        statuses = {str(table.get_cell(k, "status")) for k in table.rows}
        assert statuses == {"succeeded", "queued"}
        await _settle(app, pilot)
        summary = str(app.query_one(RunDetailPane).query_one("#summary").render())
        assert "baseline 1:0" in summary and "val_auc 0.7" in summary


async def test_cancel_goes_through_the_store(workspace: Path) -> None:
    app = GanaugApp(workspace, poll_s=60)
    async with app.run_test(size=(140, 40)) as pilot:
        await _settle(app, pilot)
        await pilot.press("down")  # the queued run
        await pilot.press("c")
        await _settle(app, pilot)
    store = st.open_store(workspace)
    assert {r.label: r.status for r in store.list_runs()} == {"baseline 1:0": "succeeded", "1:1/2 sgn": "cancelled"}


async def test_refresh_follows_the_store(workspace: Path) -> None:
    app = GanaugApp(workspace, poll_s=60)
    async with app.run_test(size=(140, 40)) as pilot:
        await _settle(app, pilot)
        store = st.open_store(workspace)
        queued = store.list_runs(status=st.QUEUED)[0].id
        store.request_cancel(queued)
        store.create_run("count", {"n": 1}, label="new one")
        store.close()
        await pilot.press("r")
        await _settle(app, pilot)
        table = app.query_one(RunsTable)
        assert table.row_count == 3
        assert str(table.get_cell(queued, "status")) == "cancelled"


async def test_a_run_removed_under_the_selection_does_not_crash_the_app(workspace: Path) -> None:
    """Another shell's `ganaug runs rm` can remove a run between a refresh and its detail load."""
    app = GanaugApp(workspace, poll_s=60)
    async with app.run_test(size=(140, 40)) as pilot:
        await _settle(app, pilot)
        app.load_detail("20991231-0000-no-such-run")
        await _settle(app, pilot)
        assert app.is_running and app.return_code is None


def test_a_damaged_store_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    from test_store_safety import damaged_workspace

    from ganaug_tui.app import main

    ws = tmp_path / "ws"
    damaged_workspace(ws)
    with pytest.raises(SystemExit) as exc:
        main(["--workspace", str(ws)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "is damaged" in err and ".recover" in err
