"""Training at scale: the tf.distribute strategy, mixed precision, XLA and the large-batch rule.

Every choice is made from the config and the visible hardware, and logged:

* strategy: TPUStrategy when a TPU is configured; from TF_CONFIG's cluster (`cluster_strategy_name`)
  'parameter_server' when it names parameter servers, MultiWorkerMirroredStrategy when it names
  several workers (its input: `trainer.multi_worker`); MirroredStrategy over the visible GPUs, else the default strategy;
  `TrainerConfig.strategy` overrides the automatic choice;
* precision: 'auto' means mixed_float16 on GPU and mixed_bfloat16 on TPU/CPU;
* compile options: XLA `jit_compile` and `steps_per_execution` (train steps fused per call);
* learning rate: scaled with the batch size ('linear' or 'sqrt' rule) from a base batch size.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
from typing import Any, Dict, Iterator, Mapping, Optional
from urllib.parse import urlparse

import tensorflow as tf

from trainer.config import LR_RULES, PRECISIONS, STRATEGIES

FLOAT32 = "float32"

logger = logging.getLogger(__name__)


def _parse_tf_config(tf_config: Optional[str]) -> Dict[str, Any]:
    if not tf_config:
        return {}
    try:
        parsed = json.loads(tf_config)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON: {err}") from err
    if not isinstance(parsed, dict):
        raise ValueError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    return parsed


def tf_config_workers(tf_config: Optional[str]) -> int:
    """Number of workers (chief included) that a TF_CONFIG value names; 0 when unset.

    Raises:
      ValueError: TF_CONFIG is not a JSON object.
    """
    cluster = _parse_tf_config(tf_config).get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def cluster_strategy_name(name: str, tf_config: Optional[str], tpu_address: str = "") -> str:
    """'auto' resolved by the cluster that TF_CONFIG names (as Vertex AI sets it in each pool).

    Args:
      name: the configured `TrainerConfig.strategy`; anything but 'auto' is returned as is.
      tf_config: the TF_CONFIG value, or None when unset.
      tpu_address: TPU name or grpc address; with one, 'auto' stays 'auto' (TPUStrategy).

    Returns:
      'parameter_server' when the cluster has parameter servers ('ps'), 'multi_worker' when it
      has several workers (chief included), else `name`.

    Raises:
      ValueError: TF_CONFIG is not a JSON object.
    """
    if name != "auto" or tpu_address:
        return name
    if _parse_tf_config(tf_config).get("cluster", {}).get("ps"):
        return "parameter_server"
    return "multi_worker" if tf_config_workers(tf_config) > 1 else name


def resolve_strategy_name(name: str, gpus: int, workers: int, tpu_address: str) -> str:
    """The concrete strategy for a configured name and the hardware (no side effects).

    Args:
      name: one of `STRATEGIES`; anything but 'auto' is returned as is.
      gpus: number of visible GPUs.
      workers: number of workers in TF_CONFIG (0 when unset).
      tpu_address: TPU name or grpc address; empty when no TPU is configured.

    Returns:
      'tpu', 'multi_worker', 'mirrored' or 'default'.

    Raises:
      ValueError: unknown name, or 'tpu' without an address.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "tpu" and not tpu_address:
        raise ValueError("strategy 'tpu' needs trainer.tpu_address (a TPU name or grpc://host:port)")
    if name != "auto":
        return name
    if tpu_address:
        return "tpu"
    if workers > 1:
        return "multi_worker"
    if gpus > 0:
        return "mirrored"
    return "default"


def _multi_worker(tf_config: Dict[str, Any]) -> tf.distribute.Strategy:
    if not tf_config:
        return tf.distribute.MultiWorkerMirroredStrategy()
    task = tf_config.get("task", {})
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(tf_config["cluster"]),
        task_type=task.get("type"),
        task_id=task.get("index"),
        rpc_layer="grpc",
    )
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)


CLUSTER_STRATEGIES = ("multi_worker",)


def _check_reachable(tpu_address: str, timeout_s: float) -> None:
    """Fails fast when a grpc://host:port TPU address does not accept connections.

    TPU names (resolved through the Cloud TPU API) and 'local' are not checked here.

    Raises:
      RuntimeError: nothing listens at the address.
    """
    if not tpu_address.startswith("grpc://"):
        return
    parsed = urlparse(tpu_address)
    if not parsed.hostname or not parsed.port:
        raise RuntimeError(f"trainer.tpu_address {tpu_address!r} is not of the form grpc://host:port")
    try:
        socket.create_connection((parsed.hostname, parsed.port), timeout=timeout_s).close()
    except OSError as err:
        raise RuntimeError(
            f"no TPU reachable at trainer.tpu_address={tpu_address!r} (strategy 'tpu'): {err}"
        ) from err


def tpu_strategy(tpu_address: str, timeout_s: float = 10.0) -> tf.distribute.Strategy:
    """Connects to the TPU at `tpu_address` (name or grpc://host:port) and returns a TPUStrategy.

    Raises:
      RuntimeError: the TPU cannot be reached, resolved or initialised; the message names the
        address.
    """
    _check_reachable(tpu_address, timeout_s)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except Exception as err:  # the resolver and the runtime raise many kinds of errors
        raise RuntimeError(
            f"cannot use the TPU at trainer.tpu_address={tpu_address!r} (strategy 'tpu'): "
            f"{type(err).__name__}: {err}"
        ) from err


