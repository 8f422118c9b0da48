"""`create_pipeline(cfg)`: the whole TFX DAG, read top to bottom, from a frozen config.

interactions ─ OrderedImportExampleGen ─ StatisticsGen ─ ExampleValidator (curated schema) ─ ValidationGate
                     └─ Transform (after the gate) ─ Trainer ─ CompressModel ─ BuildServingModel ◄─ items
                                                          serving_model (train tables) ┘   └ full_serving_model
                                                                   └─ EvaluateModel ─ blessing ─► Pusher ◄┘
latest blessed model (Resolver) ─► EvaluateModel (the gate's baseline)
                                └► Trainer (warm start, when `warm_start` is set)
Transform ─ Tuner ─ best_hyperparameters ─► Trainer   (when `tuner.enabled`: `recsys run --tune`)
hyperparameters_importer ─────────────────► Trainer   (when `tuner.hyperparameters_file` is set)

OrderedImportExampleGen is TFX's ImportExampleGen without its in-memory shuffle before the write
(`components.import_examples`); Transform's own statistics are off unless `transform_statistics`.
CompressModel is present when `compress` is set (the default); without it BuildServingModel
serves the Trainer's networks. BuildServingModel trains the candidate ranker and writes two
models with the same weights: `serving_model` (tables from the train split), which EvaluateModel
judges on the eval split, and `full_serving_model` (tables from every interaction), which the
Pusher pushes once the first is blessed. With `vertex_trainer` set (the Kubeflow runner's
`vertex_training` switch) the Trainer is TFX's Vertex Training extension: the same `run_fn` as a
Vertex AI CustomJob on chief, worker and parameter-server pools (`pipeline.vertex_training`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional, Tuple

from tfx import v1 as tfx
from tfx.proto import example_gen_pb2, range_config_pb2

from components.build_serving_model import BuildServingModel
from components.compress_model import CompressModel
from components.evaluate_model import EvaluateModel
from components.import_examples import OrderedImportExampleGen
from components.push_model import AtomicPusher
from components.tuner import ReportingTuner
from components.validation_gate import ValidationGate
from core import features as F
from pipeline import curated_schema
from pipeline.config import PipelineConfig
from trainer.entry import HPARAMS_KEY
from trainer.tuning import TRAINER_KEY, TUNER_KEY

PREPROCESSING_FN = "trainer.preprocessing.preprocessing_fn"
RUN_FN = "trainer.entry.run_fn"
TUNER_FN = "trainer.tuning.tuner_fn"
INTERACTIONS_DIR = "interactions"
ITEMS_DIR = "items"


def interactions_input_config(split: str) -> example_gen_pb2.Input:
    """Span-aware input patterns: the temporal split reads the importer's train/eval folders."""
    if split == "time":
        return example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name=F.TRAIN_SPLIT, pattern="span-{SPAN}/train/*"),
            example_gen_pb2.Input.Split(name=F.EVAL_SPLIT, pattern="span-{SPAN}/eval/*"),
        ])
    return example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name="all", pattern="span-{SPAN}/*/*"),
    ])


def interactions_output_config(split: str) -> example_gen_pb2.Output:
    """Random 80/20 hash split when asked for; the temporal split keeps the input splits."""
    if split == "time":
        return example_gen_pb2.Output()
    return example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name=F.TRAIN_SPLIT, hash_buckets=8),
        example_gen_pb2.SplitConfig.Split(name=F.EVAL_SPLIT, hash_buckets=2),
    ]))


def hyperparameters_source(cfg: PipelineConfig, transform, import_schema) -> Tuple[Optional[Any], Optional[Any]]:
    """The node whose HyperParameters artifact the Trainer applies, and that artifact's channel.

    `tuner.enabled`: a Tuner searching on the transformed train split (its `best_hyperparameters`);
    `tuner.hyperparameters_file`: an Importer of that file's folder (saved values reused);
    otherwise (None, None).
    """
    if cfg.tuner.enabled:
        tuner = ReportingTuner(
            tuner_fn=TUNER_FN,
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=import_schema.outputs["schema"],
            train_args=tfx.proto.TrainArgs(splits=[F.TRAIN_SPLIT]),
            eval_args=tfx.proto.EvalArgs(splits=[F.EVAL_SPLIT]),
            custom_config={TRAINER_KEY: dataclasses.asdict(cfg.trainer), TUNER_KEY: dataclasses.asdict(cfg.tuner)},
        ).with_id("Tuner")
        return tuner, tuner.outputs["best_hyperparameters"]
    if cfg.tuner.hyperparameters_file:
        importer = tfx.dsl.Importer(
            source_uri=os.path.dirname(os.path.abspath(cfg.tuner.hyperparameters_file)),
            artifact_type=tfx.types.standard_artifacts.HyperParameters,
        ).with_id("hyperparameters_importer")
        return importer, importer.outputs["result"]
    return None, None


def trainer_class(cfg: PipelineConfig) -> type:
    """TFX's Vertex Training Trainer when `cfg.vertex_trainer` is set, else the in-pod Trainer.

    Both take the same arguments and run the same `run_fn`; the Vertex one submits it as a
    CustomJob on the worker pools named in its custom_config (`pipeline.vertex_training`).
    """
    if cfg.vertex_trainer is not None:
        return tfx.extensions.google_cloud_ai_platform.Trainer
    return tfx.components.Trainer


