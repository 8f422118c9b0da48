"""Fixtures: a tiny canonical data set, its Transform graph and a base model trained on it.

Built once per session: the two-group world of `tests.trainer.tiny_data` written as span 0
(each user's newest row as eval) plus the item catalog, `preprocessing_fn` analysed under
tf.Transform's Beam implementation, and the networks trained as `trainer.entry.run_fn` trains
them, saved with `trainer.export.save_trained`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest

K = 5


@dataclasses.dataclass(frozen=True)
class TinyBase:
    data_root: str
    transform_dir: str
    trained_dir: str
    rows: list
    catalog: list


def _write_data(root: str, rows, catalog) -> None:
    from core import features as F
    from ingest import encoding, writer

    newest = {}
    for row in rows:
        if row[F.TIMESTAMP] > newest.get(row[F.USER_ID], -1):
            newest[row[F.USER_ID]] = row[F.TIMESTAMP]
    encoder = encoding.InteractionEncoder()
    with writer.SpanWriter(root, 0) as span:
        for row in sorted(rows, key=lambda r: r[F.TIMESTAMP]):
            user = encoding.user_block(row[F.USER_ID], row[F.USER_AGE], row[F.USER_GENDER], row[F.USER_OCCUPATION])
            item = encoding.item_block(row[F.ITEM_ID], row[F.ITEM_TITLE], row[F.ITEM_GENRES], row[F.ITEM_YEAR])
            split = F.EVAL_SPLIT if row[F.TIMESTAMP] == newest[row[F.USER_ID]] else F.TRAIN_SPLIT
            span.write(split, encoder.encode(user, item, row[F.RATING], row[F.TIMESTAMP]))
    writer.write_catalog(root, {c[F.ITEM_ID]: encoding.wrap_example(encoding.item_block(
        c[F.ITEM_ID], c[F.ITEM_TITLE], c[F.ITEM_GENRES], c[F.ITEM_YEAR])) for c in catalog})


def _analyse(rows, out_dir: str, tmp_dir: str) -> None:
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import schema_utils

    from pipeline import curated_schema
    from trainer import preprocessing

    spec = schema_utils.schema_as_feature_spec(curated_schema.build_schema()).feature_spec
    with tft_beam.Context(temp_dir=tmp_dir, force_tf_compat_v1=False):
        transform_fn = ([{k: [v] for k, v in r.items()} for r in rows], tft.DatasetMetadata.from_feature_spec(spec)) \
            | tft_beam.AnalyzeDataset(preprocessing.preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(out_dir)


def _train(data_root: str, transform_dir: str, trained_dir: str) -> None:
    import tensorflow_transform as tft

    from core import features as F
    from ingest import writer
    from online import base_data
    from trainer import export, inputs, train
    from trainer.config import TrainerConfig

    cfg = TrainerConfig(embedding_dim=16, tower_layers=(), epochs=25, batch_size=64, learning_rate=0.2,
                        optimizer="adagrad", user_id_embedding=True, temperature=0.1,
                        ranking_epochs=2, top_k=K, seed=3)
    tft_output = tft.TFTransformOutput(transform_dir)
    layer = tft_output.transform_features_layer()
    vocab = inputs.vocabularies(tft_output)
    arrays = {s: base_data.transform(base_data.read_raw([writer.split_pattern(data_root, 0, s)]), layer)
              for s in (F.TRAIN_SPLIT, F.EVAL_SPLIT)}
    inputs.add_histories(arrays[F.TRAIN_SPLIT], arrays[F.EVAL_SPLIT], num_users=vocab.users - F.OOV_BUCKETS)
    data = inputs.array_dataset(arrays[F.TRAIN_SPLIT], cfg.batch_size, shuffle=True, seed=cfg.seed)
    trained = train.train(data, None, vocab, cfg, item_probabilities=inputs.item_probabilities(data, vocab.items))
    export.save_trained(export.Networks(trained.query_tower, trained.candidate_tower, trained.ranking_model), trained_dir)


def pytest_addoption(parser) -> None:
    parser.addoption("--online-base-cache", default=None,
                     help="folder keeping the tiny online base model between runs (built when absent)")


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, request) -> TinyBase:
    import pathlib

    from core import features as F
    from ingest import writer
    from tests.trainer import tiny_data

    cache = request.config.getoption("--online-base-cache", default=None)
    root = pathlib.Path(cache) if cache else tmp_path_factory.mktemp("online_base")
    rows, catalog = tiny_data.interactions(), tiny_data.catalog()
    base = TinyBase(str(root / "data"), str(root / "transform"), str(root / "trained"), rows, catalog)
    if (root / "COMPLETE").exists():
        return base
    if root.exists():
        shutil.rmtree(root)
    _write_data(base.data_root, rows, catalog)
    train_rows = list(writer.read_examples(writer.split_pattern(base.data_root, 0, F.TRAIN_SPLIT)))
    _analyse(train_rows, base.transform_dir, str(root / "tmp"))
    _train(base.data_root, base.transform_dir, base.trained_dir)
    (root / "COMPLETE").touch()
    return base


@pytest.fixture
def workspace(tmp_path, tiny_base):
    """A fresh copy of the base data plus empty log, serving and state folders."""
    data_root = str(tmp_path / "data")
    shutil.copytree(tiny_base.data_root, data_root)
    for name in ("log", "serving", "state"):
        os.makedirs(tmp_path / name)
    return tmp_path
