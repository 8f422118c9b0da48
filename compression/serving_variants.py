"""Serving SavedModels of compressed variants, built the way `BuildServingModel` builds them.

`ServingContext.load` reads the catalog, its transformed features and the per-user tables once
(they do not depend on the networks); `export_variant` then embeds the catalog with a variant's
candidate tower and writes its two-stage serving SavedModel with `trainer.export.export_serving`.

`Int8ServingModel` is the `ServingModel` with its float matrices (the catalog's candidate
embeddings, the item-item neighbour weights, the EASE block) stored row-wise as int8
(`int8.Int8Matrix`): the same signatures, a quarter of the bytes of those matrices. The
compression stage writes `compression.json` next to the networks it hands on; `serving_model_class`
reads it so that BuildServingModel builds the serving model the chosen variant was measured as.
With `RetrievalIndexConfig(kind='scann')` the variant retrieves through a ScaNN index
(`trainer.scann_serving_model`), which only a server with `scann` installed can load.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, Optional, Sequence, Tuple, Type

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from compression import int8
from core import features as F
from trainer import export, inputs, tables
from trainer.candidate_ranker import TrainedRanker
from trainer.item_item_config import ItemItemConfig
from trainer.retrieval_index import RetrievalIndexConfig
from trainer.scann_serving_model import ScannServingModel
from trainer.serving_model import ServingModel, ServingOptions, ServingTables

MARKER_FILE = "compression.json"


def quantize_float_tables(module: ServingModel) -> None:
    """Stores the float matrices of `module` row-wise as int8 (`int8.Int8Matrix`), in place:
    the candidate embeddings, the item-item neighbour weights and the EASE block's weights,
    where the module holds them. Each replaces (and untracks) its float variable, so it must run
    before the signatures are traced. Vectors (popularity scores) stay float: one scale per value
    would save nothing."""
    module.candidate_embeddings = int8.Int8Matrix(module.candidate_embeddings.numpy(), name="candidate_embeddings")
    if module.item_item is not None:
        weights = module.item_item.neighbour_weights.numpy().astype(np.float32)
        module.item_item.neighbour_weights = int8.Int8Matrix(weights, name="neighbour_weights")
    ease_block = getattr(module, "ease_block", None)
    if ease_block is not None:
        ease_block.weights = int8.Int8Matrix(ease_block.weights.numpy(), name="weights")


class Int8ServingModel(ServingModel):
    """`ServingModel` whose float matrices (`quantize_float_tables`) are int8 with per-row scales."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        quantize_float_tables(self)


@dataclasses.dataclass(frozen=True)
class ServingContext:
    """What every variant's serving model shares: catalog, tables, transform layer, options."""

    tft_output: tft.TFTransformOutput
    catalog: Dict[str, np.ndarray]
    item_features: Dict[str, np.ndarray]
    tables: ServingTables
    options: ServingOptions
    candidate_ranker: Optional[TrainedRanker] = None

    @classmethod
    def from_interactions(
        cls,
        tft_output: tft.TFTransformOutput,
        catalog: Dict[str, np.ndarray],
        item_features: Dict[str, np.ndarray],
        interactions: Dict[str, np.ndarray],
        options: ServingOptions,
        item_item: Optional[ItemItemConfig] = None,
        candidate_ranker: Optional[TrainedRanker] = None,
        extra_interactions: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None,
    ) -> "ServingContext":
        """The context of already-read interactions (`tables.USER_COLUMNS`); with a candidate
        ranker the tables also carry its popularity sources, at the ranker's half-life, and unknown
        users get the list the ranker's training chose for them (`cold_start_half_life`);
        `extra_interactions` as `tables.build_tables` takes them."""
        half_life = candidate_ranker.half_life if candidate_ranker is not None else None
        ease = None
        if candidate_ranker is not None and "ease" in candidate_ranker.sources:
            ease = (candidate_ranker.ease_items, candidate_ranker.ease_l2)
        cold_start = candidate_ranker.cold_start_half_life if candidate_ranker is not None else None
        table = tables.build_tables([interactions], tft_output, catalog, item_features, item_item=item_item,
                                    half_life=half_life, ease=ease, extra_interactions=extra_interactions,
                                    cold_start_half_life=cold_start)
        return cls(tft_output, catalog, item_features, table, options, candidate_ranker)

    @classmethod
    def load(
        cls,
        transform_dir: str,
        train_patterns: Sequence[str],
        catalog_patterns: Sequence[str],
        options: ServingOptions,
        item_item: Optional[ItemItemConfig] = None,
    ) -> "ServingContext":
        """Reads the catalog and builds the tables exactly as `build_serving_model` does.

        Args:
          transform_dir: the Transform graph.
          train_patterns: transformed training examples.
          catalog_patterns: raw item catalog examples.
          options: top-K and two-stage settings.
          item_item: the item-item source's settings (None: no item-item source).
        """
        tft_output = tft.TFTransformOutput(transform_dir)
        catalog = tables.read_catalog(catalog_patterns)
        item_features = tables.transform_catalog(catalog, tft_output)
        data = inputs.transformed_dataset(train_patterns, tft_output, batch_size=8192, cache=False)
        names = F.USER_TRANSFORMED + (F.ITEM_ID_XF, F.TIMESTAMP_XF)
        table = tables.build_tables(
            inputs.iterate_numpy(data, names), tft_output, catalog, item_features, item_item=item_item
        )
        return cls(tft_output, catalog, item_features, table, options)


