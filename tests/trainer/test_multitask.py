"""The multitask (rating + retrieval) model on the tiny two-group problem: its loss, the towers it
shares with the ranking network, training, export into the serving model, and its config."""

from __future__ import annotations

import numpy as np
import pytest

from core import features as F

K = 5
WEIGHTS = {"rating_weight": 0.3, "retrieval_weight": 2.0}


@pytest.fixture(scope="module")
def tiny(transformed_tiny):
    import tensorflow as tf
    import tensorflow_transform as tft

    from trainer import inputs

    tft_output = tft.TFTransformOutput(transformed_tiny.transform_dir)
    vocab = inputs.vocabularies(tft_output)
    tf.keras.utils.set_random_seed(5)  # the shuffle order, whatever tests ran before in this process
    data = inputs.transformed_dataset(transformed_tiny.train_pattern, tft_output, 64, shuffle=True)
    everything = inputs.transformed_dataset(transformed_tiny.train_pattern, tft_output, 10_000)  # one batch
    return tft_output, vocab, data, everything, inputs.item_probabilities(data, vocab.items)


def _networks(vocab, seed: int = 5):
    import tensorflow as tf

    from trainer import towers

    tf.keras.utils.set_random_seed(seed)
    query = towers.build_query_tower(vocab, 8, ())
    candidate = towers.build_candidate_tower(vocab, 8, ())
    return query, candidate, towers.build_shared_ranking_model(query, candidate, (8,), 1, low_rank=4)


def _first_batch(dataset):
    return next(iter(dataset))


def test_loss_is_the_weighted_sum_of_the_single_task_losses(tiny):
    from trainer.model import MultitaskModel, RankingModel, RetrievalModel, _select

    _, vocab, data, _, probabilities = tiny
    query, candidate, network = _networks(vocab)
    options = {"item_probabilities": probabilities, "temperature": 0.1, "remove_accidental_hits": True}
    model = MultitaskModel(query, candidate, network, **WEIGHTS, **options)
    batch = _first_batch(data)
    retrieval = float(RetrievalModel(query, candidate, **options).compute_loss(batch))
    rating = float(RankingModel(network).compute_loss(batch))
    predictions = network(_select(batch, network)).numpy()
    assert rating == pytest.approx(float(np.mean((predictions - batch[F.RATING_XF].numpy()) ** 2)), rel=1e-5)
    assert retrieval > 0 and rating > 0
    loss, parts = model.loss_parts(batch)
    expected = WEIGHTS["retrieval_weight"] * retrieval + WEIGHTS["rating_weight"] * rating
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert float(model.compute_loss(batch)) == pytest.approx(expected, rel=1e-6)
    assert float(parts["retrieval_loss"]) == pytest.approx(retrieval, rel=1e-6)
    assert float(parts["rating_loss"]) == pytest.approx(rating, rel=1e-6)


def test_the_ranking_network_shares_the_towers(tiny):
    import tensorflow as tf

    from trainer.model import MultitaskModel

    _, vocab, data, _, _ = tiny
    query, candidate, network = _networks(vocab)
    assert network.get_layer("query_tower") is query and network.get_layer("candidate_tower") is candidate
    assert sorted(network.input_names) == sorted(set(query.input_names) | set(candidate.input_names))
    # Rating loss only: the towers still learn, through the ranking network.
    model = MultitaskModel(query, candidate, network, rating_weight=1.0, retrieval_weight=0.0)
    ids = [id(v) for v in model.trainable_variables]
    assert len(ids) == len(set(ids)) == len(network.trainable_variables), "each shared variable once"
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1))
    before = {tower.name: tower.get_weights() for tower in (query, candidate)}
    logs = model.fit(tf.data.Dataset.from_tensors(_first_batch(data)), epochs=1, verbose=0).history
    assert {"loss", "retrieval_loss", "rating_loss", "rmse"} <= set(logs)
    assert logs["loss"][0] == pytest.approx(logs["rating_loss"][0], rel=1e-6)
    for tower in (query, candidate):
        change = max(float(np.max(np.abs(a - b))) for a, b in zip(tower.get_weights(), before[tower.name]))
        assert change > 1e-4, f"{tower.name} got no gradient from the rating loss"
    # Retrieval loss only: the DCN head (on top of the towers) gets no gradient.
    head = network.get_layer("rating")
    model = MultitaskModel(query, candidate, network, rating_weight=0.0, retrieval_weight=1.0)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1))
    head_before, query_before = head.get_weights(), query.get_weights()
    model.fit(tf.data.Dataset.from_tensors(_first_batch(data)), epochs=1, verbose=0)
    for a, b in zip(head.get_weights(), head_before):
        np.testing.assert_array_equal(a, b)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(query.get_weights(), query_before)) > 1e-4


