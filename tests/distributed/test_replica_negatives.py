"""Cross-replica in-batch negatives: 2 logical CPU replicas train the single-device loss.

The two-replica comparison runs in its own process (`tests.distributed.replica_check`, the
`replica_run` fixture of conftest.py), since logical devices must be configured before
TensorFlow initialises its devices.
"""

from __future__ import annotations

import numpy as np
import pytest

from core import features as F
from tests.distributed.conftest import BATCHES


@pytest.mark.slow
def test_runs_on_two_replicas_with_even_and_uneven_batches(replica_run):
    assert replica_run["replicas"] == 2
    assert replica_run["8"]["local_sizes"] == [4, 4]
    assert replica_run["7"]["local_sizes"] == [4, 3]


@pytest.mark.slow
@pytest.mark.parametrize("batch", BATCHES)
def test_gathered_negatives_give_the_single_device_loss_and_gradients(replica_run, batch):
    run = replica_run[batch]
    assert run["gathered_loss"] == pytest.approx(run["single_loss"], rel=1e-5)
    assert run["gathered_max_grad_diff"] <= 1e-5 * run["max_grad"]


@pytest.mark.slow
@pytest.mark.parametrize("batch", BATCHES)
def test_per_replica_negatives_optimise_a_different_loss(replica_run, batch):
    # The known pitfall, and proof that the comparison above can fail.
    run = replica_run[batch]
    assert run["per_replica_loss"] < 0.9 * run["single_loss"]
    assert run["per_replica_max_grad_diff"] > 1e-2 * run["max_grad"]


@pytest.mark.slow
def test_one_distributed_fit_step_equals_the_single_device_step(replica_run):
    run = replica_run["8"]
    assert run["fit_max_weight_change"] > 1.0
    assert run["fit_max_weight_diff"] <= 1e-5 * run["fit_max_weight_change"]


def test_gather_is_the_identity_on_one_replica():
    import tensorflow as tf

    from trainer.replica_negatives import gather_across_replicas

    candidates = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    ids = tf.constant([3, 4], tf.int64)
    (out, out_ids, missing), offset = gather_across_replicas(candidates, [ids, None])
    assert missing is None and int(offset) == 0
    np.testing.assert_array_equal(out.numpy(), candidates.numpy())
    np.testing.assert_array_equal(out_ids.numpy(), ids.numpy())


def test_gather_rejects_misaligned_tensors():
    import tensorflow as tf

    from trainer.replica_negatives import gather_across_replicas

    with pytest.raises(ValueError, match="does not match candidates"):
        gather_across_replicas(tf.zeros([2, 4]), [tf.zeros([3], tf.int64)])


@pytest.mark.parametrize("temperature, logq, hits", [(None, False, False), (0.1, True, True), (0.5, False, True)])
def test_loss_equals_the_tfrs_retrieval_task(temperature, logq, hits):
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    from trainer.replica_negatives import in_batch_softmax_loss

    rng = np.random.default_rng(3)
    query = tf.constant(rng.normal(size=(16, 8)), tf.float32)
    candidates = tf.constant(rng.normal(size=(16, 8)), tf.float32)
    ids = tf.constant(rng.integers(0, 5, 16))  # repeated items: accidental hits happen
    probabilities = tf.constant(rng.uniform(0.01, 0.5, 16), tf.float32) if logq else None
    task = tfrs.tasks.Retrieval(temperature=temperature, remove_accidental_hits=hits)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([query, candidates])
        expected = task(query, candidates, candidate_sampling_probability=probabilities,
                        candidate_ids=ids if hits else None, compute_metrics=False)
        loss = in_batch_softmax_loss(query, candidates, ids, probabilities, temperature, hits)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    for mine, theirs in zip(tape.gradient(loss, [query, candidates]), tape.gradient(expected, [query, candidates])):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5)


def test_accidental_hit_removal_needs_ids():
    import tensorflow as tf

    from trainer.replica_negatives import in_batch_softmax_loss

    with pytest.raises(ValueError, match="needs the candidate ids"):
        in_batch_softmax_loss(tf.zeros([2, 3]), tf.zeros([2, 3]), remove_accidental_hits=True)


def _identity_towers():
    """Towers whose embedding is a fixed one-hot row per user / item, so logits are known."""
    import tensorflow as tf

    def tower(name: str, table: np.ndarray) -> tf.keras.Model:
        inputs = {name: tf.keras.Input(shape=(), name=name, dtype=tf.int64)}
        layer = tf.keras.layers.Embedding(table.shape[0], table.shape[1], trainable=False)
        out = layer(inputs[name])
        model = tf.keras.Model(inputs, out)
        layer.set_weights([table])
        return model

    users = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    items = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, -1.0]], np.float32)
    return tower(F.USER_ID_XF, users), tower(F.ITEM_ID_XF, items), users, items


def test_loss_is_the_sum_over_queries_with_logq_and_accidental_hits():
    # The gradient argument of replica_negatives relies on a SUM over the local queries.
    from trainer.model import RetrievalModel

    query, candidate, users, items = _identity_towers()
    probabilities = np.array([0.5, 0.25, 0.25], np.float32)
    model = RetrievalModel(query, candidate, item_probabilities=probabilities, temperature=0.5,
                           remove_accidental_hits=True)
    user_ids, item_ids = np.array([0, 1, 2, 2]), np.array([0, 1, 0, 2])
    loss = float(model.compute_loss({F.USER_ID_XF: user_ids, F.ITEM_ID_XF: item_ids}))

    logits = users[user_ids] @ items[item_ids].T / 0.5 - np.log(probabilities[item_ids])[None, :]
    expected = 0.0
    for row in range(4):
        keep = [c for c in range(4) if c == row or item_ids[c] != item_ids[row]]
        expected += np.log(np.exp(logits[row, keep]).sum()) - logits[row, row]
    assert loss == pytest.approx(expected, rel=1e-5)
