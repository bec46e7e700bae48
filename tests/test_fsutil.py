"""Atomic writes: all or nothing, and readable by the team like any other file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.fsutil import atomic_path, atomic_write_json


def test_written_files_get_the_umask_permissions_not_mkstemps_0600(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        from engine.fsutil import current_umask

        current_umask.cache_clear()
        atomic_write_json(tmp_path / "result.json", {"auc": 0.5})
    finally:
        os.umask(old)
        current_umask.cache_clear()
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == 0o640


def test_a_failed_write_leaves_neither_file_nor_temp(tmp_path: Path) -> None:
    target = tmp_path / "predictions.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]
