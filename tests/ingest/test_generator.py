"""Synthetic data: determinism, chunking, the canonical files, the split and the planted world."""

import collections
import math

import numpy as np
import pytest
import tensorflow as tf

from core import features
from core.config_loader import ConfigError
from ingest import generate_synthetic, iter_chunks, planted_truth, writer
from ingest import world as world_lib
from ingest.config import SyntheticDataConfig
from ingest.report import DataReport
from tests.ingest import helpers

SMALL = SyntheticDataConfig(num_users=120, num_items=90, num_interactions=2000, num_tastes=4, seed=7)
TYPES = {"bytes": str, "int": int, "float": float}


def _records(out_dir):
    paths = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*.tfrecord.gz"))
    return {path: [r.numpy() for r in tf.data.TFRecordDataset(str(out_dir / path), compression_type="GZIP")]
            for path in paths}


def _all_rows(cfg, chunk_rows=10**7, span=0):
    chunks = list(iter_chunks(cfg, span=span, chunk_rows=chunk_rows))
    return {name: np.concatenate([getattr(c, name) for c in chunks])
            for name in ("user", "item", "rating", "timestamp", "is_eval")}


def test_same_seed_gives_identical_content_and_another_seed_does_not(tmp_path):
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_synthetic(str(first), SMALL, rows_per_file=700)
    generate_synthetic(str(second), SMALL, rows_per_file=700)
    generate_synthetic(str(other), SyntheticDataConfig(**{**SMALL.__dict__, "seed": 8}), rows_per_file=700)
    records, again, changed = _records(first), _records(second), _records(other)
    assert records == again
    assert (first / "data_report.json").read_text() == (second / "data_report.json").read_text()
    assert list(records) == list(changed)          # the same files ...
    for path in records:                           # ... with other rows
        assert records[path] != changed[path], path


def test_chunks_are_bounded_and_do_not_change_the_data():
    chunks = list(iter_chunks(SMALL, chunk_rows=64))
    assert len(chunks) == math.ceil(SMALL.num_interactions / 64)
    assert max(len(c) for c in chunks) == 64
    small, whole = _all_rows(SMALL, chunk_rows=64), _all_rows(SMALL)
    for name in small:
        np.testing.assert_array_equal(small[name], whole[name])


def test_files_roll_every_n_rows_and_hold_the_generated_rows(tmp_path):
    report = generate_synthetic(str(tmp_path), SMALL, chunk_rows=100, rows_per_file=500)
    assert report.rows_written == {features.TRAIN_SPLIT: 1600, features.EVAL_SPLIT: 400}
    train_files = sorted((tmp_path / "interactions" / "span-0" / features.TRAIN_SPLIT).iterdir())
    assert [len(list(writer.read_examples(str(p)))) for p in train_files] == [500, 500, 500, 100]
    rows = _all_rows(SMALL)
    world = planted_truth(SMALL)
    expected = sorted(zip(
        [world.user_ids[u] for u in rows["user"][~rows["is_eval"]]],
        [world.item_ids[i] for i in rows["item"][~rows["is_eval"]]],
        rows["timestamp"][~rows["is_eval"]].tolist()))
    written = sorted((r[features.USER_ID], r[features.ITEM_ID], r[features.TIMESTAMP])
                     for r in helpers.read_split(tmp_path, features.TRAIN_SPLIT))
    assert written == expected


def test_examples_carry_every_feature_with_its_kind_and_the_catalog_covers_them(tmp_path):
    report = generate_synthetic(str(tmp_path), SMALL)
    rows = helpers.read_split(tmp_path, features.TRAIN_SPLIT) + helpers.read_split(tmp_path, features.EVAL_SPLIT)
    kinds = features.feature_kinds()
    for row in rows:
        assert set(row) == set(features.INTERACTION_FEATURES)
        for name, value in row.items():
            assert type(value) is TYPES[kinds[name]], (name, value)
    catalog = helpers.read_catalog(tmp_path)
    assert all(set(item) == set(features.CATALOG_FEATURES) for item in catalog.values())
    assert len(catalog) == SMALL.num_items == report.catalog_rows
    assert {row[features.ITEM_ID] for row in rows} <= set(catalog)
    assert report.items == len({row[features.ITEM_ID] for row in rows})
    assert {row[features.RATING] for row in rows} <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert {row[features.USER_GENDER] for row in rows} == {"M", "F"}
    assert {row[features.USER_OCCUPATION] for row in rows} <= set(world_lib.OCCUPATIONS)
    for item in catalog.values():
        genres = item[features.ITEM_GENRES].split(features.GENRE_SEPARATOR)
        assert 1 <= len(genres) <= 3 and set(genres) <= set(world_lib.GENRES)
        assert 1920 <= item[features.ITEM_YEAR] <= 2020 and item[features.ITEM_TITLE]
    assert DataReport.from_json(str(tmp_path / "data_report.json")) == report


