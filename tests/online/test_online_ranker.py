"""Online versions keep the pushed model's candidate ranker and rebuild its sources from the events."""

from __future__ import annotations

import numpy as np
import pytest

from core import features as F
from tests.online.conftest import K
from tests.online.learner_helpers import append_events, rating_event, start_learner
from tests.online.test_serving_module import USERS, _same
from tests.trainer import tiny_data

SOURCES = ("two_tower", "ease", "item_item", "popularity", "recent_popularity")
HALF_LIFE = 0.25


def _random_ranker(seed: int = 7):
    """A ranker over every source and the genre affinity, with seeded random weights (the tests
    compare, not judge, its order)."""
    import tensorflow as tf

    from trainer.candidate_features import feature_names
    from trainer.candidate_ranker import TrainedRanker, build_ranker

    tf.keras.utils.set_random_seed(seed)
    n_features = len(feature_names(SOURCES, genre_affinity=True))
    model, _ = build_ranker(n_features, (8,), 2, np.full(n_features, 0.2), np.full(n_features, 1.5))
    return TrainedRanker(model, SOURCES, per_source=6, half_life=HALF_LIFE, report={}, ease_items=12, ease_l2=5.0,
                         feature_mean=(0.2,) * n_features, feature_std=(1.5,) * n_features, genre_affinity=True)


@pytest.fixture(scope="module")
def world(tiny_base):
    import tensorflow_transform as tft

    from online import base_data
    from trainer import export

    tft_output = tft.TFTransformOutput(tiny_base.transform_dir)
    layer = tft_output.transform_features_layer()
    base = base_data.load(tiny_base.data_root, [0], layer)
    return tft_output, layer, export.load_trained(tiny_base.trained_dir), base


def _sourced_tables(world, batches):
    from trainer import tables
    from trainer.item_item_config import ItemItemConfig

    tft_output, _, _, base = world
    item_features = tables.transform_catalog(base.catalog, tft_output)
    return tables.build_tables(batches, tft_output, base.catalog, item_features, item_item=ItemItemConfig(neighbours=4),
                               half_life=HALF_LIFE, ease=(12, 5.0))


def test_the_online_module_ranks_as_the_serving_model_does(world):
    import tensorflow as tf

    from online.serving_module import OnlineServingModel, embed_users, request_vocabularies
    from trainer import tables
    from trainer.serving_model import ServingModel, ServingOptions

    tft_output, layer, nets, base = world
    table = _sourced_tables(world, [base.train])
    ranker = _random_ranker()
    options = ServingOptions(top_k=K, candidates_to_rank=10)
    embeddings = tables.embed_catalog(nets.candidate_tower, table.item_features)
    reference = ServingModel(nets.query_tower, nets.ranking_model, embeddings, table, layer, options,
                             candidate_ranker=ranker)
    online = OnlineServingModel(nets.query_tower, nets.ranking_model, request_vocabularies(tft_output), layer, table,
                                options, candidate_ranker=ranker, capacity=3 * len(table.item_keys))
    online.update(table, embed_users(nets.query_tower, table.user_features, options.context_timestamp), embeddings)
    users = tf.constant(USERS)
    _same(reference.recommend(users), online.recommend(users))
    # The ranker changes the order: the two-tower's own top-K (retrieve) differs for some user.
    ranked, retrieved = (online.recommend(users)[F.SERVING_OUTPUT_ITEMS].numpy(),
                         online.retrieve(users)[F.SERVING_OUTPUT_ITEMS].numpy())
    assert (ranked[:-1] != retrieved[:-1]).any()
    request = dict(user_id=tf.constant(["ua1", "new-user"]), user_age=tf.constant([30, 30], tf.int64),
                   user_gender=tf.constant(["F", "M"]), user_occupation=tf.constant(["writer", "artist"]))
    _same(reference.recommend_with_features(**request), online.recommend_with_features(**request))
    assert not online.fits(tables_with_items(table, 3 * len(table.item_keys) + 1))


def tables_with_items(table, n: int):
    """`table` with `n` catalog keys (only the size matters to `fits`)."""
    import dataclasses

    return dataclasses.replace(table, item_keys=np.array([b"x%d" % i for i in range(n)]))


