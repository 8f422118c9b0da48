"""The Trainer picks its strategy from the TF_CONFIG cluster that Vertex AI sets in each pool."""

from __future__ import annotations

import json

import pytest

from trainer import distribution as D


def _vertex_tf_config(workers: int = 0, ps: int = 0, task: str = "chief") -> str:
    """TF_CONFIG as Vertex AI writes it for pools 0 (chief), 1 (worker) and 2 (ps)."""
    cluster = {"chief": ["workerpool0-0:2222"]}
    if workers:
        cluster["worker"] = [f"workerpool1-{i}:2222" for i in range(workers)]
    if ps:
        cluster["ps"] = [f"workerpool2-{i}:2222" for i in range(ps)]
    return json.dumps({"cluster": cluster, "task": {"type": task, "index": 0}, "environment": "cloud"})


@pytest.mark.parametrize("name, tf_config, tpu, expected", [
    ("auto", _vertex_tf_config(workers=2, ps=2), "", "parameter_server"),  # ps wins over the workers
    ("auto", _vertex_tf_config(workers=2, ps=1, task="ps"), "", "parameter_server"),
    ("auto", _vertex_tf_config(workers=1), "", "multi_worker"),
    ("auto", _vertex_tf_config(workers=3, task="worker"), "", "multi_worker"),
    ("auto", _vertex_tf_config(), "", "auto"),  # the chief alone: the configured choice
    ("auto", None, "", "auto"),
    ("mirrored", _vertex_tf_config(workers=2, ps=2), "", "mirrored"),  # a configured strategy stays
    ("auto", _vertex_tf_config(workers=2), "grpc://10.0.0.2:8470", "auto"),  # a TPU stays first
])
def test_strategy_from_the_cluster(name, tf_config, tpu, expected):
    assert D.cluster_strategy_name(name, tf_config, tpu) == expected


def test_a_malformed_tf_config_is_named():
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        D.cluster_strategy_name("auto", "{cluster")


def test_choose_strategy_resolves_the_cluster_first(monkeypatch):
    """A cluster with parameter servers is not taken for a multi-worker one by `choose_strategy`."""
    seen = []

    class Stop(Exception):
        pass

    def resolve(name, gpus, workers, tpu_address):
        seen.append(name)
        raise Stop  # nothing is built: a cluster strategy would configure this process's runtime

    monkeypatch.setattr(D, "resolve_strategy_name", resolve)
    for tf_config in (_vertex_tf_config(workers=2, ps=2), _vertex_tf_config(workers=2), _vertex_tf_config()):
        with pytest.raises(Stop):
            D.choose_strategy("auto", environ={"TF_CONFIG": tf_config})
    assert seen == ["parameter_server", "multi_worker", "auto"]
