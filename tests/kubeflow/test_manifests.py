"""Serving manifests: they parse as Kubernetes objects and agree on model name, paths and ports."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from kubeflow import manifests
from kubeflow.config import KubeflowConfig, ServingDeployConfig
from pipeline.config import PipelineConfig

KINDS = {"configmap.yaml": "V1ConfigMap", "deployment.yaml": "V1Deployment", "service.yaml": "V1Service",
         "hpa.yaml": "V2HorizontalPodAutoscaler"}
CUSTOM = KubeflowConfig(output_root="gs://other/root",
                        serving=ServingDeployConfig(model_name="movies", grpc_port=9000, rest_port=9001))


@pytest.fixture(scope="module")
def committed():
    return {name: yaml.safe_load((manifests.MANIFEST_DIR / name).read_text()) for name in manifests.FILES}


def _container(rendered):
    return rendered["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]


def _flag(args, name):
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} given {len(values)} times in {args}"
    return values[0]


def test_committed_files_are_the_rendered_defaults(committed):
    assert committed == manifests.render(KubeflowConfig())


@pytest.mark.parametrize("name", sorted(KINDS))
def test_manifests_are_valid_kubernetes_objects(committed, name):
    from kubernetes import client

    class Response:
        data = json.dumps(committed[name])

    api = client.ApiClient()
    parsed = api.deserialize(Response(), KINDS[name])
    # A misspelt or misplaced field would be dropped by the typed model.
    assert api.sanitize_for_serialization(parsed) == committed[name]


@pytest.mark.parametrize("kf", [KubeflowConfig(), CUSTOM], ids=["default", "custom"])
def test_manifests_agree_on_model_name_paths_and_ports(kf):
    from kubeflow.runner import kubeflow_pipeline_config
    from serving import tfs_config

    rendered = manifests.render(kf)
    container, serving = _container(rendered), kf.serving
    data = rendered["configmap.yaml"]["data"]
    (model,) = tfs_config.parse_models_config(data[tfs_config.MODELS_CONFIG], check_contract=False)
    # The model the server loads is the one the pipeline pushes, under the configured name.
    assert model.name == serving.model_name
    assert model.base_path == kubeflow_pipeline_config(PipelineConfig(), kf).serving_model_dir
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{serving.model_name}"
    # The server reads the files the ConfigMap holds, where the volume mounts them.
    mount = container["volumeMounts"][0]
    volume = rendered["deployment.yaml"]["spec"]["template"]["spec"]["volumes"][0]
    assert volume["name"] == mount["name"]
    assert volume["configMap"]["name"] == rendered["configmap.yaml"]["metadata"]["name"]
    args = container["args"]
    for flag, name in (("model_config_file", tfs_config.MODELS_CONFIG),
                       ("batching_parameters_file", tfs_config.BATCHING_PARAMETERS),
                       ("monitoring_config_file", tfs_config.MONITORING_CONFIG)):
        assert _flag(args, flag) == f"{mount['mountPath']}/{name}"
    assert _flag(args, "enable_batching") == "true"
    tfs_config.parse_batching_parameters(data[tfs_config.BATCHING_PARAMETERS])
    # Ports: server flags, container ports, Service ports and probes line up.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": serving.grpc_port, "http": serving.rest_port}
    assert _flag(args, "port") == str(serving.grpc_port) and _flag(args, "rest_api_port") == str(serving.rest_port)
    service = rendered["service.yaml"]["spec"]
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["ports"]} == {
        "grpc": (serving.grpc_port, "grpc"), "http": (serving.rest_port, "http")}
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert container["livenessProbe"]["tcpSocket"]["port"] == "grpc"
    assert container["image"].startswith("tensorflow/serving:")


@pytest.mark.parametrize("kf", [KubeflowConfig(), CUSTOM], ids=["default", "custom"])
def test_service_and_autoscaler_target_the_deployment(kf):
    rendered = manifests.render(kf)
    deployment = rendered["deployment.yaml"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == pod_labels
    assert rendered["service.yaml"]["spec"]["selector"] == pod_labels
    hpa = rendered["hpa.yaml"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (kf.serving.min_replicas, kf.serving.max_replicas)
    assert "cpu" in _container(rendered)["resources"]["requests"], "the CPU autoscaler needs a CPU request"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_all_manifests():
    out = subprocess.run(["kubectl", "kustomize", str(manifests.MANIFEST_DIR)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(out))
    assert kinds == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Service"]
