"""TFX Trainer entry point (`run_fn`): read hyperparameters and data, build, fit, save.

Warm start. When the pipeline hands the Trainer a base model (the latest blessed serving model,
`PipelineConfig.warm_start`), the networks it was built from lie in `trained/` beside its
`Format-Serving` (`components.build_serving_model` copies them there with their vocabularies).
The new networks then start from those weights, every embedding row remapped through the old
and new vocabularies (`trainer.warm_start`: ids in both keep their rows, new ids keep their fresh
initialisation, the OOV rows carry over), and train for `warm_start_epochs` /
`warm_start_ranking_epochs` instead of the full schedule.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Callable, Dict, Optional

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from core.config_loader import from_dict
from trainer import distribution, export, inputs, streaming, train, warm_start
from trainer.config import TrainerConfig

HPARAMS_KEY = "trainer"
TRAINED_SUBDIR = "trained"  # beside a serving model's Format-Serving: the networks it was built from


def warm_start_source(base_model: Optional[str]) -> Optional[str]:
    """The networks directory of the base serving model `base_model`, or None.

    Args:
      base_model: `fn_args.base_model` (`<artifact>/Format-Serving`), or None.

    Returns:
      `<artifact>/trained` when it holds networks and vocabularies; None without a base model.

    Raises:
      FileNotFoundError: a base model was given but its networks or vocabularies are missing.
    """
    if not base_model:
        return None
    source = os.path.join(os.path.dirname(base_model.rstrip("/")), TRAINED_SUBDIR)
    for needed in export.NETWORKS + (warm_start.VOCABULARIES_FILE,):
        if not tf.io.gfile.exists(os.path.join(source, needed)):
            raise FileNotFoundError(f"base model {base_model}: {os.path.join(source, needed)} is missing, "
                                    "so the run cannot warm-start from it")
    return source


WARM_START_FILE = "warm_start.json"  # beside the networks: what a warm start carried over


def warm_starter(source: str, tft_output, record: Optional[dict] = None
                 ) -> Callable[[Dict[str, tf.keras.Model]], None]:
    """The `train.train(initialize=...)` hook that copies the networks of `source` in.

    Args:
      source: networks directory of the base model (`warm_start_source`).
      tft_output: the Transform output of this run (its vocabularies).
      record: when given, filled with the warm start's report (source, layers copied,
        embeddings remapped with their kept and new rows, layers left fresh).
    """
    previous = export.load_trained(source).as_dict()
    previous_vocabularies = warm_start.load_vocabularies(source)
    current_vocabularies = warm_start.vocabularies(tft_output)

    def initialize(networks: Dict[str, tf.keras.Model]) -> None:
        report = warm_start.warm_start_networks(previous, previous_vocabularies, networks, current_vocabularies)
        kept = sum(counts["kept"] for counts in report.remapped.values())
        new = sum(counts["new"] for counts in report.remapped.values())
        print(f"warm start from {source}: {len(report.copied)} layers copied, {len(report.remapped)} embeddings "
              f"remapped (rows kept {kept}, new {new}), {len(report.fresh)} left fresh {report.fresh}", flush=True)
        if record is not None:
            record.update(source=source, copied=report.copied, remapped=report.remapped, fresh=report.fresh)

    return initialize


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the retrieval and ranking networks and writes them to the serving_model_dir."""
    cfg = from_dict(TrainerConfig, fn_args.custom_config.get(HPARAMS_KEY, {}), "trainer")
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    source = warm_start_source(fn_args.base_model)
    initialize, record = None, {}
    if source is not None:
        initialize = warm_starter(source, tft_output, record)
        cfg = dataclasses.replace(cfg, epochs=cfg.warm_start_epochs, ranking_epochs=cfg.warm_start_ranking_epochs)
    vocab = inputs.vocabularies(tft_output)
    train_data, eval_data, probabilities, mode = streaming.training_inputs(
        fn_args.train_files, fn_args.eval_files, tft_output, vocab, cfg
    )
    logging.info("training on %d users x %d items (vocabulary sizes incl. OOV), input held in %s",
                 vocab.users, vocab.items, "memory" if mode == "memory" else "files (streamed)")

    def callbacks(stage: str):
        return [tf.keras.callbacks.TensorBoard(os.path.join(fn_args.model_run_dir, stage), update_freq="epoch")]

    trained = train.train(
        train_data,
        eval_data,
        vocab,
        cfg,
        item_probabilities=probabilities,
        strategy=distribution.choose_strategy(cfg.strategy, tpu_address=cfg.tpu_address),
        callbacks=callbacks,
        steps_per_epoch=fn_args.train_steps or None,
        initialize=initialize,
    )
    export.save_trained(
        export.Networks(trained.query_tower, trained.candidate_tower, trained.ranking_model),
        fn_args.serving_model_dir,
    )
    warm_start.save_vocabularies(tft_output, fn_args.serving_model_dir)
    if record:
        with tf.io.gfile.GFile(os.path.join(fn_args.serving_model_dir, WARM_START_FILE), "w") as handle:
            handle.write(json.dumps(record, indent=2, sort_keys=True))
