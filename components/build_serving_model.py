"""BuildServingModel: the trained networks + the item catalog -> the serving SavedModels.

Reads the networks to serve (the Trainer's, or the variant CompressModel chose: its
`compression.json` says whether the catalog embeddings are stored as int8), the Transform graph,
the transformed examples (for the per-user tables) and the item catalog examples.

With the candidate ranker on (the default), it first trains the learned ranker over the merged
candidate sources (`trainer.ranker_training`: sources fitted on the fit part of the train split,
labels from its label slice; the two-tower source uses the Trainer's `fit_part/` networks) and
saves it to `<serving_model>/candidate_ranker`.

It writes two SavedModels with the same networks, ranker and retrieval index (brute force, or a
ScaNN index with `retrieval_index.kind: scann`, whose SavedModels need ScaNN's custom ops: the
evaluation step judges, and the Pusher pushes, the ScaNN model):
* `<serving_model>/Format-Serving`: tables (histories, seen items, item-item neighbours,
  popularity) from the train split only: the model the evaluation step judges on the eval split;
* `<full_serving_model>/Format-Serving`: the same tables from every interaction (train and eval
  splits): the model the Pusher copies to the serving directory once the first is blessed, so
  users' newest interactions shape their recommendations and are not recommended back.
The Trainer's full networks, when given, are copied to `<serving_model>/trained` and
`<full_serving_model>/trained` (not pushed): a later warm-started run starts from them.
"""


import json
import logging
import os
from typing import Optional, Sequence

import numpy as np
import tensorflow_transform as tft
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils, path_utils

from components.artifact_files import split_files
from compression.serving_variants import Int8ServingModel, ServingContext, make_serving_model, serving_model_class
from core import features as F
from core import tfrecord_columns
from core.config_loader import from_dict
from core.utf8 import to_str
from trainer import export, inputs, tables
from trainer.candidate_ranker import save_ranker
from trainer.candidate_ranker_config import CandidateRankerConfig
from trainer.entry import FIT_PART_SUBDIR, TRAINED_SUBDIR
from trainer.item_item_config import ItemItemConfig
from trainer.ranker_training import fit_candidate_ranker
from trainer.retrieval_index import RetrievalIndexConfig
from trainer.serving_model import ServingOptions

RANKER_SUBDIR = "candidate_ranker"  # beside a serving model's Format-Serving: the ranker it serves

WARMUP_USERS = 8


def _read_interactions(patterns: Sequence[str], tft_output) -> dict:
    data = inputs.transformed_dataset(patterns, tft_output, batch_size=8192, cache=False)
    return tables.concat_batches(inputs.iterate_numpy(data, tables.USER_COLUMNS))


def build_serving_model(
    trained_dir: str,
    transform_dir: str,
    train_patterns: Sequence[str],
    catalog_patterns: Sequence[str],
    export_dir: str,
    options: ServingOptions,
    warmup_model_name: Optional[str] = None,
    item_item: Optional[ItemItemConfig] = None,
    ranker: Optional[CandidateRankerConfig] = None,
    split: str = "random",
    fit_part_dir: Optional[str] = None,
    ranker_dir: Optional[str] = None,
    eval_patterns: Sequence[str] = (),
    full_export_dir: Optional[str] = None,
    raw_eval_patterns: Sequence[str] = (),
    index: RetrievalIndexConfig = RetrievalIndexConfig(),
) -> str:
    """Builds and exports the serving model (and the all-interactions one); returns `export_dir`.

    Args:
      trained_dir: directory written by `trainer.export.save_trained`.
      transform_dir: the Transform graph.
      train_patterns: transformed training examples.
      catalog_patterns: raw item catalog examples.
      export_dir: where the SavedModel goes (created atomically; must not exist).
      options: top-K and two-stage settings.
      warmup_model_name: when set, TF Serving warmup requests are written for this model name.
      item_item: the item-item source's settings (None: the default settings when the ranker
        reads the source, else no item-item source).
      ranker: the candidate ranker's settings (None or disabled: no ranker).
      split: the run's split ("random" or "time"): how the ranker's label slice is cut.
      fit_part_dir: the Trainer's networks fitted without the label slice, if any.
      ranker_dir: where the trained ranker is saved (None: not saved).
      eval_patterns: transformed eval examples, added to the tables of the full model.
      full_export_dir: where the model with tables from every interaction goes (None: not built).
      raw_eval_patterns: raw eval examples; their interactions with items outside the Transform's
        item vocabulary (first rated in the eval split) join the full model's tables by raw id.
      index: the retrieval index of both SavedModels ('scann': `trainer.scann_serving_model`,
        built over each model's catalog embeddings).
    """
    networks = export.load_trained(trained_dir)
    tft_output = tft.TFTransformOutput(transform_dir)
    catalog = tables.read_catalog(catalog_patterns)
    if index.approximate:  # checked before any work: more leaves than items is a one-line error
        index.resolve_leaves(len(catalog[F.ITEM_ID]))
    item_features = tables.transform_catalog(catalog, tft_output)
    train = _read_interactions(train_patterns, tft_output)
    trained_ranker = None
    if ranker is not None and ranker.enabled:
        item_item = item_item or ItemItemConfig()
        fit_networks = None
        if fit_part_dir and all(os.path.exists(os.path.join(fit_part_dir, n)) for n in export.NETWORKS):
            fit_networks = export.load_trained(fit_part_dir)
        trained_ranker = fit_candidate_ranker(
            train, tft_output, catalog, item_features, split, ranker, item_item, fit_networks,
            options.context_timestamp, log=lambda line: print(line, flush=True),
        )
        if ranker_dir:
            save_ranker(trained_ranker, ranker_dir, ranker.layers, ranker.bags)
    int8_candidates = serving_model_class(trained_dir) is Int8ServingModel
    finalize = None
    if warmup_model_name:
        from trainer import warmup_requests as warmup

        users = list(to_str(tft_output.vocabulary_by_name(F.USER_ID_VOCAB)[:WARMUP_USERS])) + ["unknown-user"]

        def finalize(tmp_dir: str) -> None:
            warmup.write_warmup_requests(tmp_dir, warmup_model_name, users)

    def export_with(interactions: dict, directory: str, extra=None) -> str:
        context = ServingContext.from_interactions(tft_output, catalog, item_features, interactions, options,
                                                   item_item=item_item, candidate_ranker=trained_ranker,
                                                   extra_interactions=extra)
        logging.info("serving model: %d known users, %d catalog items", len(context.tables.user_keys),
                     len(context.tables.item_keys))
        module = make_serving_model(networks, context, int8_candidates, index)
        if index.approximate:
            leaves, searched = module.index.leaves
            print(f"serving model: ScaNN retrieval index, {leaves} leaves, {searched} searched per query", flush=True)
        return export.export_serving(module, directory, finalize=finalize)

    export_with(train, export_dir)
    if full_export_dir:
        every, extra = train, None
        if eval_patterns:
            held_out = _read_interactions(eval_patterns, tft_output)
            every = {name: np.concatenate([train[name], held_out[name]]) for name in train}
        if raw_eval_patterns:
            raw = tfrecord_columns.read_columns(raw_eval_patterns, [F.USER_ID, F.ITEM_ID, F.TIMESTAMP],
                                                required=False, decode_strings=True)
            extra = tables.out_of_vocabulary_interactions(raw, tft_output, catalog[F.ITEM_ID])
            logging.info("full serving model: %d eval interactions with items outside the vocabulary", len(extra[0]))
        export_with(every, full_export_dir, extra)
    return export_dir


