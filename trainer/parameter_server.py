"""The parameter-server cluster: its strategy, the server tasks, and where the tables live.

`trainer.strategy: parameter_server` trains with `tf.distribute.ParameterServerStrategy`:
the chief is the coordinator (it runs `run_fn`, schedules steps and writes checkpoints and
networks), workers run the train steps, parameter servers hold the variables. TF_CONFIG names
the cluster (`chief`, `worker`, `ps`) and this task; worker and ps tasks only start a
`tf.distribute.Server` and serve (`run_server`, also `python -m trainer.parameter_server`).

Variables are split along their first axis by a `MinSizePartitioner`: a variable of at least
`2 x min_shard_bytes` is cut into shards of at least `min_shard_bytes`, one per parameter
server at most, so every large embedding table is spread over the parameter servers while the
small dense layers stay whole. `shard_layout` reports where each partitioned variable's shards
live.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Mapping, Optional

import tensorflow as tf

logger = logging.getLogger(__name__)

SERVER_TASKS = ("worker", "ps")  # tasks that only serve; the chief coordinates


def read_tf_config(environ: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """The TF_CONFIG of `environ` (default: this process's), checked for a parameter-server cluster.

    Returns:
      The parsed TF_CONFIG: `cluster` with `chief`, `worker` and `ps` tasks, and `task`.

    Raises:
      ValueError: TF_CONFIG is unset, not JSON, or lacks a chief, a worker, a ps task or `task`;
        the message names what is missing.
    """
    env = os.environ if environ is None else environ
    raw = env.get("TF_CONFIG", "")
    if not raw:
        raise ValueError("strategy 'parameter_server' needs TF_CONFIG naming the cluster (chief, worker, ps) "
                         "and this task")
    try:
        tf_config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON: {err}") from err
    cluster = tf_config.get("cluster", {}) if isinstance(tf_config, dict) else {}
    missing = [job for job in ("chief", "worker", "ps") if not cluster.get(job)]
    if missing:
        raise ValueError(f"strategy 'parameter_server': TF_CONFIG's cluster lacks {', '.join(missing)} task(s)")
    task = tf_config.get("task", {})
    if task.get("type") not in ("chief",) + SERVER_TASKS or not isinstance(task.get("index"), int):
        raise ValueError(f"strategy 'parameter_server': TF_CONFIG's task must name a type "
                         f"(chief, worker or ps) and an index, got {task}")
    return tf_config


def task_type(tf_config: Mapping[str, Any]) -> str:
    """'chief', 'worker' or 'ps': the role of this process in the cluster."""
    return tf_config["task"]["type"]


def _resolver(tf_config: Mapping[str, Any]) -> tf.distribute.cluster_resolver.SimpleClusterResolver:
    return tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(tf_config["cluster"]),
        task_type=tf_config["task"]["type"],
        task_id=tf_config["task"]["index"],
        rpc_layer="grpc",
    )


def start_server(tf_config: Mapping[str, Any]) -> tf.distribute.Server:
    """Starts this worker or ps task's server (it serves until the process ends).

    Raises:
      ValueError: the task is the chief (it coordinates instead).
    """
    kind = task_type(tf_config)
    if kind not in SERVER_TASKS:
        raise ValueError(f"task {kind!r} does not run a server; the chief coordinates the training")
    resolver = _resolver(tf_config)
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=kind, task_index=resolver.task_id,
                                  protocol="grpc", start=True)
    logger.info("parameter-server cluster: %s %d serving at %s", kind, resolver.task_id, server.target)
    return server


def run_server(tf_config: Mapping[str, Any]) -> None:
    """Starts this task's server and serves until the process is ended (never returns)."""
    start_server(tf_config).join()


def partitioner(num_ps: int, min_shard_bytes: int) -> tf.distribute.experimental.partitioners.Partitioner:
    """Splits a variable into shards of >= `min_shard_bytes`, at most one per parameter server."""
    return tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=min_shard_bytes, max_shards=num_ps)


def make_strategy(tf_config: Mapping[str, Any], min_shard_bytes: int) -> tf.distribute.ParameterServerStrategy:
    """The coordinator's `ParameterServerStrategy` over the cluster of `tf_config`.

    Connects to the workers and parameter servers, which must be serving (`run_server`).

    Raises:
      ValueError: this task is not the chief.
    """
    if task_type(tf_config) != "chief":
        raise ValueError(f"the parameter-server strategy runs on the chief, not on a {task_type(tf_config)} task")
    num_ps = len(tf_config["cluster"]["ps"])
    strategy = tf.distribute.ParameterServerStrategy(_resolver(tf_config),
                                                     variable_partitioner=partitioner(num_ps, min_shard_bytes))
    logger.info("training strategy: ParameterServerStrategy, %d worker(s), %d parameter server(s), "
                "variables of >= %d bytes split into shards of >= %d bytes",
                len(tf_config["cluster"]["worker"]), num_ps, 2 * min_shard_bytes, min_shard_bytes)
    return strategy


def shard_layout(models: Mapping[str, tf.keras.Model]) -> Dict[str, Dict[str, List]]:
    """Where the shards of every partitioned variable of `models` live.

    Args:
      models: networks by name, built under the parameter-server strategy.

    Returns:
      `<network>/<layer>/<attribute>` (say `query_tower/user_id_embedding/embeddings`) ->
      {"shape": full shape, "rows": rows per shard,
      "devices": the device of each shard}, for every variable split in two or more shards.
    """
    layout: Dict[str, Dict[str, List]] = {}
    for name, model in models.items():
        for layer in model.submodules:
            # Keras lists a sharded variable's shards among the layer's weights; the layer's
            # attribute (an Embedding's `embeddings`) holds the ShardedVariable itself.
            for attribute, value in vars(layer).items():
                if not getattr(value, "is_sharded_variable", False) or len(value.variables) < 2:
                    continue
                layout[f"{name}/{layer.name}/{attribute}"] = {
                    "shape": value.shape.as_list(),
                    "rows": [int(shard.shape[0]) for shard in value.variables],
                    "devices": [shard.device for shard in value.variables],
                }
    return layout


def main() -> None:
    """`python -m trainer.parameter_server`: serve as the worker or ps task of TF_CONFIG."""
    logging.basicConfig(level=logging.INFO)
    try:
        tf_config = read_tf_config()
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    run_server(tf_config)


if __name__ == "__main__":
    main()
