"""BuildServingModel: the trained networks + the item catalog -> the two-stage serving SavedModel.

Reads the Trainer's networks, the Transform graph, the transformed training examples (for the
per-user tables) and the item catalog examples; writes `<serving_model>/Format-Serving`, the
SavedModel that the evaluation step judges and the Pusher copies to the serving directory.
"""


import logging
import os
from typing import List, Optional, Sequence

import tensorflow_transform as tft
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx import types
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import path_utils

from trainer import export, inputs, tables
from trainer import features as F
from trainer.serving_model import ServingModel, ServingOptions

WARMUP_USERS = 8


def split_files(artifact: types.Artifact, split: str) -> List[str]:
    """Glob pattern of one split's gzipped TFRecord files in an Examples artifact."""
    (uri,) = artifact_utils.get_split_uris([artifact], split)
    return [os.path.join(uri, "*.gz")]


def build_serving_model(
    trained_dir: str,
    transform_dir: str,
    train_patterns: Sequence[str],
    catalog_patterns: Sequence[str],
    export_dir: str,
    options: ServingOptions,
    warmup_model_name: Optional[str] = None,
) -> str:
    """Builds and exports the serving model; returns `export_dir`.

    Args:
      trained_dir: directory written by `trainer.export.save_trained`.
      transform_dir: the Transform graph.
      train_patterns: transformed training examples.
      catalog_patterns: raw item catalog examples.
      export_dir: where the SavedModel goes (created atomically; must not exist).
      options: top-K and two-stage settings.
      warmup_model_name: when set, TF Serving warmup requests are written for this model name.
    """
    networks = export.load_trained(trained_dir)
    tft_output = tft.TFTransformOutput(transform_dir)
    catalog = tables.read_catalog(catalog_patterns)
    item_features = tables.transform_catalog(catalog, tft_output)
    embeddings = tables.embed_catalog(networks.candidate_tower, item_features)
    data = inputs.transformed_dataset(train_patterns, tft_output, batch_size=8192, cache=False)
    names = F.USER_TRANSFORMED + (F.ITEM_ID_XF, F.TIMESTAMP_XF)
    table = tables.build_tables(inputs.iterate_numpy(data, names), tft_output, catalog, item_features)
    logging.info("serving model: %d known users, %d catalog items", len(table.user_keys), len(table.item_keys))
    module = ServingModel(
        networks.query_tower, networks.ranking_model, embeddings, table,
        tft_output.transform_features_layer(), options,
    )
    finalize = None
    if warmup_model_name:
        from serving import warmup

        users = [u.decode() for u in table.user_keys[:WARMUP_USERS]] + ["unknown-user"]

        def finalize(tmp_dir: str) -> None:
            warmup.write_warmup_requests(tmp_dir, warmup_model_name, users)

    return export.export_serving(module, export_dir, finalize=finalize)


@component
def BuildServingModel(  # noqa: N802 - TFX component names are CamelCase
    model: InputArtifact[standard_artifacts.Model],
    transform_graph: InputArtifact[standard_artifacts.TransformGraph],
    transformed_examples: InputArtifact[standard_artifacts.Examples],
    items: InputArtifact[standard_artifacts.Examples],
    serving_model: OutputArtifact[standard_artifacts.Model],
    model_name: Parameter[str] = "recsys",
    top_k: Parameter[int] = 100,
    candidates_to_rank: Parameter[int] = 100,
    ranking_weight: Parameter[float] = 0.0,
) -> None:
    """TFX component wrapper of `build_serving_model`."""
    build_serving_model(
        trained_dir=path_utils.serving_model_path(model.uri),
        transform_dir=transform_graph.uri,
        train_patterns=split_files(transformed_examples, F.TRAIN_SPLIT),
        catalog_patterns=split_files(items, "catalog"),
        export_dir=path_utils.serving_model_path(serving_model.uri),
        options=ServingOptions(
            top_k=top_k, candidates_to_rank=candidates_to_rank, ranking_weight=ranking_weight
        ),
        warmup_model_name=model_name,
    )