def test_temporal_split_has_one_cutoff_and_puts_users_later_items_in_eval():
    cfg = SyntheticDataConfig(num_interactions=10_000, num_users=500, num_items=400)
    rows = _all_rows(cfg)
    n_eval = int(rows["is_eval"].sum())
    assert n_eval == 2000
    train_times, eval_times = rows["timestamp"][~rows["is_eval"]], rows["timestamp"][rows["is_eval"]]
    from ingest import generator
    cutoff = generator.timeline(cfg, 0).cutoff
    assert train_times.max() <= cutoff < eval_times.min()
    assert len(np.unique(rows["timestamp"])) == cfg.num_interactions
    span_seconds = rows["timestamp"].max() - rows["timestamp"].min()
    assert span_seconds > 700 * 86_400
    counts = collections.Counter(rows["user"].tolist())
    active = {u for u, c in counts.items() if c >= 10}
    with_eval = set(rows["user"][rows["is_eval"]].tolist())
    assert len(active & with_eval) >= 0.8 * len(active)


def test_no_user_rates_an_item_twice():
    rows = _all_rows(SyntheticDataConfig())
    pairs = rows["user"] * 1_000_000 + rows["item"]
    assert len(np.unique(pairs)) == len(pairs)


def test_users_interactions_concentrate_on_their_planted_taste():
    cfg = SyntheticDataConfig()
    world = planted_truth(cfg)
    rows = _all_rows(cfg)
    taste_mass = np.bincount(world.item_taste, weights=world.item_popularity, minlength=cfg.num_tastes)
    main = world.user_main_taste[rows["user"]]
    on_taste = world.item_taste[rows["item"]] == main
    for split in (~rows["is_eval"], rows["is_eval"]):
        # Popularity alone would hit the user's taste with probability taste_mass[main].
        chance = taste_mass[main[split]].mean()
        assert on_taste[split].mean() >= 4.0 * chance
    assert rows["rating"][on_taste].mean() - rows["rating"][~on_taste].mean() >= 1.0


def test_item_popularity_and_user_activity_are_long_tailed():
    cfg = SyntheticDataConfig()
    rows = _all_rows(cfg)
    item_counts = np.sort(np.bincount(rows["item"], minlength=cfg.num_items))[::-1]
    assert item_counts[: cfg.num_items // 10].sum() >= 0.3 * cfg.num_interactions    # 3x a flat share
    assert item_counts[cfg.num_items // 2:].sum() <= 0.3 * cfg.num_interactions
    user_counts = np.sort(np.bincount(rows["user"], minlength=cfg.num_users))[::-1]
    assert user_counts[: cfg.num_users // 10].sum() >= 0.3 * cfg.num_interactions
    assert user_counts.min() >= 1 and user_counts.max() >= 10 * np.median(user_counts)


def test_a_later_span_continues_in_time_with_new_interactions(tmp_path):
    generate_synthetic(str(tmp_path), SMALL)
    report = generate_synthetic(str(tmp_path), SMALL, span=1)
    span0 = helpers.read_split(tmp_path, features.EVAL_SPLIT, span=0)
    span1 = helpers.read_split(tmp_path, features.TRAIN_SPLIT, span=1)
    assert report.span == 1 and len(span1) == 1600
    assert min(r[features.TIMESTAMP] for r in span1) > max(r[features.TIMESTAMP] for r in span0)
    assert report.cutoff_timestamp >= max(r[features.TIMESTAMP] for r in span1)
    assert len(helpers.read_catalog(tmp_path)) == SMALL.num_items


@pytest.mark.parametrize("change, message", [
    ({"num_interactions": 120 * 90 + 1}, "exceeds num_users"),
    ({"num_users": 0}, "num_users must be >= 1"),
    ({"eval_fraction": 1.0}, "eval_fraction"),
])
def test_invalid_configs_are_refused(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        generate_synthetic(str(tmp_path), SyntheticDataConfig(**{**SMALL.__dict__, **change}))


def test_allocate_respects_total_cap_and_minimum():
    # One each, then floor(6 * [100, 1, 1, 1] / 103) = [5, 0, 0, 0] capped to 3 more; the
    # remaining 3 go to the three open entries, one each.
    assert world_lib.allocate(10, np.array([100.0, 1.0, 1.0, 1.0]), cap=4).tolist() == [4, 2, 2, 2]
    # Fewer than one each: floor(2 * [1, 5, 3] / 9) = [0, 1, 0], then the last one to the heaviest.
    assert world_lib.allocate(2, np.array([1.0, 5.0, 3.0]), cap=9).tolist() == [0, 2, 0]