@component
def BuildServingModel(  # noqa: N802 - TFX component names are CamelCase
    model: InputArtifact[standard_artifacts.Model],
    transform_graph: InputArtifact[standard_artifacts.TransformGraph],
    transformed_examples: InputArtifact[standard_artifacts.Examples],
    items: InputArtifact[standard_artifacts.Examples],
    serving_model: OutputArtifact[standard_artifacts.Model],
    full_serving_model: OutputArtifact[standard_artifacts.Model],
    trained_model: InputArtifact[standard_artifacts.Model] = None,  # optional input
    examples: InputArtifact[standard_artifacts.Examples] = None,  # optional: the raw interactions
    model_name: Parameter[str] = "recsys",
    top_k: Parameter[int] = 100,
    candidates_to_rank: Parameter[int] = 100,
    ranking_weight: Parameter[float] = 0.0,
    split: Parameter[str] = "random",
    candidate_ranker: Parameter[str] = "{}",  # CandidateRankerConfig as JSON
    item_item: Parameter[str] = "{}",  # ItemItemConfig as JSON
    retrieval_index: Parameter[str] = "{}",  # RetrievalIndexConfig as JSON
) -> None:
    """TFX component wrapper of `build_serving_model`."""
    ranker_cfg = from_dict(CandidateRankerConfig, json.loads(candidate_ranker), "candidate_ranker")
    item_item_cfg = from_dict(ItemItemConfig, json.loads(item_item), "item_item")
    index_cfg = from_dict(RetrievalIndexConfig, json.loads(retrieval_index), "retrieval_index")
    trainer_dir = path_utils.serving_model_path(trained_model.uri) if trained_model is not None else None
    ranker_dir = os.path.join(serving_model.uri, RANKER_SUBDIR)
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
        item_item=item_item_cfg if item_item_cfg.enabled else None,
        ranker=ranker_cfg,
        split=split,
        fit_part_dir=os.path.join(trainer_dir, FIT_PART_SUBDIR) if trainer_dir else None,
        ranker_dir=ranker_dir,
        eval_patterns=split_files(transformed_examples, F.EVAL_SPLIT),
        full_export_dir=path_utils.serving_model_path(full_serving_model.uri),
        raw_eval_patterns=split_files(examples, F.EVAL_SPLIT) if examples is not None else (),
        index=index_cfg,
    )
    for artifact in (serving_model, full_serving_model):
        if trainer_dir is not None:
            io_utils.copy_dir(trainer_dir, os.path.join(artifact.uri, TRAINED_SUBDIR))
        if artifact is not serving_model and os.path.isdir(ranker_dir):
            io_utils.copy_dir(ranker_dir, os.path.join(artifact.uri, RANKER_SUBDIR))