def test_sources_after_events_are_the_pipeline_builders_on_every_interaction(world, tiny_base):
    from online import online_tables
    from online.online_sources import InteractionLog, SourceSettings
    from trainer import inputs, tables
    from trainer.item_item_config import ItemItemConfig

    tft_output, layer, _, base = world
    table = _sourced_tables(world, [base.train])
    vocab = inputs.vocabularies(tft_output)
    settings = SourceSettings(HALF_LIFE, (12, 5.0), ItemItemConfig(neighbours=4), cold_start_half_life=0.1)
    log = InteractionLog(*tables.interaction_rows(base.train, tft_output, base.catalog[F.ITEM_ID]))
    online = online_tables.OnlineTables(table, base.train, {}, layer, (vocab.users, vocab.items), (5, 5), log, settings)
    # Known users and items only (the catalog and the user rows stay those of the pipeline).
    events = [rating_event(n, f"ub{n % 4}", f"a{n % 3}") for n in range(12)]
    rows = online.apply(events)
    after = online.serving_tables()
    names = (F.USER_ID_XF, F.ITEM_ID_XF, F.TIMESTAMP_XF)
    every = {n: np.concatenate([base.train[n], rows[n].reshape(len(rows[n]), -1)[:, 0].astype(base.train[n].dtype)])
             for n in names}
    users, items, times = tables.interaction_rows(every, tft_output, base.catalog[F.ITEM_ID])
    from online.online_sources import source_tables

    expected = source_tables(InteractionLog(users, items, times), len(table.user_keys), len(table.item_keys), settings)
    np.testing.assert_allclose(after.sources.popularity, expected[0].popularity, rtol=1e-6)
    np.testing.assert_allclose(after.sources.recent_popularity, expected[0].recent_popularity, rtol=1e-5)
    np.testing.assert_allclose(after.sources.user_log_activity, expected[0].user_log_activity, rtol=1e-6)
    np.testing.assert_allclose(after.ease.weights, expected[1].weights, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(after.item_item.neighbour_ids, expected[2].neighbour_ids)
    # Unknown users get recent popularity at the chosen half-life, over every interaction.
    from trainer.candidate_sources import cold_start_list

    recent_order = cold_start_list(items, times, len(table.item_keys), 0.1)[0]
    np.testing.assert_array_equal(after.popular_rows, recent_order)
    assert (recent_order != cold_start_list(items, times, len(table.item_keys), None)[0]).any()
    # The events moved the sources: the a-items gained interactions from b-users.
    a_rows = [list(table.item_keys).index(f"a{i}".encode()) for i in range(3)]
    assert (after.sources.popularity[a_rows] > table.sources.popularity[a_rows]).all()


@pytest.fixture
def ranker_dir(tmp_path):
    from trainer.candidate_ranker import save_ranker

    directory = str(tmp_path / "candidate_ranker")
    save_ranker(_random_ranker(), directory, (8,), 2)
    return directory


def test_the_learner_serves_the_ranker_and_grows_past_its_capacity(workspace, tiny_base, ranker_dir):
    import tensorflow as tf

    learner = start_learner(workspace, tiny_base, ranker_dir=ranker_dir, reserve_items=40)
    assert learner.module.candidate_ranker is not None
    first = learner.export()
    served = tf.saved_model.load(str(workspace / "serving" / str(first)))
    before = served.signatures[F.SERVING_SIGNATURE](user_id=tf.constant(["ua1"]))[F.SERVING_OUTPUT_ITEMS].numpy()[0]
    first_module, capacity = learner.module, learner.module.capacity
    n_new = capacity - len(learner.tables.item_keys) + 1  # one item more than the module has room for
    side = {F.ITEM_TITLE: "New (2000)", F.ITEM_GENRES: tiny_data.GENRES["a"], F.ITEM_YEAR: 2000}
    events = [rating_event(n, f"ua{n % 5}", f"new{n}", **side) for n in range(n_new)]
    events.append(rating_event(1000, "ua1", before[0].decode()))
    append_events(workspace, events)
    while learner.step():
        pass
    second = learner.export()
    assert learner.module is not first_module and learner.module.capacity > capacity
    served = tf.saved_model.load(str(workspace / "serving" / str(second)))
    after = served.signatures[F.SERVING_SIGNATURE](user_id=tf.constant(["ua1"]))[F.SERVING_OUTPUT_ITEMS].numpy()[0]
    assert before[0] not in after, "an item the user just consumed leaves their ranked list"
    assert len(after) == K
    popularity = learner.module.popularity.numpy()
    new_rows = [learner.tables.item_row[f"new{n}"] for n in range(n_new)]
    assert (popularity[new_rows] > 0).all() and not popularity[len(learner.tables.item_keys):].any()
