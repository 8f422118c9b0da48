"""`run_fn` under `trainer.strategy: parameter_server`: sharded training, checkpoints, export.

The chief (the coordinator) reads the transformed train and eval splits into memory, builds the
models under the `ParameterServerStrategy` (`trainer.parameter_server`: every large embedding
table split across the parameter servers) and fits them with Keras `fit` on a dataset function
(`tf.keras.utils.experimental.DatasetCreator`) that every worker runs for itself. Each worker
step is one asynchronous update of a whole `batch_size` batch; an epoch is
ceil(train examples / batch_size) steps over all workers (or `fn_args.train_steps`).

After every epoch the model (networks and optimizer, sharded variables as slices of their full
shape) is checkpointed under `model_run_dir/checkpoints/<fit>`. The served networks are rebuilt
on the chief without a partitioner and restored from the last checkpoints, so
`serving_model_dir` holds ordinary single-process networks (`trainer.export.save_trained`) that
BuildServingModel turns into the usual serving model. The worker and ps tasks only serve.

Unlike the other strategies there is no label slice, early stopping or refit: the whole train
split is fitted for `epochs` / `ranking_epochs`, and `fit_part/` networks are not written.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from core import features as F
from trainer import bias_model, distribution, export, inputs, parameter_server, train, warm_start
from trainer.bias_model import Biases
from trainer.config import TrainerConfig
from trainer.towers import Vocabularies

CHECKPOINT_SUBDIR = "checkpoints"
SUMMARY_FILE = "training_summary.json"

logger = logging.getLogger(__name__)


def dataset_creator(arrays: Mapping[str, np.ndarray], batch_size: int, seed: int
                    ) -> tf.keras.utils.experimental.DatasetCreator:
    """The per-worker input of `fit`: endless batches of `arrays` in a random order of each worker's own.

    The parameter-server strategy gives every worker the same input context (no worker index),
    so the examples are not split between workers: each shuffles all of them with `seed` mixed
    with its clock at start, and together they draw as many batches as the steps ask for.

    Args:
      arrays: one array per feature, all of the same length.
      batch_size: examples per batch (each step's batch; the last partial batch of a pass is dropped).
      seed: mixed into each worker's shuffle seed.

    Returns:
      A `DatasetCreator` for `Model.fit` (with `steps_per_epoch`).
    """
    tensors = {name: tf.convert_to_tensor(value) for name, value in arrays.items()}
    examples = len(next(iter(arrays.values())))

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_step = context.get_per_replica_batch_size(batch_size)
        # Runs on each worker: its clock makes its order differ from the other workers'.
        clock = tf.cast(tf.math.floormod(tf.timestamp() * 1e6, 2.0 ** 31), tf.int64)
        worker_seed = tf.bitwise.bitwise_xor(clock, tf.constant(seed, tf.int64))
        indices = tf.data.Dataset.range(examples).shuffle(examples, seed=worker_seed, reshuffle_each_iteration=True)
        batches = indices.repeat().batch(min(per_step, examples), drop_remainder=True)
        return batches.map(lambda index: {name: tf.gather(value, index) for name, value in tensors.items()},
                           num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    return tf.keras.utils.experimental.DatasetCreator(dataset_fn)


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Checkpoints the model (its networks and optimizer) at the end of every epoch."""

    def __init__(self, directory: str, keep: int = 2) -> None:
        super().__init__()
        self.directory = directory
        self._keep = keep
        self._manager: Optional[tf.train.CheckpointManager] = None

    def on_train_begin(self, logs=None) -> None:
        self._manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=self.model), self.directory,
                                                   max_to_keep=self._keep)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        path = self._manager.save(checkpoint_number=epoch + 1)
        logger.info("checkpoint written: %s", path)


def unsharded_networks(vocab: Vocabularies, cfg: TrainerConfig, checkpoint_dirs: Mapping[str, str],
                       item_probabilities: Optional[np.ndarray] = None, biases: Optional[Biases] = None
                       ) -> export.Networks:
    """The networks of the last checkpoints, rebuilt in this process without a partitioner.

    Each sharded table is restored whole (the checkpoint stores its shards as slices of it).

    Args:
      vocab / cfg / item_probabilities / biases: what the sharded models were built with.
      checkpoint_dirs: fit name ('retrieval', 'ranking' or 'multitask') -> its checkpoint folder.

    Raises:
      FileNotFoundError: a fit has no checkpoint.
    """
    policy = distribution.precision_policy(cfg.mixed_precision)
    with distribution.precision_scope(policy):
        fits, networks = train.build_models(vocab, cfg, item_probabilities, biases)
    for stage, model, _ in fits:
        path = tf.train.latest_checkpoint(checkpoint_dirs[stage])
        if path is None:
            raise FileNotFoundError(f"no checkpoint of the {stage} fit in {checkpoint_dirs[stage]}")
        tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()
    return export.Networks(*networks)


