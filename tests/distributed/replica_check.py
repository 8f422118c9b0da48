"""Compares the models' losses and gradients on 2 logical CPU replicas with those on one device.

Run in its own process (logical devices must be configured before TensorFlow initialises them):

    python -m tests.distributed.replica_check --global-batches 8,7

Prints one JSON object with, per global batch size, the single-device loss, the summed
per-replica losses with gathered and with per-replica negatives, the largest gradient
differences, and (for the first batch size) the largest weight difference after one Keras `fit`
step with SGD in each setting; under "ranking", the same for the DCN ranking model (mean
squared error over the global batch, L2-regularised embeddings) over a few `fit` steps; under
"multitask" (only with `--models multitask`), the same for the multitask model (rating +
retrieval on shared towers).
"""

from __future__ import annotations

import argparse
import functools
import json
from typing import Dict, List

import numpy as np

from core import features as F


def sample_features(batch: int, vocab, seed: int) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        F.USER_ID_XF: rng.integers(0, vocab.users, batch),
        F.USER_AGE_XF: rng.integers(0, vocab.age_buckets, batch),
        F.USER_GENDER_XF: rng.integers(0, vocab.genders, batch),
        F.USER_OCCUPATION_XF: rng.integers(0, vocab.occupations, batch),
        F.USER_HISTORY: rng.integers(0, vocab.items + 1, (batch, F.HISTORY_LENGTH)),  # item index + 1, 0 pads
        F.TIMESTAMP_XF: rng.random(batch).astype(np.float32),
        # few distinct items, so that accidental hits occur across replicas
        F.ITEM_ID_XF: rng.integers(0, 5, batch),
        F.ITEM_YEAR_XF: rng.integers(0, vocab.year_buckets, batch),
        F.ITEM_GENRES_XF: rng.integers(0, vocab.genres, (batch, F.MAX_GENRES)),
        F.ITEM_TITLE_XF: rng.integers(0, vocab.title_tokens, (batch, F.MAX_TITLE_TOKENS)),
        F.RATING_XF: rng.integers(1, 11, batch).astype(np.float32) / 2.0,
    }


def _build(vocab, cross_replica: bool, probabilities: np.ndarray):
    import tensorflow as tf

    from trainer import model as models
    from trainer import towers

    tf.keras.utils.set_random_seed(11)
    model = models.RetrievalModel(
        towers.build_query_tower(vocab, 8, (16,)),
        towers.build_candidate_tower(vocab, 8, (16,)),
        item_probabilities=probabilities,
        temperature=0.2,
        remove_accidental_hits=True,
        cross_replica_negatives=cross_replica,
    )
    model.compile(optimizer=tf.keras.optimizers.SGD(0.5))
    return model


def _dense(grads) -> List[np.ndarray]:
    import tensorflow as tf

    return [tf.convert_to_tensor(g).numpy() for g in grads]


def _compare(strategy, vocab, probabilities: np.ndarray, global_batch: int, with_fit: bool) -> Dict[str, object]:
    """Single-device vs distributed loss and gradients (and one `fit` step) on one global batch."""
    import tensorflow as tf

    batch = {k: tf.constant(v) for k, v in sample_features(global_batch, vocab, seed=global_batch).items()}
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(global_batch)
    single = _build(vocab, True, probabilities)
    initial = single.get_weights()
    with tf.GradientTape() as tape:
        single_loss = single.compute_loss(batch, training=True)
    single_grads = _dense(tape.gradient(single_loss, single.trainable_variables))
    results: Dict[str, object] = {
        "single_loss": float(single_loss),
        "max_grad": max(float(np.max(np.abs(g))) for g in single_grads),
    }
    inputs = next(iter(strategy.experimental_distribute_dataset(dataset)))
    for name, cross in (("gathered", True), ("per_replica", False)):
        with strategy.scope():
            model = _build(vocab, cross, probabilities)
            model.set_weights(initial)

        def step(features, model=model):
            with tf.GradientTape() as tape:
                loss = model.compute_loss(features, training=True)
            grads = tape.gradient(loss, model.trainable_variables)
            return loss, [tf.convert_to_tensor(g) for g in grads], tf.shape(features[F.ITEM_ID_XF])[0]

        loss, grads, sizes = strategy.run(tf.function(step), args=(inputs,))
        results[f"{name}_loss"] = float(strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None))
        summed = [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None).numpy() for g in grads]
        results[f"{name}_max_grad_diff"] = max(float(np.max(np.abs(a - b))) for a, b in zip(summed, single_grads))
        results["local_sizes"] = [int(s) for s in strategy.experimental_local_results(sizes)]
        if with_fit and cross:
            model.fit(dataset, epochs=1, verbose=0)
            single.fit(dataset, epochs=1, verbose=0)
            results["fit_max_weight_diff"] = max(
                float(np.max(np.abs(a - b))) for a, b in zip(model.get_weights(), single.get_weights())
            )
            results["fit_max_weight_change"] = max(
                float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), initial)
            )
    return results