def make_serving_model(
    networks: export.Networks, context: ServingContext, int8_candidates: bool,
    index: RetrievalIndexConfig = RetrievalIndexConfig(),
) -> ServingModel:
    """The two-stage serving module of `networks`.

    Args:
      networks: the trained networks.
      context: catalog, tables, transform layer and options.
      int8_candidates: store the candidate embeddings as int8 (brute-force index only: a ScaNN
        index compresses the embeddings its own way).
      index: the retrieval index; 'scann' builds a `ScannServingModel` (custom ops).
    """
    embeddings = tables.embed_catalog(networks.candidate_tower, context.item_features)
    args = (networks.query_tower, networks.ranking_model, embeddings, context.tables,
            context.tft_output.transform_features_layer(), context.options, context.candidate_ranker)
    if index.approximate:
        return ScannServingModel(*args, index=index)
    cls = Int8ServingModel if int8_candidates else ServingModel
    return cls(*args)


def export_variant(
    networks: export.Networks, context: ServingContext, export_dir: str, int8_candidates: bool,
    index: RetrievalIndexConfig = RetrievalIndexConfig(),
) -> str:
    """Writes the serving SavedModel of `networks` to `export_dir` (atomically); returns it."""
    module = make_serving_model(networks, context, int8_candidates, index)
    return export.export_serving(module, export_dir)


def write_marker(model_dir: str, variant: str, int8_candidates: bool, reason: str) -> str:
    """Writes `compression.json` into a networks directory; returns its path.

    Args:
      model_dir: the directory written by `trainer.export.save_trained`.
      variant: the chosen variant's name.
      int8_candidates: whether its serving model stores the candidate embeddings as int8.
      reason: why it was chosen.
    """
    path = os.path.join(model_dir, MARKER_FILE)
    payload = {"variant": variant, "int8_candidate_embeddings": bool(int8_candidates), "reason": reason}
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(json.dumps(payload, indent=2, sort_keys=True))
    return path


def read_marker(model_dir: str) -> Optional[dict]:
    """The `compression.json` of a networks directory, or None (an uncompressed Trainer model).

    Raises:
      ValueError: the file exists but is not a JSON object with `int8_candidate_embeddings`.
    """
    path = os.path.join(model_dir, MARKER_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        marker = json.loads(handle.read())
    if not isinstance(marker, dict) or not isinstance(marker.get("int8_candidate_embeddings"), bool):
        raise ValueError(f"{path}: expected an object with a boolean 'int8_candidate_embeddings'")
    return marker


def serving_model_class(model_dir: str) -> Type[ServingModel]:
    """`Int8ServingModel` when the networks of `model_dir` were chosen with int8 candidate
    embeddings, else `ServingModel`."""
    marker = read_marker(model_dir)
    return Int8ServingModel if marker and marker["int8_candidate_embeddings"] else ServingModel