def create_pipeline(cfg: PipelineConfig) -> tfx.dsl.Pipeline:
    """The recommender pipeline for `cfg`; reads no environment and touches no file."""
    interactions = OrderedImportExampleGen(
        input_base=os.path.join(cfg.data_root, INTERACTIONS_DIR),
        input_config=interactions_input_config(cfg.split),
        output_config=interactions_output_config(cfg.split),
        range_config=range_config_pb2.RangeConfig(
            rolling_range=range_config_pb2.RollingRange(num_spans=cfg.span_window)
        ),
    ).with_id("interaction_example_gen")

    items = OrderedImportExampleGen(
        input_base=os.path.join(cfg.data_root, ITEMS_DIR),
        input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name=F.CATALOG_SPLIT, pattern="*.tfrecord.gz"),
        ]),
        output_config=example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name=F.CATALOG_SPLIT, hash_buckets=1),
        ])),
    ).with_id("item_example_gen")

    statistics = tfx.components.StatisticsGen(examples=interactions.outputs["examples"])
    import_schema = tfx.components.ImportSchemaGen(schema_file=str(curated_schema.SCHEMA_FILE))
    validator = tfx.components.ExampleValidator(
        statistics=statistics.outputs["statistics"], schema=import_schema.outputs["schema"]
    )
    gate = ValidationGate(anomalies=validator.outputs["anomalies"])

    transform = tfx.components.Transform(
        examples=interactions.outputs["examples"],
        schema=import_schema.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=tfx.proto.SplitsConfig(analyze=[F.TRAIN_SPLIT], transform=[F.TRAIN_SPLIT, F.EVAL_SPLIT]),
        disable_statistics=not cfg.transform_statistics,
    )
    transform.add_upstream_node(gate)  # no transform, training or push on anomalous data
    latest_blessed = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    tuning, hyperparameters = hyperparameters_source(cfg, transform, import_schema)
    trainer = trainer_class(cfg)(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=import_schema.outputs["schema"],
        base_model=latest_blessed.outputs["model"] if cfg.warm_start else None,
        train_args=tfx.proto.TrainArgs(splits=[F.TRAIN_SPLIT]),
        eval_args=tfx.proto.EvalArgs(splits=[F.EVAL_SPLIT]),
        hyperparameters=hyperparameters,
        custom_config={HPARAMS_KEY: dataclasses.asdict(cfg.trainer),
                       **(cfg.vertex_trainer.custom_config() if cfg.vertex_trainer else {})},
    )
    to_serve, compress = trainer.outputs["model"], None
    if cfg.compress:
        compress = CompressModel(
            model=trainer.outputs["model"],
            transform_graph=transform.outputs["transform_graph"],
            transformed_examples=transform.outputs["transformed_examples"],
            examples=interactions.outputs["examples"],
            items=items.outputs["examples"],
            trainer_config=json.dumps(dataclasses.asdict(cfg.trainer)),
            compression_config=json.dumps(dataclasses.asdict(cfg.compression)),
            cutoffs=",".join(str(k) for k in cfg.evaluation.cutoffs),
        )
        to_serve = compress.outputs["compressed_model"]
    build = BuildServingModel(
        model=to_serve,
        transform_graph=transform.outputs["transform_graph"],
        transformed_examples=transform.outputs["transformed_examples"],
        items=items.outputs["examples"],
        trained_model=trainer.outputs["model"],
        examples=interactions.outputs["examples"],
        model_name=cfg.pipeline_name,
        top_k=cfg.trainer.top_k,
        candidates_to_rank=cfg.trainer.candidates_to_rank,
        ranking_weight=cfg.trainer.ranking_weight,
        split=cfg.split,
        candidate_ranker=json.dumps(dataclasses.asdict(cfg.candidate_ranker)),
        item_item=json.dumps(dataclasses.asdict(cfg.item_item)),
        retrieval_index=json.dumps(dataclasses.asdict(cfg.retrieval_index)),
    )
    evaluate = EvaluateModel(
        serving_model=build.outputs["serving_model"],
        examples=interactions.outputs["examples"],
        items=items.outputs["examples"],
        baseline_blessing=latest_blessed.outputs["model_blessing"],
        cutoffs=",".join(str(k) for k in cfg.evaluation.cutoffs),
        gate_metric=cfg.evaluation.gate_metric,
        min_value=cfg.evaluation.min_value,
        max_relative_drop=cfg.evaluation.max_relative_drop,
        max_eval_users=cfg.evaluation.max_eval_users,
        gate_baseline=cfg.evaluation.gate_baseline,
        gate_baseline_margin=cfg.evaluation.gate_baseline_margin,
    )
    pusher = AtomicPusher(
        model=build.outputs["full_serving_model"],  # judged as `serving_model`, served with every interaction
        model_blessing=evaluate.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=cfg.serving_model_dir)
        ),
    )
    return tfx.dsl.Pipeline(
        pipeline_name=cfg.pipeline_name,
        pipeline_root=cfg.pipeline_root,
        components=[
            interactions, items, statistics, import_schema, validator, gate, transform, latest_blessed,
            *([tuning] if tuning is not None else []), trainer, *([compress] if compress is not None else []),
            build, evaluate, pusher,
        ],
        enable_cache=cfg.enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            cfg.metadata_path
        ),
        beam_pipeline_args=list(cfg.beam.pipeline_args()),
    )
