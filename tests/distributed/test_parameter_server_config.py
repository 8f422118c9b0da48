"""The parameter-server strategy's pieces that need no cluster: TF_CONFIG checks, the partitioner,
the config key, the server entry point's error and the per-worker input."""

from __future__ import annotations

import json

import pytest

from core.config_loader import ConfigError
from trainer import parameter_server as P
from trainer.config import TrainerConfig

CLUSTER = {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2", "127.0.0.1:3"], "ps": ["127.0.0.1:4", "127.0.0.1:5"]}


def _env(cluster=CLUSTER, task=None) -> dict:
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": task or {"type": "chief", "index": 0}})}


def test_tf_config_of_a_parameter_server_cluster_is_read():
    tf_config = P.read_tf_config(_env(task={"type": "ps", "index": 1}))
    assert P.task_type(tf_config) == "ps" and tf_config["cluster"] == CLUSTER


@pytest.mark.parametrize("environ, message", [
    ({}, "needs TF_CONFIG naming the cluster"),
    ({"TF_CONFIG": "{cluster"}, "TF_CONFIG is not valid JSON"),
    (_env({"chief": ["h:1"], "worker": ["h:2"]}), "cluster lacks ps task"),
    (_env({"worker": ["h:2"], "ps": ["h:3"]}), "cluster lacks chief task"),
    (_env(task={"type": "evaluator", "index": 0}), "task must name a type"),
    (_env(task={"type": "worker"}), "task must name a type"),
])
def test_bad_tf_config_is_one_clear_error(environ, message):
    with pytest.raises(ValueError, match=message):
        P.read_tf_config(environ)


def test_servers_do_not_coordinate_and_the_chief_does_not_serve():
    with pytest.raises(ValueError, match="runs on the chief, not on a worker task"):
        P.make_strategy(P.read_tf_config(_env(task={"type": "worker", "index": 0})), 1024)
    with pytest.raises(ValueError, match="task 'chief' does not run a server"):
        P.start_server(P.read_tf_config(_env()))


def test_partitioner_splits_large_variables_only_and_at_most_once_per_ps():
    import tensorflow as tf

    split = P.partitioner(num_ps=2, min_shard_bytes=4096)
    assert split(tf.TensorShape([241, 16]), tf.float32) == [2, 1]  # 15 KiB table: one shard per ps
    assert split(tf.TensorShape([100_000, 64]), tf.float32) == [2, 1]  # never more shards than ps
    assert split(tf.TensorShape([45, 16]), tf.float32) == [1, 1]  # 2.9 KiB dense kernel: whole


def test_strategy_key_and_shard_size_are_checked_at_load():
    assert TrainerConfig(strategy="parameter_server").ps_min_shard_bytes == 1 << 20
    with pytest.raises(ConfigError, match="ps_min_shard_bytes must be >= 1"):
        TrainerConfig(strategy="parameter_server", ps_min_shard_bytes=0)


def test_choose_strategy_leaves_parameter_server_to_its_run():
    from trainer import distribution

    with pytest.raises(ValueError, match="'parameter_server' is built by trainer.ps_training"):
        distribution.choose_strategy("parameter_server", environ=_env())


def test_run_server_entry_point_rejects_a_missing_tf_config():
    import subprocess
    import sys

    from core.process import child_env
    from tests.distributed.ps_cluster import ROOT

    env = child_env()
    env.pop("TF_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "trainer.parameter_server"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == ("error: strategy 'parameter_server' needs TF_CONFIG naming the "
                                                     "cluster (chief, worker, ps) and this task")
    assert "Traceback" not in done.stderr


def test_each_worker_draws_whole_batches_of_every_example_in_an_order_of_its_own():
    import time

    import numpy as np
    import tensorflow as tf

    from trainer import ps_training

    arrays = {"a": np.arange(100), "b": np.arange(100) * 10}
    creator = ps_training.dataset_creator(arrays, batch_size=32, seed=7)
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=1)
    first = [batch for batch in creator(context).take(9)]  # 3 passes of 3 batches (the remainder dropped)
    time.sleep(0.01)
    second = next(iter(creator(context)))  # another worker, started later
    assert all(batch["a"].shape == (32,) for batch in first)
    assert all(np.array_equal(batch["b"], batch["a"] * 10) for batch in first)  # features stay aligned
    seen = np.concatenate([batch["a"].numpy() for batch in first[:3]])
    assert len(set(seen.tolist())) == 96  # one pass: 96 distinct examples
    assert not np.array_equal(first[0]["a"].numpy(), second["a"].numpy())


@pytest.mark.parametrize("strategy, tpu, environ, expected", [
    ("parameter_server", "", {}, True),
    ("auto", "", _env(), True),  # a cluster with ps tasks, as Vertex AI sets TF_CONFIG
    ("auto", "", _env({"chief": ["h:1"], "worker": ["h:2"]}), False),  # multi-worker
    ("auto", "", {}, False),
    ("auto", "grpc://10.0.0.2:8470", _env(), False),  # a TPU comes first
    ("multi_worker", "", _env(), False),  # a configured strategy stays
])
def test_the_parameter_server_run_is_chosen_by_config_or_by_the_cluster(strategy, tpu, environ, expected):
    from trainer import ps_training

    assert ps_training.applies(TrainerConfig(strategy=strategy, tpu_address=tpu), environ) is expected


def test_a_malformed_tf_config_is_named_when_choosing_the_run():
    from trainer import ps_training

    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        ps_training.applies(TrainerConfig(), {"TF_CONFIG": "{cluster"})
