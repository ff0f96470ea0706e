"""Atomic folders: a reader sees the old folder or the whole new one, and a failure leaves the old one."""
import pytest

from pipeline.common.atomic import atomic_folder, atomic_write_text


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