def _build_ranking(vocab):
    import tensorflow as tf

    from trainer import model as models
    from trainer import towers

    tf.keras.utils.set_random_seed(13)
    network = towers.build_ranking_model(vocab, 8, (16,), cross_layers=1, low_rank=4, embedding_l2=0.01)
    model = models.RankingModel(network)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.05))
    return model


def _build_multitask(vocab, probabilities: np.ndarray):
    import tensorflow as tf

    from trainer import model as models
    from trainer import towers

    tf.keras.utils.set_random_seed(17)
    query = towers.build_query_tower(vocab, 8, (16,))
    candidate = towers.build_candidate_tower(vocab, 8, (16,))
    network = towers.build_shared_ranking_model(query, candidate, (16,), cross_layers=1, low_rank=4)
    model = models.MultitaskModel(
        query, candidate, network, rating_weight=0.5, retrieval_weight=1.5, item_probabilities=probabilities,
        temperature=0.2, remove_accidental_hits=True,
    )
    model.compile(optimizer=tf.keras.optimizers.SGD(0.05))
    return model


def _compare_ranking(strategy, vocab, global_batch: int, steps: int) -> Dict[str, object]:
    """Ranking: single-device vs 2-replica loss and gradients, then `steps` fit steps of each."""
    return _compare_model(strategy, vocab, global_batch, steps, _build_ranking, ("loss", "regularization_loss", "rmse"))


def _compare_model(strategy, vocab, global_batch: int, steps: int, build, fit_keys) -> Dict[str, object]:
    """Single-device vs 2-replica loss and gradients of `build(vocab)`, then `steps` fit steps of each."""
    import tensorflow as tf

    features = sample_features(global_batch * steps, vocab, seed=100 + global_batch)
    first = {k: tf.constant(v[:global_batch]) for k, v in features.items()}
    dataset = tf.data.Dataset.from_tensor_slices(features).batch(global_batch)
    single = build(vocab)
    initial = single.get_weights()

    def losses(model, batch):
        with tf.GradientTape() as tape:
            loss = model.compute_loss(batch, training=True)
            total = loss + model.regularization_loss()
        grads = tape.gradient(total, model.trainable_variables)
        return loss, total, [tf.convert_to_tensor(g) for g in grads]

    single_loss, single_total, single_grads = losses(single, first)
    single_grads = _dense(single_grads)
    with strategy.scope():
        mirrored = build(vocab)
        mirrored.set_weights(initial)
    inputs = next(iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(first).batch(global_batch))))
    loss, total, grads = strategy.run(tf.function(lambda batch: losses(mirrored, batch)), args=(inputs,))
    summed = [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None).numpy() for g in grads]
    results: Dict[str, object] = {
        "single_loss": float(single_loss),
        "single_total_loss": float(single_total),
        "loss": float(strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)),
        "total_loss": float(strategy.reduce(tf.distribute.ReduceOp.SUM, total, axis=None)),
        "max_grad": max(float(np.max(np.abs(g))) for g in single_grads),
        "max_grad_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(summed, single_grads)),
    }
    mirrored_fit = mirrored.fit(dataset, epochs=1, verbose=0).history
    single_fit = single.fit(dataset, epochs=1, verbose=0).history
    results["fit_steps"] = steps
    results["fit_max_weight_diff"] = max(
        float(np.max(np.abs(a - b))) for a, b in zip(mirrored.get_weights(), single.get_weights())
    )
    results["fit_max_weight_change"] = max(
        float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), initial)
    )
    for key in fit_keys:
        results[f"fit_{key}"] = [float(mirrored_fit[key][-1]), float(single_fit[key][-1])]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--global-batches", default="8,7", help="comma-separated global batch sizes")
    parser.add_argument("--models", default="retrieval,ranking", help="comma-separated: retrieval, ranking, multitask")
    args = parser.parse_args()
    chosen = args.models.split(",")
    from core.process import set_up_process

    set_up_process()
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from trainer.towers import Vocabularies

    vocab = Vocabularies(users=20, items=6, genders=3, occupations=4, genres=7, title_tokens=11,
                         age_buckets=7, year_buckets=5)
    probabilities = np.array([0.4, 0.2, 0.2, 0.1, 0.05, 0.05], np.float32)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results: Dict[str, object] = {"replicas": strategy.num_replicas_in_sync}
    sizes = args.global_batches.split(",")
    if "retrieval" in chosen:
        for i, size in enumerate(sizes):
            results[size] = _compare(strategy, vocab, probabilities, int(size), with_fit=i == 0)
    if "ranking" in chosen:
        results["ranking"] = {size: _compare_ranking(strategy, vocab, int(size), steps=3) for size in sizes}
    if "multitask" in chosen:
        build = functools.partial(_build_multitask, probabilities=probabilities)
        keys = ("loss", "retrieval_loss", "rating_loss", "rmse")
        results["multitask"] = {size: _compare_model(strategy, vocab, int(size), 3, build, keys) for size in sizes}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