def choose_strategy(
    name: str = "auto", environ: Optional[Mapping[str, str]] = None, tpu_address: str = ""
) -> tf.distribute.Strategy:
    """Returns the strategy named in config, or the best one for the hardware when 'auto'.

    Args:
      name: one of `STRATEGIES`.
      environ: environment to read TF_CONFIG from (defaults to the process environment).
      tpu_address: TPU name or grpc address; empty when no TPU is configured.

    Returns:
      The strategy; its kind and replica count are logged.

    Raises:
      ValueError: unknown name, or 'tpu' without an address.
      RuntimeError: no TPU can be used at `tpu_address` (the message names it).
    """
    env = os.environ if environ is None else environ
    name = cluster_strategy_name(name, env.get("TF_CONFIG"), tpu_address)
    tf_config = _parse_tf_config(env.get("TF_CONFIG"))
    workers = tf_config_workers(env.get("TF_CONFIG"))
    # A cluster strategy configures the runtime, so it comes before any op (listing devices too).
    chosen = resolve_strategy_name(name, 0, workers, tpu_address)
    if chosen == "parameter_server":
        raise ValueError("strategy 'parameter_server' is built by trainer.ps_training (the Trainer's run_fn), "
                         "with its partitioner and cluster")
    if chosen in CLUSTER_STRATEGIES:
        strategy: tf.distribute.Strategy = _multi_worker(tf_config)
        gpus = tf.config.list_logical_devices("GPU")
        _log_choice(strategy, name, len(gpus))
        return strategy
    gpus = tf.config.list_logical_devices("GPU")
    chosen = resolve_strategy_name(name, len(gpus), workers, tpu_address)
    if chosen == "tpu":
        strategy = tpu_strategy(tpu_address)
    elif chosen == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    _log_choice(strategy, name, len(gpus))
    return strategy


def _log_choice(strategy: tf.distribute.Strategy, name: str, gpus: int) -> None:
    logger.info(
        "training strategy: %s with %d replica(s) (configured %r, %d GPU(s) visible)",
        type(strategy).__name__, strategy.num_replicas_in_sync, name, gpus,
    )


def device_kind(strategy: Optional[tf.distribute.Strategy] = None) -> str:
    """'TPU' under a TPUStrategy, 'GPU' when GPUs are visible, else 'CPU'."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "TPU"
    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


def resolve_precision(mode: str, kind: str) -> str:
    """The Keras dtype policy name for a configured precision mode on a device kind.

    Args:
      mode: one of `PRECISIONS`.
      kind: 'CPU', 'GPU' or 'TPU'.

    Returns:
      'float32', 'mixed_float16' or 'mixed_bfloat16'.

    Raises:
      ValueError: unknown mode or kind, or mixed_float16 asked for on a TPU.
    """
    if mode not in PRECISIONS:
        raise ValueError(f"unknown mixed_precision {mode!r}; choose one of {', '.join(PRECISIONS)}")
    if kind not in ("CPU", "GPU", "TPU"):
        raise ValueError(f"unknown device kind {kind!r}")
    if mode == "none":
        return FLOAT32
    if mode == "auto":
        return "mixed_float16" if kind == "GPU" else "mixed_bfloat16"
    if mode == "mixed_float16" and kind == "TPU":
        raise ValueError("mixed_float16 is not supported on TPU; use mixed_bfloat16 or 'auto'")
    return mode


def precision_policy(mode: str, strategy: Optional[tf.distribute.Strategy] = None) -> str:
    """`resolve_precision` for the current hardware; the choice is logged."""
    kind = device_kind(strategy)
    policy = resolve_precision(mode, kind)
    logger.info("precision: %s (configured %r on %s)", policy, mode, kind)
    return policy


@contextlib.contextmanager
def precision_scope(policy: str) -> Iterator[None]:
    """Sets the global Keras dtype policy while models are built, then restores the old one.

    Layers keep the policy they were built with, so models built inside the scope train in
    mixed precision while code run afterwards (export, evaluation) sees the previous policy.
    """
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def scaled_learning_rate(base_rate: float, batch_size: int, rule: str, base_batch_size: int) -> float:
    """Learning rate for a (large) global batch from the rate tuned at `base_batch_size`.

    'linear': rate x batch / base (Goyal et al.); 'sqrt': rate x sqrt(batch / base), the usual
    rule for adaptive optimisers such as Adagrad and Adam; 'none': unchanged.

    Raises:
      ValueError: unknown rule, or a non-positive rate or batch size.
    """
    if rule not in LR_RULES:
        raise ValueError(f"unknown lr_scaling {rule!r}; choose one of {', '.join(LR_RULES)}")
    if base_rate <= 0 or batch_size < 1 or base_batch_size < 1:
        raise ValueError(
            f"learning rate and batch sizes must be positive (rate={base_rate}, "
            f"batch_size={batch_size}, lr_base_batch_size={base_batch_size})"
        )
    ratio = batch_size / base_batch_size
    if rule == "linear":
        return base_rate * ratio
    if rule == "sqrt":
        return base_rate * math.sqrt(ratio)
    return base_rate


def learning_rate(base_rate: float, cfg: Any) -> float:
    """`scaled_learning_rate` with the batch size and rule of a `TrainerConfig`; logged."""
    rate = scaled_learning_rate(base_rate, cfg.batch_size, cfg.lr_scaling, cfg.lr_base_batch_size)
    logger.info(
        "learning rate %.4g -> %.4g (rule %r, batch %d, base batch %d)",
        base_rate, rate, cfg.lr_scaling, cfg.batch_size, cfg.lr_base_batch_size,
    )
    return rate


def compile_options(cfg: Any) -> Dict[str, Any]:
    """Keyword arguments of `Model.compile` from a `TrainerConfig`: XLA and fused steps.

    Raises:
      ValueError: steps_per_execution below 1.
    """
    if cfg.steps_per_execution < 1:
        raise ValueError(f"steps_per_execution must be >= 1, got {cfg.steps_per_execution}")
    return {"jit_compile": bool(cfg.jit_compile), "steps_per_execution": int(cfg.steps_per_execution)}