def _config():
    from trainer.config import TrainerConfig
    return TrainerConfig(embedding_dim=16, tower_layers=(), epochs=30, batch_size=64, learning_rate=0.2,
                         optimizer="adagrad", user_id_embedding=True,
                         top_k=K, seed=3, multitask=True, multitask_rating_weight=1.0,
                         multitask_retrieval_weight=1.0)


@pytest.fixture(scope="module")
def trained(tiny, transformed_tiny):
    import tensorflow as tf

    from trainer import inputs, train

    tft_output, vocab, _, everything, probabilities = tiny
    cfg = _config()
    # A dataset of its own, made under a fixed seed: its shuffle order does not depend on which
    # tests iterated the shared one (or set seeds) before.
    tf.keras.utils.set_random_seed(cfg.seed)
    data = inputs.transformed_dataset(transformed_tiny.train_pattern, tft_output, 64, shuffle=True)
    return train.train(data, everything, vocab, cfg, item_probabilities=probabilities)


def test_multitask_training_reduces_both_losses(trained, tiny):
    import tensorflow as tf

    from trainer import train
    from trainer.model import MultitaskModel

    _, vocab, _, everything, probabilities = tiny
    cfg = _config()
    batch = _first_batch(everything)  # every example
    tf.keras.utils.set_random_seed(cfg.seed)  # as train.train: the untrained start of the fit
    _, start = train.build_multitask(vocab, cfg, probabilities).loss_parts(batch)
    end_model = MultitaskModel(trained.query_tower, trained.candidate_tower, trained.ranking_model,
                               item_probabilities=probabilities, temperature=cfg.temperature,
                               remove_accidental_hits=cfg.remove_accidental_hits)
    _, end = end_model.loss_parts(batch)
    assert float(end["retrieval_loss"]) < 0.75 * float(start["retrieval_loss"]), (start, end)
    assert float(end["rating_loss"]) < 0.05 * float(start["rating_loss"]), (start, end)
    history = trained.ranking_history
    assert trained.retrieval_history is history, "one fit: both histories are the multitask one"
    assert len(history["loss"]) == cfg.epochs
    assert history["val_retrieval_loss"][-1] == pytest.approx(float(end["retrieval_loss"]), rel=1e-4)
    assert history["val_rating_loss"][-1] == pytest.approx(float(end["rating_loss"]), rel=1e-4)
    assert history["loss"][-1] == pytest.approx(history["retrieval_loss"][-1] + history["rating_loss"][-1], rel=1e-5)
    assert train.final_losses(trained) == (history["loss"][-1], history["loss"][-1])
    assert trained.ranking_model.get_layer("query_tower") is trained.query_tower


def _seen(rows, user):
    return {r[F.ITEM_ID] for r in rows if r[F.USER_ID] == user}


def _options():
    from trainer.serving_model import ServingOptions

    # As tests/trainer/test_model.py: the shared ranking network re-ranks 10 retrieved candidates.
    return ServingOptions(top_k=K, candidates_to_rank=10, ranking_weight=0.1)


@pytest.fixture(scope="module")
def serving(trained, tiny, transformed_tiny):
    from tests.trainer.conftest import build_serving

    tft_output, _, data, _, _ = tiny
    return build_serving(transformed_tiny, tft_output, data, trained.query_tower, trained.candidate_tower,
                         trained.ranking_model, _options())


def test_multitask_model_recommends_unseen_items_of_the_users_group(serving, transformed_tiny):
    """Over every user: no rated item served, and the lists lean to the user's own group.

    Judged over all 40 users rather than per user: in this world the rating depends on the item's
    parity, not its group, and the shared towers learn both signals, so a single user's list may
    hold an other-group item rated 5 near the top (seed-dependent).
    """
    module, _ = serving
    users = sorted({r[F.USER_ID] for r in transformed_tiny.rows})
    out = module.recommend(np.array(users, dtype=object))
    items = out[F.SERVING_OUTPUT_ITEMS].numpy().astype(str)
    scores = out[F.SERVING_OUTPUT_SCORES].numpy()
    assert items.shape == (len(users), K)
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "scores must be best first"
    retrieved = module.retrieve(np.array(users, dtype=object))[F.SERVING_OUTPUT_ITEMS].numpy().astype(str)
    for user, recs in zip(users, items):
        assert not (set(recs) & _seen(transformed_tiny.rows, user)), f"{user} got an item already rated"
    retrieval_share = np.mean([item[0] == user[1] for user, recs in zip(users, retrieved) for item in recs[:3]])
    two_stage_share = np.mean([item[0] == user[1] for user, recs in zip(users, items) for item in recs[:3]])
    assert retrieval_share >= 0.8 and two_stage_share >= 0.7, (retrieval_share, two_stage_share)


