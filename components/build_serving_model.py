"""BuildServingModel: the trained networks + the item catalog -> the two-stage serving SavedModel.

Reads the networks to serve (the Trainer's, or the variant CompressModel chose: its
`compression.json` says whether the catalog embeddings are stored as int8), the Transform graph,
the transformed training examples (for the per-user tables) and the item catalog examples;
writes `<serving_model>/Format-Serving`, the SavedModel that the evaluation step judges and the
Pusher copies to the serving directory. The Trainer's full networks, when given, are copied to
`<serving_model>/trained` (not pushed): a later warm-started run starts from them.
"""


import logging
import os
from typing import Optional, Sequence

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils, path_utils

from components.artifact_files import split_files
from compression.serving_variants import Int8ServingModel, ServingContext, make_serving_model, serving_model_class
from core import features as F
from trainer import export
from trainer.entry import TRAINED_SUBDIR
from trainer.item_item_config import ItemItemConfig
from trainer.serving_model import ServingOptions

WARMUP_USERS = 8


def build_serving_model(
    trained_dir: str,
    transform_dir: str,
    train_patterns: Sequence[str],
    catalog_patterns: Sequence[str],
    export_dir: str,
    options: ServingOptions,
    warmup_model_name: Optional[str] = None,
    item_item: Optional[ItemItemConfig] = None,
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
      item_item: the item-item source's settings (None: two-tower candidates only).
    """
    networks = export.load_trained(trained_dir)
    context = ServingContext.load(transform_dir, train_patterns, catalog_patterns, options, item_item=item_item)
    table = context.tables
    logging.info("serving model: %d known users, %d catalog items", len(table.user_keys), len(table.item_keys))
    int8_candidates = serving_model_class(trained_dir) is Int8ServingModel
    module = make_serving_model(networks, context, int8_candidates)
    finalize = None
    if warmup_model_name:
        from trainer import warmup_requests as warmup

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
    trained_model: InputArtifact[standard_artifacts.Model] = None,  # optional input
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
    if trained_model is not None:
        io_utils.copy_dir(path_utils.serving_model_path(trained_model.uri),
                          os.path.join(serving_model.uri, TRAINED_SUBDIR))
