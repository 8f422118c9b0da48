"""Version folders: which entries are versions, the next number, atomic publishing."""

from __future__ import annotations

import os

import pytest

from core import version_dirs


def _make(base, *names, files=()):
    for name in names:
        os.makedirs(base / name, exist_ok=True)
    for name in files:
        (base / name).write_text("x")


def test_only_integer_folders_are_versions(tmp_path):
    _make(tmp_path, "3", "10", ".tmp-11-99", "abc", "٣", files=("12",))
    assert version_dirs.versions(str(tmp_path)) == [3, 10]
    assert version_dirs.version_dirs(str(tmp_path)) == {3: str(tmp_path / "3"), 10: str(tmp_path / "10")}
    assert version_dirs.newest_version_dir(str(tmp_path)) == str(tmp_path / "10")


def test_a_missing_base_path_has_no_versions(tmp_path):
    assert version_dirs.versions(str(tmp_path / "nothing")) == []
    assert version_dirs.newest_version_dir(str(tmp_path / "nothing")) is None
    (tmp_path / "file").write_text("x")
    assert version_dirs.versions(str(tmp_path / "file")) == []


def test_versions_beyond_int64_are_ignored(tmp_path):
    _make(tmp_path, str(2 ** 63 - 1), str(2 ** 63))
    assert version_dirs.versions(str(tmp_path)) == [2 ** 63 - 1]


def test_the_next_version_is_the_clock_or_one_above_the_newest(tmp_path):
    assert version_dirs.next_version(str(tmp_path), now=500.7) == 500
    _make(tmp_path, "900")
    assert version_dirs.next_version(str(tmp_path), now=500.0) == 901
    assert version_dirs.next_version(str(tmp_path), now=1000.0) == 1000


def test_publishing_copies_through_a_hidden_folder(tmp_path):
    source = tmp_path / "model"
    source.mkdir()
    (source / "saved_model.pb").write_text("graph")
    base = tmp_path / "serving"
    seen = []
    version = version_dirs.publish_atomically(str(source), str(base), now=1234.0,
                                              prepare=lambda d: seen.append(os.path.basename(d)))
    assert version == 1234 and seen[0].startswith(".tmp-1234")
    assert (base / "1234" / "saved_model.pb").read_text() == "graph"
    assert sorted(os.listdir(base)) == ["1234"]


def test_a_failed_publish_leaves_no_folder_behind(tmp_path):
    source = tmp_path / "model"
    source.mkdir()
    (source / "saved_model.pb").write_text("graph")

    def fail(_):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        version_dirs.publish_atomically(str(source), str(tmp_path / "serving"), now=5.0, prepare=fail)
    assert os.listdir(tmp_path / "serving") == []
