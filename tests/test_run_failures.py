"""What can only be found while a run runs (a truncated image met while caching) ends it with a one-line
``exit_reason`` naming the file, printed by the foreground command instead of a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from test_engine import FAST_ENV, GANAUG
from test_train_e2e import RES, write_csv_set

from engine import store as st


def test_a_truncated_image_met_while_running_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    data = write_csv_set(tmp_path / "set", 40, 3)
    broken = data / "img3_0007.png"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])  # readable header, cut-off pixels
    ws = tmp_path / "ws"
    env = os.environ | FAST_ENV | {"GANAUG_WORKSPACE": str(ws)}
    proc = subprocess.run([GANAUG, "train", "--data", str(data), "--format", "csv", "--model", "test_resnet",
                           "--res", str(RES), "--no-pretrained", "--epochs", "1", "--tta", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Error:" not in proc.stderr
    with st.open_store(ws, create=False) as s:
        (run,) = s.list_runs()
    assert run.status == st.FAILED and str(broken) in run.exit_reason and "truncated" in run.exit_reason
    assert "\n" not in run.exit_reason and not run.exit_reason.startswith("engine.errors")
    assert f"run {run.id} failed ({run.exit_reason})" in proc.stderr  # the command's last word is that line
    assert "Traceback" not in (ws / run.id / "log.txt").read_text()

