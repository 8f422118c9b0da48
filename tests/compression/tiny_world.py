"""A tiny, learnable recommender world on disk for the compression tests.

User groups of disjoint tastes (as in `tests.trainer.tiny_data`): train interactions are each
user's group items except every third, and the eval split holds exactly those left-out items,
so a good model recommends them first. Written as the pipeline writes its artifacts: raw
train/eval interaction examples, the raw item catalog, the tf.Transform graph and the
transformed train examples.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Dict, List

import numpy as np

from core import features as F

USERS_PER_GROUP = 20
ITEMS_PER_GROUP = 15
GROUPS = "ab"
GENRES = {"a": "Action|Thriller", "b": "Comedy|Romance", "c": "Drama", "d": "Horror|Sci-Fi"}
OCCUPATIONS = {"a": "writer", "b": "artist", "c": "doctor", "d": "lawyer"}


@dataclasses.dataclass(frozen=True)
class World:
    root: str
    transform_dir: str
    transformed_train: str
    raw_train: str
    raw_eval: str
    catalog_file: str
    train_rows: list
    eval_rows: list
    catalog_rows: list


@dataclasses.dataclass(frozen=True)
class Shape:
    """Size of the world; `side_features=False` makes titles, genres and occupations carry no
    group information (only the interactions do)."""

    users_per_group: int = USERS_PER_GROUP
    items_per_group: int = ITEMS_PER_GROUP
    groups: str = GROUPS
    side_features: bool = True


def catalog(shape: Shape) -> List[Dict[str, object]]:
    """Items <group><i> of every group."""
    rows = []
    for group in shape.groups:
        for i in range(shape.items_per_group):
            item = f"{group}{i}"
            title = f"The {group.upper()} Story {item}" if shape.side_features else f"Film {item}"
            rows.append({F.ITEM_ID: item, F.ITEM_TITLE: f"{title} ({1990 + i})",
                         F.ITEM_GENRES: GENRES[group] if shape.side_features else "Drama",
                         F.ITEM_YEAR: 1990 + i})
    return rows


def interactions(shape: Shape, held_out: bool) -> List[Dict[str, object]]:
    """User u<g><n> rates own-group items i with (n + i) % 3 != 0 (train) or == 0 (eval),
    in a random order of their own (fixed seed)."""
    items = {row[F.ITEM_ID]: row for row in catalog(shape)}
    rows, t = [], 2_000_000 if held_out else 1_000_000
    rng = np.random.default_rng(5)
    for group in shape.groups:
        for n in range(shape.users_per_group):
            # Each user rates in their own order, so that a history does not spell the next item.
            for i in rng.permutation(shape.items_per_group).tolist():
                if ((n + i) % 3 == 0) != held_out:
                    continue
                t += 60
                rows.append({
                    F.USER_ID: f"u{group}{n}", F.USER_AGE: 20 + n,
                    F.USER_GENDER: "M" if n % 2 else "F",
                    F.USER_OCCUPATION: OCCUPATIONS[group] if shape.side_features else "other",
                    F.RATING: 4.0 + (i % 2), F.TIMESTAMP: t, **items[f"{group}{i}"],
                })
    return rows


def write_examples(rows: List[Dict[str, object]], path: pathlib.Path, names) -> str:
    """Gzipped TFRecord of tf.train.Example rows restricted to `names`."""
    import tensorflow as tf

    kinds = F.feature_kinds()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            feature = {}
            for name in names:
                value = row[name]
                if kinds[name] == "bytes":
                    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
                elif kinds[name] == "int":
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
                else:
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return str(path)


def build_world(root: pathlib.Path, shape: Shape = Shape()) -> World:
    """Writes every file of the tiny world under `root`."""
    from tests.trainer.conftest import transform_rows

    train_rows = interactions(shape, held_out=False)
    eval_rows = interactions(shape, held_out=True)
    catalog_rows = catalog(shape)
    transformed_train = root / "transformed" / "train" / "part-0.gz"
    transformed_train.parent.mkdir(parents=True)
    transform_rows(train_rows, root, transformed_train)
    return World(
        root=str(root),
        transform_dir=str(root / "transform"),
        transformed_train=str(transformed_train),
        raw_train=write_examples(train_rows, root / "raw" / "train" / "part-0.gz", F.INTERACTION_FEATURES),
        raw_eval=write_examples(eval_rows, root / "raw" / "eval" / "part-0.gz", F.INTERACTION_FEATURES),
        catalog_file=write_examples(catalog_rows, root / "items" / "catalog" / "part-0.gz", F.CATALOG_FEATURES),
        train_rows=train_rows, eval_rows=eval_rows, catalog_rows=catalog_rows,
    )


def trainer_config(**overrides):
    """Small, fast Trainer hyperparameters for the tiny world."""
    from trainer.config import TrainerConfig
    # Adagrad at a high rate, temperature 0.1 and a user-id embedding: what these tests were sized for,
    # kept explicit so that the Trainer's defaults can move without changing the tiny world.
    values = dict(embedding_dim=16, tower_layers=(), epochs=10, batch_size=32, optimizer="adagrad",
                  learning_rate=0.2, temperature=0.1, user_id_embedding=True,
                  ranking_epochs=10, top_k=10, seed=3)
    values.update(overrides)
    return TrainerConfig(**values)


def train_teacher(world: World, cfg, out_dir: str):
    """Trains the full networks on the world's transformed train examples and saves them."""
    from compression.finetune import load_training_data
    from trainer import export, train

    data = load_training_data(world.transform_dir, [world.transformed_train], cfg, cfg.seed)
    trained = train.train(data.train, None, data.vocab, cfg, item_probabilities=data.item_probabilities)
    networks = export.Networks(trained.query_tower, trained.candidate_tower, trained.ranking_model)
    export.save_trained(networks, out_dir)
    return networks
