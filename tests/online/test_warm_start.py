"""Warm start across vocabularies: rows follow their tokens, other weights are copied."""

from __future__ import annotations

import dataclasses

import numpy as np

from core import features as F
from trainer import warm_start


def test_remap_rows_by_token_with_padding_and_oov():
    old = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)  # pad, a, b, c, oov
    new = np.full((6, 2), -1.0, np.float32)  # pad, c, x, a, y, oov
    counts = warm_start.remap_rows(old, new, ["a", "b", "c"], ["c", "x", "a", "y"], shift=1)
    assert counts == {"kept": 2, "new": 2}
    np.testing.assert_array_equal(new, [old[0], old[3], [-1, -1], old[1], [-1, -1], old[4]])


def test_warm_started_networks_embed_known_users_and_items_as_before(tiny_base):
    import tensorflow as tf
    import tensorflow_transform as tft

    from trainer import export, inputs, towers

    previous = export.load_trained(tiny_base.trained_dir)
    old_vocab = warm_start.vocabularies(tft.TFTransformOutput(tiny_base.transform_dir))
    new_vocab = dict(old_vocab)
    new_vocab[F.USER_ID_VOCAB] = ["brand-new-user"] + old_vocab[F.USER_ID_VOCAB][::-1]
    new_vocab[F.ITEM_ID_VOCAB] = old_vocab[F.ITEM_ID_VOCAB][2:] + ["new-1", "new-2"]
    sizes = inputs.vocabularies(tft.TFTransformOutput(tiny_base.transform_dir))
    grown = dataclasses.replace(sizes, users=sizes.users + 1, items=sizes.items)
    dim = previous.query_tower.get_layer(f"{F.USER_ID}_embedding").output_dim
    target = {
        export.QUERY_TOWER: towers.build_query_tower(grown, dim, ()),
        export.CANDIDATE_TOWER: towers.build_candidate_tower(grown, dim, ()),
    }
    report = warm_start.warm_start_networks(previous.as_dict(), old_vocab, target, new_vocab)
    assert report.remapped[f"{export.QUERY_TOWER}/{F.USER_ID}_embedding"] == {"kept": len(old_vocab[F.USER_ID_VOCAB]), "new": 1}
    assert report.remapped[f"{export.CANDIDATE_TOWER}/{F.ITEM_ID}_embedding"] == {"kept": len(new_vocab[F.ITEM_ID_VOCAB]) - 2, "new": 2}
    assert not report.fresh

    def query(model, vocab, user, history):
        index = {t: i for i, t in enumerate(vocab[F.USER_ID_VOCAB])}[user]
        items = {t: i for i, t in enumerate(vocab[F.ITEM_ID_VOCAB])}
        feats = {name: tf.constant([1], tf.int64) for name in F.USER_TRANSFORMED}
        feats[F.USER_ID_XF] = tf.constant([index], tf.int64)
        feats[F.USER_HISTORY] = tf.constant([[items[h] + 1 for h in history] + [0] * (F.HISTORY_LENGTH - len(history))], tf.int64)
        feats[F.TIMESTAMP_XF] = tf.constant([1.0])
        return model(feats).numpy()

    user, history = "ua3", [old_vocab[F.ITEM_ID_VOCAB][5], old_vocab[F.ITEM_ID_VOCAB][7]]
    np.testing.assert_allclose(query(previous.query_tower, old_vocab, user, history),
                               query(target[export.QUERY_TOWER], new_vocab, user, history), rtol=1e-6)


def test_vocabularies_round_trip(tiny_base, tmp_path):
    import tensorflow_transform as tft

    output = tft.TFTransformOutput(tiny_base.transform_dir)
    warm_start.save_vocabularies(output, str(tmp_path))
    loaded = warm_start.load_vocabularies(str(tmp_path))
    assert loaded == warm_start.vocabularies(output) and "ua0" in loaded[F.USER_ID_VOCAB]
