"""Atomic writes: all or nothing, and readable by the team like any other file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.fsutil import atomic_path, atomic_write_json, current_umask


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


def test_only_temporary_folders_of_dead_owners_are_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    from engine.fsutil import owned_tempdir, remove_stale_tempdirs

    code = ("import sys; from pathlib import Path; from engine.fsutil import owned_tempdir; "
            "print(owned_tempdir(Path(sys.argv[1]), '.demo.tmp'))")
    killed = Path(subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                                 check=True, env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[1])}
                                 ).stdout.strip())  # its process has exited, as a SIGKILLed render would
    (killed / "isic2019").mkdir()
    live = owned_tempdir(tmp_path, ".demo.tmp")  # this process: alive
    legacy = tmp_path / ".demo.tmp-abc123"  # no owner in the name: nobody can tell, so it stays
    legacy.mkdir()
    other = tmp_path / ".other.tmp-x"
    other.mkdir()
    assert killed.is_dir() and live.stat().st_mode & 0o777 == 0o777 & ~current_umask()
    assert remove_stale_tempdirs(tmp_path, ".demo.tmp") == [killed]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, legacy.name, other.name])
