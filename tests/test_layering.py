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


def test_ganaug_tui_command_hands_over_to_the_ui_program() -> None:
    """`ganaug tui` replaces its process with ganaug-tui: the engine's command itself imports no UI."""
    mods = _modules_after("import engine.cli.tui, typer.main\nfrom engine.cli import app\ntyper.main.get_command(app)")
    assert not {m for m in mods if m == "textual" or m.startswith(("textual.", "ganaug_tui"))}
    out = subprocess.run([sys.executable, "-c", "import sys; from engine.cli import main; "
                          "sys.argv = ['ganaug', 'tui', '--poll', '0']; main()"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("ganaug-tui: error: ") and "--poll" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
