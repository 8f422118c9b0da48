"""The online serving module answers every signature as `ServingModel` does, and re-exports."""

from __future__ import annotations

import numpy as np
import pytest

from core import features as F
from tests.online.conftest import K

USERS = ["ua0", "ua7", "ub3", "stranger"]


@pytest.fixture(scope="module")
def both(tiny_base):
    import tensorflow_transform as tft

    from online import base_data
    from online.serving_module import OnlineServingModel, embed_users, request_vocabularies
    from trainer import export, tables
    from trainer.serving_model import ServingModel, ServingOptions

    tft_output = tft.TFTransformOutput(tiny_base.transform_dir)
    layer = tft_output.transform_features_layer()
    nets = export.load_trained(tiny_base.trained_dir)
    base = base_data.load(tiny_base.data_root, [0], layer)
    item_features = tables.transform_catalog(base.catalog, tft_output)
    table = tables.build_tables([base.train], tft_output, base.catalog, item_features)
    options = ServingOptions(top_k=K, candidates_to_rank=10, ranking_weight=0.1)
    embeddings = tables.embed_catalog(nets.candidate_tower, item_features)
    reference = ServingModel(nets.query_tower, nets.ranking_model, embeddings, table, layer, options)
    online = OnlineServingModel(nets.query_tower, nets.ranking_model, request_vocabularies(tft_output), layer, table, options)
    online.update(table, embed_users(nets.query_tower, table.user_features, options.context_timestamp), embeddings)
    return reference, online, table


def _same(a, b):
    for key in a:
        left, right = a[key].numpy(), b[key].numpy()
        if left.dtype.kind == "f":
            np.testing.assert_allclose(left, right, rtol=1e-4, atol=1e-5, err_msg=key)
        else:
            np.testing.assert_array_equal(left, right, err_msg=key)


@pytest.mark.parametrize("signature", ["recommend", "retrieve", "retrieve_unfiltered"])
def test_user_signatures_match_the_serving_model(both, signature):
    import tensorflow as tf

    reference, online, _ = both
    users = tf.constant(USERS)
    _same(getattr(reference, signature)(users), getattr(online, signature)(users))


def test_feature_rank_and_lookup_signatures_match(both):
    import tensorflow as tf

    reference, online, _ = both
    request = dict(user_id=tf.constant(["ua1", "new-user", "ub2"]), user_age=tf.constant([-3, 30, 150], tf.int64),
                   user_gender=tf.constant(["F", "M", "X"]), user_occupation=tf.constant(["writer", "nobody", "artist"]))
    _same(reference.recommend_with_features(**request), online.recommend_with_features(**request))
    pairs = dict(user_id=tf.constant(["ua0", "stranger"]), item_id=tf.constant([["a1", "b1", "zz"], ["a2", "a3", "b4"]]))
    _same(reference.rank(**pairs), online.rank(**pairs))
    items = tf.constant(["a1", "nope", "b9"])
    _same(reference.lookup_items(items), online.lookup_items(items))


def test_new_tables_are_served_after_update_and_reexport(both, tmp_path):
    import tensorflow as tf

    from trainer import export

    _, online, table = both
    first = export.export_serving(online, str(tmp_path / "1"))
    shrunk_users = dict(table.user_features)
    # The same tables without user ua0: it must fall back to the popular items in the next export.
    keep = np.array([k != b"ua0" for k in table.user_keys] + [True])
    user_keys = table.user_keys[keep[:-1]]
    features = {k: v[keep] for k, v in shrunk_users.items()}
    lengths = np.diff(table.seen_row_splits)[keep]
    splits = np.concatenate([[0], np.cumsum(lengths)])
    values = np.concatenate([table.seen_values[table.seen_row_splits[r]:table.seen_row_splits[r + 1]] for r in np.flatnonzero(keep)])
    import dataclasses

    smaller = dataclasses.replace(table, user_keys=user_keys, user_features=features, seen_row_splits=splits, seen_values=values)
    users = online.user_embeddings.numpy()[keep]
    online.update(smaller, users, online.candidate_embeddings.numpy())
    second = export.export_serving(online, str(tmp_path / "2"))
    v1, v2 = tf.saved_model.load(first), tf.saved_model.load(second)
    popular = table.item_keys[table.popular_rows[:K]]
    out1 = v1.signatures[F.SERVING_SIGNATURE](user_id=tf.constant(["ua0", "ub1"]))[F.SERVING_OUTPUT_ITEMS].numpy()
    out2 = v2.signatures[F.SERVING_SIGNATURE](user_id=tf.constant(["ua0", "ub1"]))[F.SERVING_OUTPUT_ITEMS].numpy()
    assert list(out1[0]) != list(popular) and list(out2[0]) == list(popular)
    assert list(out1[1]) == list(out2[1])
