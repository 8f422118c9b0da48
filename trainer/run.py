"""TFX Trainer entry point (`run_fn`): read hyperparameters and data, build, fit, save."""

from __future__ import annotations

import logging
import os

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from pipeline.config import TrainerConfig, from_dict
from trainer import distribution, export, inputs, train
from trainer import features as F

HPARAMS_KEY = "trainer"


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the retrieval and ranking networks and writes them to the serving_model_dir."""
    cfg = from_dict(TrainerConfig, fn_args.custom_config.get(HPARAMS_KEY, {}), "trainer")
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    vocab = inputs.vocabularies(tft_output)
    train_arrays = inputs.load_arrays(fn_args.train_files, tft_output)
    eval_arrays = inputs.load_arrays(fn_args.eval_files, tft_output)
    inputs.add_histories(train_arrays, eval_arrays, num_users=vocab.users - F.OOV_BUCKETS)
    train_data = inputs.array_dataset(train_arrays, cfg.batch_size, shuffle=True, seed=cfg.seed)
    eval_data = inputs.array_dataset(eval_arrays, cfg.batch_size)
    probabilities = inputs.item_probabilities(train_data, vocab.items)
    logging.info("training on %d users x %d items (vocabulary sizes incl. OOV)", vocab.users, vocab.items)

    def callbacks(stage: str):
        return [tf.keras.callbacks.TensorBoard(os.path.join(fn_args.model_run_dir, stage), update_freq="epoch")]

    trained = train.train(
        train_data,
        eval_data,
        vocab,
        cfg,
        item_probabilities=probabilities,
        strategy=distribution.choose_strategy(cfg.strategy),
        callbacks=callbacks,
        steps_per_epoch=fn_args.train_steps or None,
    )
    export.save_trained(
        export.Networks(trained.query_tower, trained.candidate_tower, trained.ranking_model),
        fn_args.serving_model_dir,
    )
