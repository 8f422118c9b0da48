"""Fixtures: tiny data run through the real preprocessing_fn under tf.Transform's Beam impl.

`build_serving` wraps trained networks in the two-stage serving model over the tiny catalog.
"""

from __future__ import annotations

import dataclasses
import pathlib

import pytest


@dataclasses.dataclass(frozen=True)
class TransformedTiny:
    transform_dir: str
    train_pattern: str
    rows: list
    catalog: list


def _write_transformed(rows, path: pathlib.Path, tft_output) -> None:
    import tensorflow as tf
    from tensorflow_transform.coders import example_proto_coder

    coder = example_proto_coder.ExampleProtoCoder(tft_output.transformed_metadata.schema)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            writer.write(coder.encode(row))


def transform_rows(rows, root, train_file):
    """Analyses `rows` with `preprocessing_fn` under tf.Transform's Beam implementation.

    Writes the Transform graph to `root/transform` and the transformed rows to `train_file`
    (gzipped TFRecord); returns the `TFTransformOutput`.
    """
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import schema_utils

    from pipeline import curated_schema as schema_module
    from trainer import preprocessing

    spec = schema_utils.schema_as_feature_spec(schema_module.build_schema()).feature_spec
    instances = [{k: [v] for k, v in row.items()} for row in rows]
    with tft_beam.Context(temp_dir=str(root / "tmp"), force_tf_compat_v1=False):
        (transformed, _), transform_fn = (
            instances, tft.DatasetMetadata.from_feature_spec(spec)
        ) | tft_beam.AnalyzeAndTransformDataset(preprocessing.preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(root / "transform"))
    tft_output = tft.TFTransformOutput(str(root / "transform"))
    _write_transformed(transformed, train_file, tft_output)
    return tft_output


@pytest.fixture(scope="session")
def transformed_tiny(tmp_path_factory) -> TransformedTiny:
    from tests.trainer import tiny_data

    root = tmp_path_factory.mktemp("tiny_transform")
    rows = tiny_data.interactions()
    train_file = root / "train.tfrecord.gz"
    transform_rows(rows, root, train_file)
    return TransformedTiny(str(root / "transform"), str(train_file), rows, tiny_data.catalog())


def build_serving(transformed: TransformedTiny, tft_output, data, query_tower, candidate_tower, ranking_model,
                  options, item_item=None):
    """The `ServingModel` of trained networks over the tiny catalog, and its `ServingTables`.

    Args:
      transformed: the `transformed_tiny` fixture.
      tft_output: its `TFTransformOutput`.
      data: the training batches (the per-user tables are built from them).
      query_tower / candidate_tower / ranking_model: the networks.
      options: `trainer.serving_model.ServingOptions`.
      item_item: optional `trainer.item_item_config.ItemItemConfig` (adds the item-item source).
    """
    import numpy as np

    from core import features as F
    from trainer import inputs, serving_model, tables

    from core.utf8 import to_bytes

    catalog = {name: np.array([row[name] for row in transformed.catalog]) for name in F.CATALOG_FEATURES}
    for name in (F.ITEM_ID, F.ITEM_TITLE, F.ITEM_GENRES):
        catalog[name] = to_bytes(catalog[name])
    item_features = tables.transform_catalog(catalog, tft_output)
    embeddings = tables.embed_catalog(candidate_tower, item_features)
    names = F.USER_TRANSFORMED + (F.ITEM_ID_XF, F.TIMESTAMP_XF)
    table = tables.build_tables(inputs.iterate_numpy(data, names), tft_output, catalog, item_features,
                                item_item=item_item)
    module = serving_model.ServingModel(
        query_tower, ranking_model, embeddings, table, tft_output.transform_features_layer(), options
    )
    return module, table
