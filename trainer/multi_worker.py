"""Training input of a cluster: every worker reads its share of each global batch.

Under MultiWorkerMirroredStrategy every worker runs its own input pipeline
(`tf.distribute.InputContext`: P pipelines, this one's id i). Both input modes (a split's
`trainer.holdout.ExampleSource`: in-memory arrays or streamed TFRecords) are sharded the same
way: the epoch's shuffled example order, the same on every worker (same seed), is cut to whole
global batches and dealt round-robin to the pipelines BEFORE batching and parsing, example k
going to pipeline k mod P; each pipeline batches at the per-replica size B / replicas. Step s of
the cluster then trains on exactly the examples of step s of one process with global batch B
(examples sB .. sB+B-1 of the order), only split over the replicas, so with the gathered
in-batch negatives (`trainer.replica_negatives`) and the global-batch loss (`trainer.model`) the
cluster computes what one process computes (tested on loopback:
`tests/distributed/test_multi_worker.py`).

What this costs: every worker still reads every serialized record of the streamed input (or
holds every array in memory), and parses and gathers only its own 1/P; reading is cheap next
to parsing. File-level sharding would read less but changes which examples share a batch, and
tf.data's automatic FILE sharding would break the streamed histories (they index examples by
their position in all the files): the training batches are made per worker by a
`DatasetCreator` (never sharded automatically), and the evaluation batches, which Keras shards,
are sharded by batch.

The epoch is cut to whole global batches (floor(examples / B) steps; the few examples past the
last whole batch are a different random few each epoch): every replica must run the same
number of steps, or the collectives of the last step wait forever.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from trainer import holdout, inputs, streaming
from trainer.config import TrainerConfig


def per_replica_batch(global_batch: int, replicas: int) -> int:
    """The batch of one replica: `global_batch` / `replicas`, which must divide evenly.

    Raises:
      ValueError: the global batch is not a multiple of the replicas (named as the config key).
    """
    if replicas < 1 or global_batch % replicas:
        raise ValueError(f"trainer.batch_size={global_batch} must be a multiple of the {replicas} replicas "
                         "of the cluster (each replica trains on an equal share of every global batch)")
    return global_batch // replicas


def steps_per_epoch(examples: int, global_batch: int) -> int:
    """Whole global batches in one epoch of `examples` training examples.

    Raises:
      ValueError: fewer examples than one global batch.
    """
    if examples < global_batch:
        raise ValueError(f"{examples} training examples do not fill one global batch of "
                         f"trainer.batch_size={global_batch}")
    return examples // global_batch


def _shard(ordered: tf.data.Dataset, examples: int, global_batch: int,
           context: tf.distribute.InputContext) -> Tuple[tf.data.Dataset, int]:
    """This pipeline's examples of `ordered` (one epoch, re-iterated each epoch), endless; and its batch."""
    batch = per_replica_batch(global_batch, context.num_replicas_in_sync)
    whole = steps_per_epoch(examples, global_batch) * global_batch
    sharded = ordered.take(whole).repeat().shard(context.num_input_pipelines, context.input_pipeline_id)
    return sharded, batch


def data_sharded(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's automatic sharding by batch (never by file) across workers."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def array_shard(arrays: Dict[str, np.ndarray], global_batch: int, seed: int,
                context: tf.distribute.InputContext) -> tf.data.Dataset:
    """This pipeline's batches of in-memory arrays (endless; a new order every epoch).

    With one pipeline and one replica the first epoch's batches are those of
    `trainer.inputs.array_dataset(arrays, global_batch, shuffle=True, seed=seed)`, cut to
    whole batches.
    """
    examples = len(next(iter(arrays.values())))
    order = tf.data.Dataset.range(examples).shuffle(max(examples, 1), seed=seed, reshuffle_each_iteration=True)
    indices, batch = _shard(order, examples, global_batch, context)
    return inputs.gathered_batches(indices.batch(batch), arrays)


