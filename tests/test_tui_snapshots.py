"""SVG snapshots of every screen at 80x24 and 160x48 on the deterministic fixture workspace.

Update them after a deliberate change with ``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at
the report; the half-cell image renderer and a pinned clock keep them independent of the terminal and the day.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_fixtures import NOW, add_results_experiments, make_workspace

from ganaug_tui.app import GanaugApp

SIZES = ((80, 24), (160, 48))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One workspace for all snapshots: these screens only read it."""
    ws = tmp_path_factory.mktemp("snapshots") / "runs"
    return ws, make_workspace(ws)


@pytest.fixture(scope="module")
def made_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The same runs and two submitted experiments with AUCs to analyse (the Results screen's)."""
    ws = tmp_path_factory.mktemp("snapshots-results") / "runs"
    ids = make_workspace(ws)
    add_results_experiments(ws)
    return ws, ids


@pytest.fixture
def workspace(made, made_results, request: pytest.FixtureRequest,
              monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str]]:
    chosen = made_results if request.node.callspec.params.get("screen") == "results" else made
    monkeypatch.chdir(chosen[0].parent)  # the status line shows the workspace as "runs"
    monkeypatch.setenv("GANAUG_TUI_IMAGES", "halfcell")
    return chosen


def _before(key: str | None, run: str | None = None):
    async def run_before(pilot) -> None:
        app = pilot.app
        for _ in range(3):
            await pilot.pause()
            await app.workers.wait_for_complete()
        if run is not None:
            app.selected_run = run
        if key is not None:
            await pilot.press(key)
        for _ in range(4):
            await pilot.pause()
            await app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


CASES = [(screen, size) for screen in ("builder", "queue", "live", "preview", "results") for size in SIZES]
CASES.append(("live-gan", (160, 48)))  # a GAN run: its curves and latest sample grid


@pytest.mark.parametrize(("screen", "size"), CASES, ids=[f"{s}-{w}x{h}" for s, (w, h) in CASES])
def test_screen(screen: str, size: tuple[int, int], workspace, snap_compare) -> None:
    ws, ids = workspace
    app = GanaugApp(ws, poll_s=60, clock=lambda: NOW, gpu=False)
    key, run = {"builder": ("1", None), "queue": (None, None), "live": ("3", ids["done"]),
                "live-gan": ("3", ids["gan"]), "preview": ("4", None), "results": ("5", None)}[screen]
    assert snap_compare(app, terminal_size=size, run_before=_before(key, run))
