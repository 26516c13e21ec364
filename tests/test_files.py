"""bmcore.files: the one atomic writer, for a file and for a folder (issue 28)."""

import pytest

from bmcore.files import atomic_folder, atomic_path, write_text_atomic


def test_a_file_written_atomically_replaces_the_old_one_or_leaves_it(tmp_path):
    folder = tmp_path / "out"  # tmp_path also holds the test workspace
    folder.mkdir()
    target = folder / "card.md"
    write_text_atomic(target, "first")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer died")
    assert target.read_text() == "first" and [p.name for p in folder.iterdir()] == ["card.md"]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"second")
    assert target.read_text() == "second" and [p.name for p in folder.iterdir()] == ["card.md"]


def test_a_folder_is_swapped_in_whole(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    target = folder / "model"
    with atomic_folder(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(OSError), atomic_folder(target) as tmp:
        (tmp / "a").write_text("half")
        raise OSError(5, "Input/output error")
    assert (target / "a").read_text() == "1" and [p.name for p in folder.iterdir()] == ["model"]
    with atomic_folder(target) as tmp:
        (tmp / "b").write_text("2")
    assert [p.name for p in target.iterdir()] == ["b"] and [p.name for p in folder.iterdir()] == ["model"]
    with atomic_folder(target, keep_existing=True) as tmp:  # another process filled it first: that one stays
        (tmp / "c").write_text("3")
    assert [p.name for p in target.iterdir()] == ["b"] and [p.name for p in folder.iterdir()] == ["model"]
