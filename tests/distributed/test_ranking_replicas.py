"""The ranking model under a multi-replica strategy: loss over the GLOBAL batch.

Keras refuses its AUTO loss reduction inside a tf.distribute replica context, and a per-replica
mean would weigh replicas wrongly. `RankingModel` sums the per-example squared errors of its
replica and divides by the global batch size, and regularisation losses are divided by the
number of replicas, so 2 logical CPU replicas reproduce single-device training (the
`replica_run` fixture of conftest.py runs the comparison in its own process).
"""

from __future__ import annotations

import numpy as np
import pytest

from core import features as F
from tests.distributed.conftest import BATCHES


@pytest.mark.slow
@pytest.mark.parametrize("batch", BATCHES)
def test_two_replicas_give_the_single_device_loss_and_gradients(replica_run, batch):
    run = replica_run["ranking"][batch]
    assert run["loss"] == pytest.approx(run["single_loss"], rel=1e-5)
    # the L2 penalty on the embeddings is counted once, not once per replica
    assert run["total_loss"] == pytest.approx(run["single_total_loss"], rel=1e-5)
    assert run["total_loss"] > run["loss"]
    assert run["max_grad_diff"] <= 1e-5 * run["max_grad"]


@pytest.mark.slow
@pytest.mark.parametrize("batch", BATCHES)
def test_distributed_fit_steps_equal_the_single_device_steps(replica_run, batch):
    run = replica_run["ranking"][batch]
    assert run["fit_steps"] >= 3
    assert run["fit_max_weight_change"] > 0.1
    assert run["fit_max_weight_diff"] <= 1e-5 * run["fit_max_weight_change"]
    for key in ("loss", "regularization_loss", "rmse"):  # what fit reports, summed over replicas
        mirrored, single = run[f"fit_{key}"]
        assert mirrored == pytest.approx(single, rel=1e-4), key


def _vocab():
    from trainer.towers import Vocabularies

    return Vocabularies(users=10, items=8, genders=3, occupations=3, genres=5, title_tokens=9,
                        age_buckets=7, year_buckets=4)


def test_one_device_loss_is_the_batch_mean_squared_error():
    import tensorflow as tf

    from tests.distributed.replica_check import sample_features
    from trainer import towers
    from trainer.model import RankingModel, _select

    tf.keras.utils.set_random_seed(2)
    model = RankingModel(towers.build_ranking_model(_vocab(), 8, (8,), 1, embedding_l2=0.1))
    batch = {k: tf.constant(v) for k, v in sample_features(9, _vocab(), seed=4).items()}
    predictions = model.network(_select(batch, model.network)).numpy()
    expected = np.mean((predictions - batch[F.RATING_XF].numpy()) ** 2)
    loss = model.compute_loss(batch)
    assert loss.dtype == tf.float32 and loss.shape == ()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    penalty = sum(float(tf.reduce_sum(x)) for x in model.losses)
    assert penalty > 0 and float(model.regularization_loss()) == pytest.approx(penalty, rel=1e-6)
