"""Kubeflow config validation."""

from __future__ import annotations

import json

import pytest

from kubeflow.config import (
    KubeflowConfig,
    KubeflowConfigError,
    ResourceConfig,
    kubeflow_config_from_dict,
    load_kubeflow_config,
)


def test_resource_config_rejects_inconsistent_values():
    with pytest.raises(KubeflowConfigError, match="cpu_request 4 exceeds cpu_limit 2"):
        ResourceConfig(cpu_request=4, cpu_limit=2)
    with pytest.raises(KubeflowConfigError, match="memory_request_gb 9 exceeds"):
        ResourceConfig(memory_request_gb=9, memory_limit_gb=8)
    with pytest.raises(KubeflowConfigError, match="gpu_type and gpu_count"):
        ResourceConfig(gpu_count=1)
    with pytest.raises(KubeflowConfigError, match="cpu_limit must be > 0"):
        ResourceConfig(cpu_request=0.5, cpu_limit=0)


def test_kubeflow_config_from_json(tmp_path):
    path = tmp_path / "kf.json"
    path.write_text(json.dumps({
        "image": "eu.gcr.io/p/recsys:1.2",
        "component_resources": {"Trainer": {"cpu_request": 2, "cpu_limit": 4, "gpu_type": "NVIDIA_L4",
                                            "gpu_count": 2, "node_selector": {"pool": "gpu"}}},
        "serving": {"model_name": "movies", "min_replicas": 1, "resources": {"cpu_request": 0.5}},
    }))
    kf = load_kubeflow_config(str(path))
    trainer = kf.resources_for("Trainer")
    assert (trainer.gpu_type, trainer.gpu_count, trainer.node_labels) == ("NVIDIA_L4", 2, {"pool": "gpu"})
    assert kf.resources_for("Transform") == kf.default_resources  # the file replaced the table
    assert kf.serving.model_name == "movies" and kf.serving.resources.cpu_request == 0.5


@pytest.mark.parametrize(
    "values, message",
    [
        ({"imagee": "x:1"}, "unknown key"),
        ({"image": "gcr.io/p/recsys"}, "explicit tag"),
        ({"component_resources": {"Trainer": {"gpus": 1}}}, r"component_resources.Trainer: gpus: unknown key"),
        ({"component_resources": ["Trainer"]}, "keyed by component id"),
        ({"serving": {"min_replicas": 3, "max_replicas": 2}}, "min_replicas <= max_replicas"),
    ],
)
def test_kubeflow_config_errors_name_the_key(values, message):
    with pytest.raises(KubeflowConfigError, match=message):
        kubeflow_config_from_dict(values)


def test_output_paths_keep_the_uri_scheme():
    kf = KubeflowConfig(output_root="gs://bucket/team/recsys/")
    assert kf.output_path("serving_model") == "gs://bucket/team/recsys/serving_model"