def test_shared_networks_save_load_and_export_into_the_serving_model(trained, tiny, serving, transformed_tiny,
                                                                     tmp_path):
    import tensorflow as tf

    from tests.trainer.conftest import build_serving
    from trainer import export
    from trainer.model import _select

    tft_output, _, data, everything, _ = tiny
    export.save_trained(export.Networks(trained.query_tower, trained.candidate_tower, trained.ranking_model),
                        str(tmp_path / "trained"))
    loaded = export.load_trained(str(tmp_path / "trained"))
    batch = _first_batch(everything)
    for name, network in export.Networks(trained.query_tower, trained.candidate_tower,
                                         trained.ranking_model).as_dict().items():
        np.testing.assert_allclose(getattr(loaded, name)(_select(batch, network)).numpy(),
                                   network(_select(batch, network)).numpy(), rtol=1e-5, atol=1e-6)
    assert isinstance(loaded.ranking_model.get_layer("query_tower"), tf.keras.Model)

    module, table = build_serving(transformed_tiny, tft_output, data, loaded.query_tower, loaded.candidate_tower,
                                  loaded.ranking_model, _options())
    fn = tf.saved_model.load(export.export_serving(module, str(tmp_path / "serving" / "1")))
    users = ["ua1", "ub2", "stranger"]
    out = fn.signatures[F.SERVING_SIGNATURE](user_id=tf.constant(users))
    items = out[F.SERVING_OUTPUT_ITEMS].numpy().astype(str)
    assert items.shape == (3, K) and out[F.SERVING_OUTPUT_SCORES].shape == (3, K)
    for user, recs in zip(users, items):
        assert len(set(recs)) == K and not (set(recs) & _seen(transformed_tiny.rows, user)), (user, recs)
    assert list(items[2]) == list(table.item_keys[table.popular_rows[:K]].astype(str)), "unknown: popular"
    reference = serving[0].recommend(tf.constant(users))
    np.testing.assert_array_equal(reference[F.SERVING_OUTPUT_ITEMS].numpy(), out[F.SERVING_OUTPUT_ITEMS].numpy())
    ranked = fn.signatures["rank"](user_id=tf.constant(["ua0"]), item_id=tf.constant([["a1", "b1"]]))
    ratings = ranked[F.SERVING_OUTPUT_SCORES].numpy()
    assert np.all(np.isfinite(ratings)) and ratings[0, 0] != ratings[0, 1]


def test_warm_start_copies_the_shared_towers_once(trained, tiny):
    from trainer import export, warm_start

    tft_output = tiny[0]
    vocabularies = warm_start.vocabularies(tft_output)
    networks = export.Networks(trained.query_tower, trained.candidate_tower, trained.ranking_model).as_dict()
    report = warm_start.warm_start_networks(networks, vocabularies, networks, vocabularies)
    assert f"{export.RANKING_MODEL}/cross_0" in report.copied
    assert f"{export.QUERY_TOWER}/{F.USER_ID}_embedding" in report.remapped
    touched = report.copied + list(report.remapped) + report.fresh
    assert not [where for where in touched if where.endswith(("/query_tower", "/candidate_tower"))], touched


@pytest.mark.parametrize("field", ["multitask_rating_weight", "multitask_retrieval_weight"])
def test_negative_multitask_weight_is_a_config_error(field):
    from core.config_loader import ConfigError, from_dict
    from trainer.config import TrainerConfig
    with pytest.raises(ConfigError, match=field):
        TrainerConfig(multitask=True, **{field: -0.5})
    with pytest.raises(ConfigError, match=field):
        from_dict(TrainerConfig, {field: -1.0}, "trainer")
    assert getattr(TrainerConfig(multitask=True, **{field: 0.0}), field) == 0.0


def test_multitask_needs_a_nonzero_weight_and_is_off_by_default():
    from core.config_loader import ConfigError
    from trainer.config import TrainerConfig
    assert TrainerConfig().multitask is False
    with pytest.raises(ConfigError, match="both 0"):
        TrainerConfig(multitask=True, multitask_rating_weight=0.0, multitask_retrieval_weight=0.0)
