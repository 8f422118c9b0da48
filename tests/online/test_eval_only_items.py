"""Items first rated in the eval split (outside the Transform vocabulary) reach the full tables by raw id.

The tiny world's eval split holds each user's newest interaction; some of those items are never
rated in training, so the transformed examples give them only an out-of-vocabulary index.
"""

from __future__ import annotations

import numpy as np

from core import features as F


def test_eval_only_items_join_the_seen_filter_and_popularity(tiny_base):
    import tensorflow_transform as tft

    from ingest import writer
    from online import base_data
    from trainer import tables

    tft_output = tft.TFTransformOutput(tiny_base.transform_dir)
    layer = tft_output.transform_features_layer()
    base = base_data.load(tiny_base.data_root, [0], layer)
    raw = base_data.read_raw([writer.split_pattern(tiny_base.data_root, 0, F.EVAL_SPLIT)])
    vocab = {v.decode() if isinstance(v, bytes) else v for v in tft_output.vocabulary_by_name(F.ITEM_ID_VOCAB)}
    new_pairs = {(str(u), str(i)) for u, i in zip(raw[F.USER_ID], raw[F.ITEM_ID]) if str(i) not in vocab}
    assert new_pairs, "the tiny world has items first rated in the eval split"

    extra = tables.out_of_vocabulary_interactions(raw, tft_output, base.catalog[F.ITEM_ID])
    assert len(extra[0]) == len(new_pairs)  # only the out-of-vocabulary ones: the others are in the examples
    item_features = tables.transform_catalog(base.catalog, tft_output)
    held = base_data.transform(raw, layer)
    every = {n: np.concatenate([base.train[n], held[n]]) for n in base.train if n in held}
    plain = tables.build_tables([every], tft_output, base.catalog, item_features, half_life=0.25)
    full = tables.build_tables([every], tft_output, base.catalog, item_features, half_life=0.25,
                               extra_interactions=extra)

    def seen(table, user):
        row = [k.decode() for k in table.user_keys].index(user)
        values = table.seen_values[table.seen_row_splits[row]:table.seen_row_splits[row + 1]]
        return {table.item_keys[v].decode() for v in values}

    assert all(item in seen(full, user) for user, item in new_pairs)
    assert not any(item in seen(plain, user) for user, item in new_pairs)
    new_rows = sorted({[k.decode() for k in full.item_keys].index(i) for _, i in new_pairs})
    assert (full.sources.popularity[new_rows] > 0).all() and not plain.sources.popularity[new_rows].any()
