"""Chooses the tf.distribute strategy from the configuration and the visible hardware."""

from __future__ import annotations

import json
import logging
import os
from typing import Mapping, Optional

import tensorflow as tf

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")


def _workers_in(tf_config: Optional[str]) -> int:
    if not tf_config:
        return 0
    cluster = json.loads(tf_config).get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def choose_strategy(
    name: str = "auto", environ: Optional[Mapping[str, str]] = None, tpu_address: str = ""
) -> tf.distribute.Strategy:
    """Returns the strategy named in config, or the best one for the hardware when 'auto'.

    'auto' picks TPUStrategy when a TPU address is configured, MultiWorkerMirroredStrategy when
    TF_CONFIG names several workers, MirroredStrategy over all visible GPUs, and the default
    (single-device) strategy otherwise. The choice is logged.

    Args:
      name: one of `STRATEGIES`.
      environ: environment to read TF_CONFIG from (defaults to the process environment).
      tpu_address: TPU name or grpc address; empty when no TPU is configured.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    env = os.environ if environ is None else environ
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if tpu_address:
            name = "tpu"
        elif _workers_in(env.get("TF_CONFIG")) > 1:
            name = "multi_worker"
        elif gpus:
            name = "mirrored"
        else:
            name = "default"
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy: tf.distribute.Strategy = tf.distribute.TPUStrategy(resolver)
    elif name == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    logging.info(
        "training strategy: %s with %d replica(s) (%d GPU(s) visible)",
        type(strategy).__name__, strategy.num_replicas_in_sync, len(gpus),
    )
    return strategy