def stream_shard(source: holdout.ExampleSource, tf_transform_output: tft.TFTransformOutput,
                 global_batch: int, seed: int, shuffle_buffer: int,
                 context: tf.distribute.InputContext) -> tf.data.Dataset:
    """This pipeline's batches of the streamed training files, each example with its history.

    With one pipeline and one replica the first epoch's batches are those of
    `trainer.streaming.train_dataset` with the same timeline, batch, seed and buffer.
    """
    records = streaming.train_records(source.patterns, source.timeline, shuffle=True, seed=seed,
                                      shuffle_buffer=shuffle_buffer)
    records, batch = _shard(records, source.examples, global_batch, context)
    batches = records.batch(batch).map(streaming.history_parser(tf_transform_output, source.timeline),
                                       num_parallel_calls=inputs.AUTOTUNE)
    return batches.prefetch(inputs.AUTOTUNE)


def sharded_batches(source: holdout.ExampleSource, tf_transform_output: tft.TFTransformOutput,
                    cfg: TrainerConfig, context: tf.distribute.InputContext) -> tf.data.Dataset:
    """`array_shard` or `stream_shard` of `source` (arrays or files), with the config's batch and seed."""
    if source.arrays is None:
        return stream_shard(source, tf_transform_output, cfg.batch_size, cfg.seed, cfg.shuffle_buffer, context)
    return array_shard(source.arrays, cfg.batch_size, cfg.seed, context)


def dataset_creator(source: holdout.ExampleSource, tf_transform_output: tft.TFTransformOutput,
                    cfg: TrainerConfig) -> tf.keras.utils.experimental.DatasetCreator:
    """The Keras input that makes each worker's `sharded_batches` of `source` (fit it with
    `steps_per_epoch(source.examples, cfg.batch_size)` steps per epoch)."""
    return tf.keras.utils.experimental.DatasetCreator(
        lambda context: sharded_batches(source, tf_transform_output, cfg, context))


def is_cluster(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` trains on several workers (each with its own input pipeline)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and resolver is not None
            and bool(resolver.cluster_spec().as_dict()))


@dataclasses.dataclass(frozen=True)
class ClusterSteps:
    """Steps of one epoch of the fit-part fit and of the refit on the whole train split (None:
    one pass over the one-process batches)."""

    fit: Optional[int] = None
    train: Optional[int] = None


def trainer_inputs(data: holdout.HoldoutInputs, strategy: tf.distribute.Strategy,
                   tf_transform_output: tft.TFTransformOutput, cfg: TrainerConfig
                   ) -> Tuple[holdout.HoldoutInputs, ClusterSteps]:
    """The Trainer's inputs under `strategy`: `data` as it is on one process; on a cluster the fit
    and train batches made per worker (`dataset_creator`) and the evaluation batches sharded by
    batch.

    Returns:
      (the inputs, the steps of one epoch of each fit).
    """
    if not is_cluster(strategy):
        return data, ClusterSteps()
    if data.fit_source is None or data.train_source is None:
        raise ValueError("the Trainer's inputs lack the example sources that a cluster's input is sharded from")
    steps = ClusterSteps(fit=steps_per_epoch(data.fit_source.examples, cfg.batch_size),
                         train=steps_per_epoch(data.train_source.examples, cfg.batch_size))
    sharded = dataclasses.replace(
        data, fit=dataset_creator(data.fit_source, tf_transform_output, cfg), label=data_sharded(data.label),
        train=dataset_creator(data.train_source, tf_transform_output, cfg), eval=data_sharded(data.eval))
    return sharded, steps


def write_dir(path: str, strategy: tf.distribute.Strategy) -> str:
    """Where this task writes what the chief writes to `path`.

    Every worker of a MultiWorkerMirroredStrategy must take part in saving (the save runs
    collective ops), but only the chief's copy is kept: the others write to a fresh temporary
    directory (delete it with `discard`).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if not is_cluster(strategy) or resolver is None or resolver.task_type in (None, "chief"):
        return path
    if resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().as_dict():
        return path  # worker 0 is the chief of a cluster without one
    return tempfile.mkdtemp(prefix=f"{resolver.task_type}-{resolver.task_id}-")


def discard(written: str, path: str) -> None:
    """Deletes `written` when it is a non-chief's temporary copy of `path` (`write_dir`)."""
    if written != path:
        shutil.rmtree(written)
