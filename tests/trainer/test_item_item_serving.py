"""The item-item source inside the serving model, on the tiny two-group world.

The towers are untrained (random): the item-item source is what these tests look at, and the
two-tower's random lists show that its candidates really come from the other source.
"""

from __future__ import annotations

import numpy as np
import pytest

from core import features as F

K = 3
USERS = [f"u{g}{n}" for g in "ab" for n in range(20)]


@pytest.fixture(scope="module")
def world(transformed_tiny):
    import tensorflow as tf
    import tensorflow_transform as tft

    from trainer import inputs, towers

    tft_output = tft.TFTransformOutput(transformed_tiny.transform_dir)
    vocab = inputs.vocabularies(tft_output)
    tf.keras.utils.set_random_seed(7)
    query = towers.build_query_tower(vocab, 8, ())
    candidate = towers.build_candidate_tower(vocab, 8, ())
    ranking = towers.build_shared_ranking_model(query, candidate, (8,), 1, low_rank=4)
    data = inputs.transformed_dataset(transformed_tiny.train_pattern, tft_output, 64)
    return tft_output, data, (query, candidate, ranking)


def _build(world, transformed_tiny, item_item_weight, item_item=True):
    from tests.trainer.conftest import build_serving
    from trainer.item_item_config import ItemItemConfig
    from trainer.serving_model import ServingOptions

    tft_output, data, networks = world
    options = ServingOptions(top_k=K, candidates_to_rank=K, ranking_weight=0.0,
                             item_item_candidates=K, item_item_weight=item_item_weight)
    # 19 neighbours: the whole catalog but the item itself, so scores are x_u B exactly.
    cfg = ItemItemConfig(neighbours=19, ease_l2=2.0, max_history=50) if item_item else None
    return build_serving(transformed_tiny, tft_output, data, *networks, options, item_item=cfg)


def _seen(rows, user):
    return {r[F.ITEM_ID] for r in rows if r[F.USER_ID] == user}


def _items(out):
    return out[F.SERVING_OUTPUT_ITEMS].numpy().astype(str)


def test_item_item_scores_equal_dense_ease_over_the_training_interactions(world, transformed_tiny):
    module, table = _build(world, transformed_tiny, item_item_weight=0.0)
    keys = list(table.item_keys.astype(str))
    x = np.zeros((len(USERS), len(keys)))
    for row in transformed_tiny.rows:
        x[USERS.index(row[F.USER_ID]), keys.index(row[F.ITEM_ID])] = 1.0
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(len(keys)))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    expected = np.where(x > 0, -np.inf, x @ b)  # seen items are not candidates
    out = module.retrieve_item_item(np.array(USERS, dtype=object))
    scores = out[F.SERVING_OUTPUT_SCORES].numpy()
    np.testing.assert_allclose(scores, -np.sort(-expected, axis=1)[:, :K], rtol=1e-4, atol=1e-5)
    picked = np.take_along_axis(expected, np.vectorize(keys.index)(_items(out)), axis=1)
    np.testing.assert_allclose(picked, scores, rtol=1e-4, atol=1e-5)


def test_weighted_item_item_candidates_lead_the_merged_list(world, transformed_tiny):
    module, _ = _build(world, transformed_tiny, item_item_weight=1000.0)
    users = np.array(USERS, dtype=object)
    merged, tower_only = _items(module.recommend(users)), _items(module.retrieve(users))
    for user, recs in zip(USERS, merged):
        assert not set(recs) & _seen(transformed_tiny.rows, user), f"{user} got a seen item: {recs}"
        # Each user has 3 or 4 unseen items of their own group: EASE ranks exactly those first.
        assert all(item[0] == user[1] for item in recs), f"{user}: {recs}"
    # The random towers alone put other-group items in some lists: the merge changed them.
    assert any(item[0] != user[1] for user, recs in zip(USERS, tower_only) for item in recs)


def test_zero_weight_keeps_the_two_tower_order_and_unknown_users_get_popular_items(world, transformed_tiny):
    with_source, table = _build(world, transformed_tiny, item_item_weight=0.0)
    without, _ = _build(world, transformed_tiny, item_item_weight=0.0, item_item=False)
    users = np.array(USERS + ["stranger"], dtype=object)
    a, b = with_source.recommend(users), without.recommend(users)
    np.testing.assert_array_equal(_items(a), _items(b))
    np.testing.assert_allclose(a[F.SERVING_OUTPUT_SCORES].numpy(), b[F.SERVING_OUTPUT_SCORES].numpy(), rtol=1e-6)
    assert list(_items(with_source.retrieve_item_item(users))[-1]) == list(table.item_keys[table.popular_rows[:K]].astype(str))
    assert "retrieve_item_item" not in without.signatures()


def test_export_load_keeps_both_signatures_and_stores_the_table_as_variables(world, transformed_tiny, tmp_path):
    import tensorflow as tf

    from trainer import export

    module, _ = _build(world, transformed_tiny, item_item_weight=1000.0)
    path = export.export_serving(module, str(tmp_path / "1"))
    loaded = tf.saved_model.load(path)
    for variable in (loaded.item_item.neighbour_ids, loaded.item_item.neighbour_weights, loaded.recent_rows):
        assert isinstance(variable, tf.Variable)
    np.testing.assert_array_equal(loaded.item_item.neighbour_ids.numpy(), module.item_item.neighbour_ids.numpy())
    users = tf.constant(["ua1", "ub2", "stranger"])
    for name, fn in (("serving_default", module.recommend), ("retrieve_item_item", module.retrieve_item_item)):
        before, after = fn(users), loaded.signatures[name](user_id=users)
        np.testing.assert_array_equal(_items(before), _items(after))
        np.testing.assert_allclose(before[F.SERVING_OUTPUT_SCORES].numpy(), after[F.SERVING_OUTPUT_SCORES].numpy(),
                                   rtol=1e-5)
