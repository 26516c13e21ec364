"""bmcore.files: the one atomic writer, for a file and for a folder (issue 28); the one JSON-lines appender and reader."""

import pytest

from bmcore.errors import BmcoreError
from bmcore.files import append_json_lines, atomic_folder, atomic_path, read_json_lines, write_text_atomic


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


def test_a_line_torn_by_a_crash_costs_no_later_line(tmp_path):
    path = tmp_path / "labels.jsonl"

    def check(record):
        return None if isinstance(record, dict) and isinstance(record.get("row"), int) else "is no label"

    append_json_lines(path, [{"row": 1}, {"row": 2}])
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"row": 3, "la')  # the writer was killed mid-write: never confirmed
    assert read_json_lines(path, "labels", check) == [{"row": 1}, {"row": 2}]
    append_json_lines(path, [{"row": 4}])  # the next write starts on a line of its own
    assert read_json_lines(path, "labels", check) == [{"row": 1}, {"row": 2}, {"row": 4}]
    append_json_lines(path, [["not", "a", "label"]])
    with pytest.raises(BmcoreError, match=r"^labels is damaged: line 5 is no label$"):
        read_json_lines(path, "labels", check)
    assert read_json_lines(tmp_path / "missing.jsonl", "labels", check) == []
