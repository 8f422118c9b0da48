"""Atomic, monotonic, idempotent publishing of model versions."""

import os

import pytest

from components import push_model
from core import version_dirs


def _model(tmp_path, name="model"):
    path = tmp_path / name
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"graph")
    (path / "variables" / "variables.index").write_bytes(b"index")
    return str(path)


def test_versions_increase_even_within_one_second(tmp_path):
    base = str(tmp_path / "serving")
    first = push_model.publish_atomically(_model(tmp_path, "a"), base, now=1000.0)
    second = push_model.publish_atomically(_model(tmp_path, "b"), base, now=1000.0)
    assert os.path.basename(first) == "1000" and os.path.basename(second) == "1001"
    # An older clock never goes back on a version.
    third = push_model.publish_atomically(_model(tmp_path, "c"), base, now=5.0)
    assert os.path.basename(third) == "1002"
    assert version_dirs.versions(base) == [1000, 1001, 1002]


def test_publish_copies_everything_and_leaves_no_temp_dir(tmp_path):
    base = tmp_path / "serving"
    target = push_model.publish_atomically(_model(tmp_path), str(base), now=42.0)
    assert open(os.path.join(target, "saved_model.pb"), "rb").read() == b"graph"
    assert os.path.exists(os.path.join(target, "variables", "variables.index"))
    assert sorted(os.listdir(base)) == ["42"]


def test_the_same_model_is_not_published_twice(tmp_path):
    base = str(tmp_path / "serving")
    model = _model(tmp_path)
    first = push_model.publish_atomically(model, base, now=10.0)
    again = push_model.publish_atomically(model, base, now=20.0)
    assert again == first and version_dirs.versions(base) == [10]
    other = push_model.publish_atomically(_model(tmp_path, "other"), base, now=30.0)
    assert os.path.basename(other) == "30"


def test_failed_copy_leaves_no_partial_version(tmp_path, monkeypatch):
    base = tmp_path / "serving"

    def broken_rename(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(push_model.os, "rename", broken_rename)
    with pytest.raises(OSError, match="disk full"):
        push_model.publish_atomically(_model(tmp_path), str(base), now=7.0)
    assert os.listdir(base) == []
