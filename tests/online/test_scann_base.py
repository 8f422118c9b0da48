"""The learner on a base whose pushed model retrieves through a ScaNN index (skipped without scann).

Online versions retrieve by brute force: the learner says so in one line at start, and its
versions hold no ScaNN op.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scann")

from online.artifacts import SCANN_NOTE  # noqa: E402
from tests.online.learner_helpers import start_learner  # noqa: E402


@pytest.fixture
def scann_saved_model(tmp_path):
    """A small SavedModel whose one signature searches a ScaNN index (as a pushed ScaNN model does)."""
    import tensorflow as tf

    from trainer.retrieval_index import RetrievalIndexConfig
    from trainer.scann_serving_model import SCANN_NAMESPACE, build_index, uses_scann_index

    module = tf.Module()
    module.index = build_index(np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32), 3,
                               RetrievalIndexConfig(kind="scann"))
    search = tf.function(lambda query: module.index(query, k=3), input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    path = str(tmp_path / "pushed")
    tf.saved_model.save(module, path, signatures={"search": search},
                        options=tf.saved_model.SaveOptions(namespace_whitelist=[SCANN_NAMESPACE]))
    assert uses_scann_index(path)
    return path


def test_on_a_scann_base_the_learner_says_its_versions_retrieve_by_brute_force(workspace, tiny_base, capsys,
                                                                               scann_saved_model):
    from trainer.scann_serving_model import uses_scann_index

    learner = start_learner(workspace, tiny_base, pushed_model_dir=scann_saved_model)
    lines = [line for line in capsys.readouterr().out.splitlines() if "ScaNN" in line]
    assert lines == [f"[learn] {SCANN_NOTE}"]
    version = learner.export()
    assert version is not None and not uses_scann_index(str(workspace / "serving" / str(version)))

