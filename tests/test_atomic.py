"""autophase.atomic: the one atomic-write scheme every writer uses."""
import os

import pytest

from autophase.atomic import atomic_path, copy_file, is_part_name, part_name, write_json, write_text


def test_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a.json"
    write_text(p, "old")
    write_json(p, {"x": 1}, indent=1)
    assert p.read_text() == '{\n "x": 1\n}\n'
    assert [q.name for q in tmp_path.iterdir()] == ["a.json"]


def test_failure_leaves_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "r.txt"
    write_text(p, "complete")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert p.read_text() == "complete"
    assert [q.name for q in tmp_path.iterdir()] == ["r.txt"]


def test_temporary_is_hidden_recognisable_and_keeps_suffix(tmp_path):
    t = part_name(tmp_path / "slices.png", suffix=".png")
    assert t.name.startswith(".slices.png.part-") and t.name.endswith(".png") and str(os.getpid()) in t.name
    assert is_part_name(t.name) and not is_part_name("slices.png") and not is_part_name(".hidden")


def test_mode_is_set_before_the_rename(tmp_path):
    p = write_text(tmp_path / "job.sh", "#!/bin/sh\n", mode=0o755)
    assert p.stat().st_mode & 0o777 == 0o755


def test_copy_file_is_whole_or_leaves_the_old_copy(tmp_path):
    src = tmp_path / "src" / "ckpt.pt"
    src.parent.mkdir()
    src.write_bytes(b"state 1")
    dst = tmp_path / "kept" / "ckpt.pt"                   # its folder is made
    assert copy_file(src, dst, fsync=True) == dst and dst.read_bytes() == b"state 1"
    with pytest.raises(FileNotFoundError):
        copy_file(tmp_path / "src" / "absent.pt", dst)
    assert dst.read_bytes() == b"state 1"
    assert [q.name for q in dst.parent.iterdir()] == ["ckpt.pt"]
