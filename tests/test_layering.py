"""The house rule that keeps the engine headless: importing the CLI never pulls in the TUI or torch."""

from __future__ import annotations

import json
import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_engine_cli_never_imports_textual() -> None:
    mods = _modules_after("import engine.cli, engine.runner.kinds, engine.store, engine.data")
    assert not {m for m in mods if m == "textual" or m.startswith(("textual.", "ganaug_tui"))}


def test_cli_start_does_not_import_torch() -> None:
    """`ganaug runs list` / `--help` stay fast: torch and timm load only inside the commands that need them."""
    mods = _modules_after("import engine.cli")
    assert "torch" not in mods
    assert "timm" not in mods


def test_ganaug_tui_help_does_not_import_textual() -> None:
    """`ganaug tui` lives in the engine's CLI, but the UI (textual) loads only when the command runs."""
    mods = _modules_after("from engine.cli import app\ntry:\n    app(['tui', '--help'])\nexcept SystemExit:\n    pass")
    assert "engine.cli.tui" in mods
    assert not {m for m in mods if m == "textual" or m.startswith(("textual.", "ganaug_tui"))}