def _checkpointing(directory: str):
    """The `train.train(callbacks=...)` factory: an `EpochCheckpoint` under `directory/<fit>`."""
    return lambda stage: [EpochCheckpoint(os.path.join(directory, stage))]


def applies(cfg: TrainerConfig, environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether the Trainer trains with parameter servers: `cfg.strategy` is 'parameter_server', or
    'auto' without a TPU and TF_CONFIG's cluster has ps tasks (as Vertex AI sets it in each pool).

    Raises:
      ValueError: TF_CONFIG is set but not JSON.
    """
    tf_config = (os.environ if environ is None else environ).get("TF_CONFIG")
    return distribution.cluster_strategy_name(cfg.strategy, tf_config, cfg.tpu_address) == "parameter_server"


def run(fn_args, cfg: TrainerConfig, hyperparameters: Optional[dict] = None,
        environ: Optional[Mapping[str, str]] = None) -> None:
    """`run_fn` of the parameter-server strategy: worker and ps tasks serve, the chief trains.

    Args:
      fn_args: the Trainer's `FnArgs`.
      cfg: the Trainer settings (tuned).
      hyperparameters: the values applied from the Trainer's hyperparameters input (recorded).
      environ: where TF_CONFIG is read (default: this process's environment).

    Raises:
      ValueError: TF_CONFIG does not describe a parameter-server cluster, or a warm start is
        asked for (not supported under this strategy).
    """
    tf_config = parameter_server.read_tf_config(environ)
    if parameter_server.task_type(tf_config) in parameter_server.SERVER_TASKS:
        parameter_server.run_server(tf_config)
        return
    if fn_args.base_model:
        raise ValueError("warm start (a base model) is not supported with trainer.strategy 'parameter_server'")
    strategy = parameter_server.make_strategy(tf_config, cfg.ps_min_shard_bytes)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    vocab = inputs.vocabularies(tft_output)
    train_arrays = inputs.load_arrays(fn_args.train_files, tft_output)
    eval_arrays = inputs.load_arrays(fn_args.eval_files, tft_output)
    inputs.add_histories(train_arrays, eval_arrays, vocab.users - F.OOV_BUCKETS)
    examples = len(train_arrays[F.USER_ID_XF])
    counts = np.bincount(train_arrays[F.ITEM_ID_XF], minlength=vocab.items)[: vocab.items]
    probabilities = inputs.probabilities_from_counts(counts.astype(np.float64))
    biases = None
    if cfg.rating_bias:
        biases = bias_model.fit_biases(train_arrays[F.USER_ID_XF], train_arrays[F.ITEM_ID_XF],
                                       train_arrays[F.RATING_XF].astype(np.float64), vocab.users, vocab.items,
                                       cfg.rating_bias_l2_user, cfg.rating_bias_l2_item)
    steps = fn_args.train_steps or math.ceil(examples / cfg.batch_size)
    checkpoints = os.path.join(fn_args.model_run_dir, CHECKPOINT_SUBDIR)
    trained = train.train(dataset_creator(train_arrays, cfg.batch_size, cfg.seed), None, vocab, cfg,
                          item_probabilities=probabilities, strategy=strategy, callbacks=_checkpointing(checkpoints),
                          steps_per_epoch=steps, biases=biases)
    sharded = export.Networks(trained.query_tower, trained.candidate_tower, trained.ranking_model)
    layout = parameter_server.shard_layout(sharded.as_dict())
    stages = ("multitask",) if cfg.multitask else ("retrieval", "ranking")
    networks = unsharded_networks(vocab, cfg, {s: os.path.join(checkpoints, s) for s in stages}, probabilities, biases)
    export.save_trained(networks, fn_args.serving_model_dir)
    warm_start.save_vocabularies(tft_output, fn_args.serving_model_dir)
    summary = {
        "strategy": "parameter_server", "workers": len(tf_config["cluster"]["worker"]),
        "parameter_servers": len(tf_config["cluster"]["ps"]), "input": "memory",
        "examples": {"train": examples, "eval": len(eval_arrays[F.USER_ID_XF])},
        "steps_per_epoch": steps, "epochs": {"retrieval": cfg.epochs, "ranking": cfg.ranking_epochs},
        "final_loss": dict(zip(("retrieval", "ranking"), train.final_losses(trained))),
        "sharded_variables": layout, "checkpoints": checkpoints, "hyperparameters": hyperparameters or {},
    }
    with tf.io.gfile.GFile(os.path.join(fn_args.serving_model_dir, SUMMARY_FILE), "w") as handle:
        handle.write(json.dumps(summary, indent=2, sort_keys=True, default=float))
    logger.info("parameter-server training: %d sharded variable(s); networks written to %s",
                len(layout), fn_args.serving_model_dir)

