"""Merged candidates, their features, and the listwise ranker over them."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from trainer.candidate_features import candidate_features, feature_names, genre_affinity
from trainer.candidate_ranker import load_ranker, save_ranker, train_ranker
from trainer.candidate_ranker_config import CandidateRankerConfig
from core.config_loader import ConfigError

INF = float("-inf")


def test_features_of_a_hand_computed_example():
    # One user, 5 items; item 0 is seen. Source a lists (1, 2), source b reaches only item 4.
    a = tf.constant([[9.0, 3.0, 2.0, 1.0, 0.0]])
    b = tf.constant([[INF, INF, INF, INF, 5.0]])
    exclude = tf.constant([[True, False, False, False, False]])
    item_log_count = tf.constant([0.0, 1.0, 2.0, 3.0, 4.0])
    rows, valid, feats = candidate_features([a, b], exclude, item_log_count, tf.constant([0.5]), 2, 5)
    rows, valid, feats = rows.numpy()[0], valid.numpy()[0], feats.numpy()[0]
    assert rows.shape == (4,)
    assert sorted(rows[valid]) == [1, 2, 4]
    by_row = {int(r): f for r, f, v in zip(rows, feats, valid) if v}
    a_scores = np.array([3.0, 2.0, 0.0])  # a's scores of candidates 1, 2, 4
    z = (a_scores - a_scores.mean()) / (a_scores.std() + 1e-6)
    np.testing.assert_allclose([by_row[1][0], by_row[2][0], by_row[4][0]], z, rtol=1e-5)
    # log(1 + rank): a ranks 1 -> 0, 2 -> 1, 4 unlisted -> per_source (2); b lists only 4.
    np.testing.assert_allclose([by_row[1][1], by_row[2][1], by_row[4][1]], np.log1p([0, 1, 2]), rtol=1e-6)
    np.testing.assert_allclose([by_row[1][3], by_row[2][3], by_row[4][3]], np.log1p([2, 2, 0]), rtol=1e-6)
    # b reaches only item 4: 0 elsewhere, standardised over the three candidates.
    b_scores = np.array([0.0, 0.0, 5.0])
    np.testing.assert_allclose(by_row[4][2], (5.0 - b_scores.mean()) / (b_scores.std() + 1e-6), rtol=1e-5)
    np.testing.assert_allclose([by_row[r][4] for r in (1, 2, 4)], [1.0, 2.0, 4.0])
    np.testing.assert_allclose([by_row[r][5] for r in (1, 2, 4)], 0.5)
    assert not feats[~valid].any()
    assert feature_names(["a", "b"]) == ("a_z", "a_logrank", "b_z", "b_logrank", "item_log_count",
                                          "user_log_activity")


def test_genre_affinity_by_hand():
    # Genre ids (0 pads): item 0 = {1, 2}, item 1 = {2}, item 2 = {3}, item 3 = no genre.
    item_genres = tf.constant([[1, 2], [2, 0], [3, 0], [0, 0]], tf.int64)
    # User 0 saw items 0 and 1: counts g1 = 1, g2 = 2 -> profile (1, 2) / sqrt(5). User 1 saw nothing.
    seen = tf.constant([[0, 1], [-1, -1]])
    candidates = tf.constant([[0, 1, 2, 3, 7], [0, 1, 2, 3, 7]])  # row 7 is outside the catalog
    got = genre_affinity(seen, candidates, item_genres).numpy()
    root5 = np.sqrt(5.0)
    expected = [(1 + 2) / root5 / np.sqrt(2), 2 / root5, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(got[0], expected, rtol=1e-6)
    np.testing.assert_allclose(got[1], 0.0)


def test_genre_features_follow_the_shared_ones():
    a = tf.constant([[9.0, 3.0, 2.0, 1.0]])
    exclude = tf.constant([[False, False, False, True]])
    item_genres = tf.constant([[1], [1], [2], [1]], tf.int64)
    seen = tf.constant([[3]])  # the seen item has genre 1
    plain = candidate_features([a], exclude, tf.zeros(4), tf.constant([0.0]), 3, 4)
    rows, valid, feats = candidate_features([a], exclude, tf.zeros(4), tf.constant([0.0]), 3, 4, (seen, item_genres))
    np.testing.assert_array_equal(rows.numpy(), plain[0].numpy())
    np.testing.assert_allclose(feats.numpy()[..., :4], plain[2].numpy())
    by_row = {int(r): f for r, f, v in zip(rows.numpy()[0], feats.numpy()[0], valid.numpy()[0]) if v}
    np.testing.assert_allclose([by_row[r][5] for r in (0, 1, 2)], [1.0, 1.0, 0.0])
    z = (np.array([1.0, 1.0, 0.0]) - 2 / 3) / (np.std([1.0, 1.0, 0.0]) + 1e-6)
    np.testing.assert_allclose([by_row[r][4] for r in (0, 1, 2)], z, rtol=1e-5)
    assert feature_names(["a"], genre_affinity=True)[-2:] == ("genre_affinity_z", "genre_affinity")


def _planted_lists(n_lists=300, width=20, n_features=6, seed=0):
    """Lists where the one positive is the candidate with the highest feature 3 (others noise).

    The features are off-centre and wide (like log counts), so the ranker's standardisation matters.
    """
    rng = np.random.default_rng(seed)
    x = (3.0 + 2.0 * rng.normal(size=(n_lists, width, n_features))).astype(np.float32)
    valid = np.ones((n_lists, width), bool)
    valid[:, -3:] = False
    x[~valid] = 0.0
    labels = np.zeros((n_lists, width), bool)
    labels[np.arange(n_lists), np.argmax(np.where(valid, x[:, :, 3], -np.inf), axis=1)] = True
    return x, valid, labels


def test_ranker_learns_a_planted_preference(tmp_path):
    x, valid, labels = _planted_lists()
    cfg = CandidateRankerConfig(bags=2, max_epochs=30, patience=6, learning_rate=1e-2, layers=(8,), users_per_batch=16)
    ranker = train_ranker(x, valid, labels, ["a", "b"], 0.1, cfg, log=lambda _: None)
    test_x, test_valid, test_labels = _planted_lists(seed=1)
    logits = np.where(test_valid, ranker.model(test_x).numpy(), -np.inf)
    top1 = np.argmax(logits, axis=1)
    accuracy = test_labels[np.arange(len(top1)), top1].mean()
    assert accuracy > 0.45  # chance is 1 / 17
    assert ranker.report["lists"] == 300 and len(ranker.report["bag_epochs"]) == 2

    save_ranker(ranker, str(tmp_path / "ranker"), cfg.layers, cfg.bags)
    loaded = load_ranker(str(tmp_path / "ranker"))
    np.testing.assert_allclose(loaded.model(test_x).numpy(), ranker.model(test_x).numpy(), rtol=1e-5, atol=1e-6)
    assert loaded.sources == ("a", "b") and loaded.half_life == 0.1 and loaded.cold_start_half_life is None
    assert not loaded.genre_affinity
    save_ranker(dataclasses.replace(ranker, cold_start_half_life=0.03), str(tmp_path / "recent"), cfg.layers, cfg.bags)
    assert load_ranker(str(tmp_path / "recent")).cold_start_half_life == 0.03
    # Six features over one source: the genre pair follows the shared pair.
    genre_ranker = train_ranker(x, valid, labels, ["a"], 0.1, cfg, log=lambda _: None, genre_affinity=True)
    assert genre_ranker.report["features"][-2:] == ["genre_affinity_z", "genre_affinity"]
    save_ranker(genre_ranker, str(tmp_path / "genres"), cfg.layers, cfg.bags)
    reloaded = load_ranker(str(tmp_path / "genres"))
    assert reloaded.genre_affinity
    np.testing.assert_allclose(reloaded.model(test_x).numpy(), genre_ranker.model(test_x).numpy(), rtol=1e-5, atol=1e-6)


def test_a_ranker_saved_before_the_cold_start_and_genre_settings_loads_without_them(tmp_path):
    import json

    x, valid, labels = _planted_lists(n_lists=40)
    cfg = CandidateRankerConfig(bags=2, max_epochs=2, layers=(4,))
    directory = tmp_path / "old"
    save_ranker(train_ranker(x, valid, labels, ["a", "b"], 0.1, cfg, log=lambda _: None), str(directory),
                cfg.layers, cfg.bags)
    spec_file = directory / "ranker.json"
    spec = json.loads(spec_file.read_text())
    del spec["cold_start_half_life"], spec["genre_affinity"]
    spec_file.write_text(json.dumps(spec))
    loaded = load_ranker(str(directory))
    assert loaded.cold_start_half_life is None and not loaded.genre_affinity
    assert loaded.model(x[:2]).shape == (2, x.shape[1])


def test_ranker_needs_lists_with_positives():
    x, valid, labels = _planted_lists(n_lists=10)
    with pytest.raises(ValueError, match="label-slice item"):
        train_ranker(x, valid, np.zeros_like(labels), ["a", "b"], 0.1, CandidateRankerConfig(), log=lambda _: None)


def test_config_names_every_bad_key():
    with pytest.raises(ConfigError) as error:
        CandidateRankerConfig(sources=("two_tower", "bogus"), per_source=0, label_fraction=1.5)
    message = str(error.value)
    for key in ("candidate_ranker.sources", "candidate_ranker.per_source", "candidate_ranker.label_fraction"):
        assert key in message
