"""Test session set-up shared by every test package."""

import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


def pytest_configure(config: pytest.Config) -> None:
    # TF-MOT and TFRS need Keras 2 (tf-keras); this must be set before TensorFlow is imported,
    # which happens only when test modules are collected, after this hook.
    from core.process import set_up_process

    set_up_process()


@pytest.fixture(scope="session")
def ml_latest_small() -> pathlib.Path:
    """The MovieLens latest-small folder from ../shared, or a skip when it is absent."""
    path = SHARED_DATASETS / "ml-latest-small"
    if not (path / "ratings.csv").exists():
        pytest.skip(f"MovieLens latest-small not found at {path}; the test needs ../shared/datasets")
    return path


@pytest.fixture
def remote_dir():
    """A fresh folder on TensorFlow's in-memory filesystem (`ram://`).

    Local file APIs cannot see it, like the gs:// artifact URIs of Kubeflow / Vertex: code that
    writes there correctly goes through tf.io.gfile. The filesystem is shared by the process.
    """
    import uuid

    import tensorflow as tf

    path = f"ram://some/dir/{uuid.uuid4().hex}"
    yield path
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)
