"""Training steps under the mixed_float16 policy: loss scaling and a float32 loss (on CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from core import features as F
from trainer import distribution as D
from trainer.config import TrainerConfig

BATCH = 128


def _vocab():
    from trainer.towers import Vocabularies

    return Vocabularies(users=10, items=8, genders=3, occupations=3, genres=5, title_tokens=9,
                        age_buckets=7, year_buckets=4)


@pytest.fixture
def restore_policy():
    import tensorflow as tf

    previous = tf.keras.mixed_precision.global_policy()
    yield
    tf.keras.mixed_precision.set_global_policy(previous)
    assert tf.keras.mixed_precision.global_policy().name == previous.name


def _batch(seed: int):
    import tensorflow as tf

    from tests.distributed.replica_check import sample_features

    return {k: tf.constant(v) for k, v in sample_features(BATCH, _vocab(), seed=seed).items()}


def test_build_under_mixed_float16_wraps_the_optimizers(restore_policy):
    import tensorflow as tf

    from trainer import train

    # The towers normalise in float32 (see the zero-vector test below).
    tf.keras.utils.set_random_seed(1)
    cfg = TrainerConfig(embedding_dim=8, tower_layers=(), ranking_layers=(8,), mixed_precision="mixed_float16")
    with D.precision_scope(D.resolve_precision(cfg.mixed_precision, "CPU")):
        retrieval = train.build_retrieval(_vocab(), cfg, np.full(8, 1 / 8, np.float32))
        ranking = train.build_ranking(_vocab(), cfg)
    assert tf.keras.mixed_precision.global_policy().name == "float32", "the scope must restore it"
    for model in (retrieval, ranking):
        assert isinstance(model.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert ranking.network.get_layer("rating").compute_dtype == "float16"
    for model in (retrieval, ranking):
        logs = model.fit(tf.data.Dataset.from_tensors(_batch(1)), epochs=1, verbose=0).history
        assert np.isfinite(logs["loss"][0]) and np.isfinite(logs["total_loss"][0])
        loss = model.compute_loss(_batch(2), training=True)
        assert loss.dtype == tf.float32 and np.isfinite(loss.numpy())


def test_train_step_scales_the_loss_so_small_float16_gradients_survive(restore_policy):
    """A residual of 2**-20 per example: its gradient (2 * 2**-20 / 128 = 2**-26) underflows to 0
    in float16 unless the loss is scaled (x 2**15) before differentiation; unscaled afterwards,
    one SGD step moves the output bias by exactly lr * 2 * mean residual."""
    import tensorflow as tf

    from trainer import towers
    from trainer.model import RankingModel, _select

    tf.keras.utils.set_random_seed(4)
    with D.precision_scope("mixed_float16"):
        network = towers.build_ranking_model(_vocab(), 8, (8,), 1, low_rank=4)
    # The model and its optimizer are made outside the scope: compile still wraps the optimizer,
    # since the network computes in float16.
    model = RankingModel(network)
    model.compile(optimizer=tf.keras.optimizers.SGD(1e5))
    assert isinstance(model.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    batch = _batch(3)
    predictions = tf.cast(network(_select(batch, network)), tf.float32)
    batch[F.RATING_XF] = predictions + 2.0**-20
    residual = float(np.mean(batch[F.RATING_XF].numpy() - predictions.numpy()))
    assert residual == pytest.approx(2.0**-20, rel=1e-3)
    bias = network.get_layer("rating").bias
    before = bias.numpy().copy()
    logs = model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0]) and logs["loss"][0] < 1e-10
    step = bias.numpy() - before
    np.testing.assert_allclose(step, 1e5 * 2 * residual, rtol=1e-2)


def test_mixed_float16_ranking_loss_is_float32_from_float16_predictions(restore_policy):
    import tensorflow as tf

    from trainer import towers
    from trainer.model import RankingModel

    with D.precision_scope("mixed_float16"):
        model = RankingModel(towers.build_ranking_model(_vocab(), 8, (8,), 1))
    assert model.network.output.dtype == tf.float16
    loss = model.compute_loss(_batch(5))
    assert loss.dtype == tf.float32 and np.isfinite(loss.numpy())


def test_tower_output_is_finite_for_a_zero_vector_under_mixed_float16(restore_policy):
    import tensorflow as tf

    from trainer import towers
    from trainer.model import _select

    with D.precision_scope("mixed_float16"):
        tower = towers.build_query_tower(_vocab(), 8, (8,))
    output = tower.get_layer("query_output")
    output.set_weights([np.zeros_like(w) for w in output.get_weights()])  # e.g. every ReLU unit off
    embeddings = tower(_select(_batch(6), tower))
    assert np.all(np.isfinite(tf.cast(embeddings, tf.float32).numpy()))
