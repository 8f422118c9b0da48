"""Strategy, precision, compile options and learning-rate rule chosen from config and hardware."""

from __future__ import annotations

import json
import logging
import math
import re
import socket

import pytest

from trainer import distribution as D
from trainer.config import TrainerConfig


def _tf_config(workers: int, chief: int = 0) -> str:
    cluster = {"worker": [f"w{i}:2222" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["c0:2222"]
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})


@pytest.mark.parametrize(
    "name, gpus, workers, tpu, expected",
    [
        ("auto", 0, 0, "", "default"),
        ("auto", 4, 0, "", "mirrored"),
        ("auto", 4, 3, "", "multi_worker"),
        ("auto", 4, 3, "grpc://10.0.0.2:8470", "tpu"),
        ("auto", 0, 1, "", "default"),  # one worker is not a cluster
        ("default", 8, 4, "", "default"),  # config overrides the hardware
        ("mirrored", 0, 0, "", "mirrored"),
    ],
)
def test_strategy_name_from_config_and_hardware(name, gpus, workers, tpu, expected):
    assert D.resolve_strategy_name(name, gpus, workers, tpu) == expected


def test_strategy_name_errors_are_clear():
    with pytest.raises(ValueError, match="unknown strategy 'gpu'"):
        D.resolve_strategy_name("gpu", 0, 0, "")
    with pytest.raises(ValueError, match="tpu_address"):
        D.resolve_strategy_name("tpu", 0, 0, "")


def test_tf_config_worker_count():
    assert D.tf_config_workers(None) == 0
    assert D.tf_config_workers(_tf_config(3)) == 3
    assert D.tf_config_workers(_tf_config(2, chief=1)) == 3
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        D.tf_config_workers("{cluster")


def test_choose_strategy_on_cpu_logs_the_default_choice(caplog):
    import tensorflow as tf

    with caplog.at_level(logging.INFO, logger=D.__name__):
        strategy = D.choose_strategy("auto", environ={})
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert "training strategy: _DefaultDistributionStrategy with 1 replica(s)" in caplog.text


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("name", ["tpu", "auto"])
def test_tpu_strategy_without_a_reachable_tpu_names_the_address(name):
    address = f"grpc://127.0.0.1:{_closed_port()}"  # nothing listens there: refused at once
    with pytest.raises(RuntimeError, match=f"no TPU reachable at trainer.tpu_address='{re.escape(address)}'"):
        D.choose_strategy(name, environ={}, tpu_address=address)


def test_tpu_resolver_errors_name_the_address(monkeypatch):
    import tensorflow as tf

    def unresolvable(tpu):
        raise ValueError(f"Could not lookup TPU metadata for {tpu}")

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", unresolvable)
    with pytest.raises(RuntimeError, match="trainer.tpu_address='my-tpu'.*ValueError: Could not lookup"):
        D.choose_strategy("tpu", environ={}, tpu_address="my-tpu")


def test_malformed_grpc_tpu_address():
    with pytest.raises(RuntimeError, match="not of the form grpc://host:port"):
        D.choose_strategy("tpu", environ={}, tpu_address="grpc://10.0.0.2")


@pytest.mark.parametrize(
    "mode, kind, expected",
    [
        ("none", "GPU", "float32"),
        ("auto", "GPU", "mixed_float16"),
        ("auto", "TPU", "mixed_bfloat16"),
        ("auto", "CPU", "mixed_bfloat16"),
        ("mixed_float16", "CPU", "mixed_float16"),
        ("mixed_bfloat16", "GPU", "mixed_bfloat16"),
    ],
)
def test_precision_from_mode_and_device(mode, kind, expected):
    assert D.resolve_precision(mode, kind) == expected


def test_precision_errors_are_clear():
    with pytest.raises(ValueError, match="unknown mixed_precision 'half'"):
        D.resolve_precision("half", "GPU")
    with pytest.raises(ValueError, match="not supported on TPU"):
        D.resolve_precision("mixed_float16", "TPU")


@pytest.mark.parametrize(
    "rule, batch, expected",
    [("none", 4096, 0.05), ("linear", 4096, 0.4), ("sqrt", 2048, 0.1), ("linear", 256, 0.025)],
)
def test_learning_rate_rule(rule, batch, expected):
    assert D.scaled_learning_rate(0.05, batch, rule, 512) == pytest.approx(expected)


def test_learning_rate_rule_errors():
    with pytest.raises(ValueError, match="unknown lr_scaling 'cubic'"):
        D.scaled_learning_rate(0.1, 512, "cubic", 512)
    with pytest.raises(ValueError, match="must be positive"):
        D.scaled_learning_rate(0.1, 0, "linear", 512)


def _vocab():
    from trainer.towers import Vocabularies

    return Vocabularies(users=10, items=8, genders=3, occupations=3, genres=5, title_tokens=9,
                        age_buckets=7, year_buckets=4)


def test_build_retrieval_applies_xla_fused_steps_and_scaled_rate():
    from trainer import train

    cfg = TrainerConfig(embedding_dim=8, tower_layers=(), batch_size=2048, learning_rate=0.05, optimizer="adagrad",
                        lr_scaling="sqrt", lr_base_batch_size=512, jit_compile=True, steps_per_execution=4)
    model = train.build_retrieval(_vocab(), cfg, None)
    assert model.jit_compile is True
    assert int(model._steps_per_execution.numpy()) == 4
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.05 * math.sqrt(4))
    with pytest.raises(ValueError, match="steps_per_execution must be >= 1"):
        train.build_retrieval(_vocab(), TrainerConfig(steps_per_execution=0), None)


def test_mixed_bfloat16_towers_with_a_float32_loss():
    import numpy as np
    import tensorflow as tf

    from tests.distributed.replica_check import sample_features
    from trainer import train

    cfg = TrainerConfig(embedding_dim=8, tower_layers=(16,), mixed_precision="mixed_bfloat16")
    with D.precision_scope(D.resolve_precision(cfg.mixed_precision, "CPU")):
        model = train.build_retrieval(_vocab(), cfg, np.full(8, 1 / 8, np.float32))
    assert tf.keras.mixed_precision.global_policy().name == "float32", "the scope must restore it"
    assert model.query_tower.get_layer("query_dense_0").compute_dtype == "bfloat16"
    assert model.query_tower.get_layer("query_dense_0").variable_dtype == "float32"
    batch = {k: tf.constant(v) for k, v in sample_features(16, _vocab(), seed=1).items()}
    loss = model.compute_loss(batch, training=True)
    assert loss.dtype == tf.float32 and np.isfinite(loss.numpy())
