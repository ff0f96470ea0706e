"""Atomic folders: a reader sees the old folder or the whole new one, and a failure leaves the old one."""
import pytest

from pipeline.common.atomic import atomic_folder, atomic_path, atomic_write_text


def test_a_finished_folder_replaces_the_old_one_whole(tmp_path):
    final = tmp_path / "ckpt"
    atomic_write_text(final / "a.txt", "old")
    with atomic_folder(final) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("new")
        assert (final / "a.txt").read_text() == "old"  # untouched until the swap
    assert sorted(p.relative_to(final).as_posix() for p in final.rglob("*")) == ["sub", "sub/b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary or old folder left


def test_a_failed_write_keeps_the_old_folder_and_leaves_nothing_behind(tmp_path):
    final = tmp_path / "ckpt"
    atomic_write_text(final / "a.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_folder(final) as tmp:
            (tmp / "half.txt").write_text("partial")
            raise RuntimeError("killed mid-write")
    assert [p.name for p in final.iterdir()] == ["a.txt"] and [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_sweep_removes_what_killed_writers_left_and_nothing_a_live_one_holds(tmp_path):
    import subprocess
    import sys

    from pipeline.common.atomic import sweep_temporaries

    # a writer killed with SIGKILL mid-write: its temporary stays behind
    script = ("import os, signal, sys; sys.path.insert(0, '.'); from pathlib import Path; "
              "from pipeline.common.atomic import atomic_path\n"
              f"with atomic_path(Path({str(tmp_path)!r}) / 'part-1.parquet') as tmp:\n"
              "    tmp.write_bytes(b'half'); os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", script], check=False)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".part-1.parquet.") and left[0].endswith(".tmp")
    with atomic_path(tmp_path / "mine.txt") as mine:  # a live writer's temporary is never touched
        mine.write_text("x")
        assert sweep_temporaries(tmp_path) == [tmp_path / left[0]]
        assert mine.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
