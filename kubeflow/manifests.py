"""Kubernetes manifests that serve the pushed model with the stock `tensorflow/serving` image.

    python -m kubeflow.manifests [--kubeflow-config KUBEFLOW.json] [--out kubeflow/manifests]

renders, from one `KubeflowConfig`:

* a ConfigMap with `models.config`, `batching_parameters.txt` and `monitoring.config`, written
  by the serving package's generator (`serving.tfs_config`) so that production runs the stock
  `tensorflow_model_server` with the settings the project's server uses;
* a Deployment running `tensorflow_model_server` on the model directory the pipeline pushes
  to (`<output_root>/serving_model`, integer version folders; TF Serving reads gs:// itself
  and picks up new versions by polling), with a REST readiness probe and a gRPC liveness probe;
* a Service exposing gRPC (8500) and REST (8501), and a HorizontalPodAutoscaler on CPU;
* a Kustomization, so that `kubectl apply -k kubeflow/manifests` applies them all.

The files under `kubeflow/manifests/` are this module's output for the default config; a test
keeps them in step.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any, Dict, List, Optional

from kubeflow.config import KubeflowConfig, ResourceConfig

CONFIG_MOUNT = "/etc/tfserving"
MANIFEST_DIR = pathlib.Path(__file__).resolve().parent / "manifests"
FILES = ("configmap.yaml", "deployment.yaml", "service.yaml", "hpa.yaml", "kustomization.yaml")


def model_base_path(kf: KubeflowConfig) -> str:
    """The directory the pipeline's pusher writes versions to, as TF Serving reads it."""
    return kf.output_path("serving_model")


def _labels(kf: KubeflowConfig) -> Dict[str, str]:
    return {"app.kubernetes.io/name": f"{kf.serving.model_name}-serving", "app.kubernetes.io/part-of": "recsys"}


def _metadata(kf: KubeflowConfig, suffix: str) -> Dict[str, Any]:
    return {"name": f"{kf.serving.model_name}-{suffix}", "namespace": kf.serving.namespace, "labels": _labels(kf)}


def _object(kf: KubeflowConfig, api_version: str, kind: str, suffix: str, **body: Any) -> Dict[str, Any]:
    """A Kubernetes object named `{model_name}-{suffix}` in the serving namespace, `body` after its header."""
    return {"apiVersion": api_version, "kind": kind, "metadata": _metadata(kf, suffix), **body}


def _server_config(kf: KubeflowConfig):
    from serving.config import ModelConfig, ServerConfig

    serving = kf.serving
    return ServerConfig(
        models=(ModelConfig(name=serving.model_name, base_path=model_base_path(kf)),),
        host="0.0.0.0",
        grpc_port=serving.grpc_port,
        rest_port=serving.rest_port,
        poll_interval_s=float(serving.poll_interval_s),
        enable_batching=serving.enable_batching,
    )


def config_files(kf: KubeflowConfig) -> Dict[str, str]:
    """File name -> text of the TF Serving config files, from `serving.tfs_config`."""
    from google.protobuf import text_format

    from serving import tfs_config

    server = _server_config(kf)
    models = tfs_config.model_server_config(server.models)
    # The generator makes local paths absolute; a gs:// base path must stay as it is.
    models.model_config_list.config[0].base_path = model_base_path(kf)
    return {
        tfs_config.MODELS_CONFIG: text_format.MessageToString(models),
        tfs_config.BATCHING_PARAMETERS: text_format.MessageToString(tfs_config.batching_parameters(server.batching)),
        tfs_config.MONITORING_CONFIG: text_format.MessageToString(tfs_config.monitoring_config()),
    }


def server_command(kf: KubeflowConfig) -> List[str]:
    """The `tensorflow_model_server` command line, reading the ConfigMap's files."""
    from serving import tfs_config

    names = (tfs_config.MODELS_CONFIG, tfs_config.BATCHING_PARAMETERS, tfs_config.MONITORING_CONFIG)
    return tfs_config.tfs_command_line(_server_config(kf), {name: f"{CONFIG_MOUNT}/{name}" for name in names})


def _container_resources(resources: ResourceConfig) -> Dict[str, Any]:
    def amounts(cpu: float, memory_gb: float) -> Dict[str, str]:
        return {"cpu": f"{cpu:g}", "memory": f"{int(round(memory_gb * 1024))}Mi"}

    limits = amounts(resources.cpu_limit, resources.memory_limit_gb)
    if resources.gpu_count:
        limits["nvidia.com/gpu"] = str(resources.gpu_count)
    return {"requests": amounts(resources.cpu_request, resources.memory_request_gb), "limits": limits}


def deployment(kf: KubeflowConfig) -> Dict[str, Any]:
    """The TF Serving Deployment."""
    serving = kf.serving
    command = server_command(kf)
    container = {
        "name": "tensorflow-serving",
        "image": serving.image,
        "command": command[:1],
        "args": command[1:],
        "ports": [
            {"name": "grpc", "containerPort": serving.grpc_port, "protocol": "TCP"},
            {"name": "http", "containerPort": serving.rest_port, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": f"/v1/models/{serving.model_name}", "port": "http"},
            "initialDelaySeconds": 10, "periodSeconds": 10, "failureThreshold": 3,
        },
        "livenessProbe": {"tcpSocket": {"port": "grpc"}, "initialDelaySeconds": 30, "periodSeconds": 20},
        "resources": _container_resources(serving.resources),
        "volumeMounts": [{"name": "tfserving-config", "mountPath": CONFIG_MOUNT, "readOnly": True}],
    }
    pod: Dict[str, Any] = {
        "containers": [container],
        "volumes": [{"name": "tfserving-config", "configMap": {"name": _metadata(kf, "tfserving-config")["name"]}}],
    }
    if serving.resources.node_selector:
        pod["nodeSelector"] = serving.resources.node_labels
    if serving.service_account:
        pod["serviceAccountName"] = serving.service_account
    return _object(kf, "apps/v1", "Deployment", "serving", spec={
        "replicas": serving.min_replicas,
        "selector": {"matchLabels": _labels(kf)},
        "template": {"metadata": {"labels": _labels(kf)}, "spec": pod},
    })


def service(kf: KubeflowConfig) -> Dict[str, Any]:
    """ClusterIP Service with gRPC and REST ports."""
    serving = kf.serving
    return _object(kf, "v1", "Service", "serving", spec={
        "type": "ClusterIP",
        "selector": _labels(kf),
        "ports": [
            {"name": "grpc", "port": serving.grpc_port, "targetPort": "grpc", "protocol": "TCP"},
            {"name": "http", "port": serving.rest_port, "targetPort": "http", "protocol": "TCP"},
        ],
    })


def autoscaler(kf: KubeflowConfig) -> Dict[str, Any]:
    """HorizontalPodAutoscaler (autoscaling/v2) on average CPU utilisation."""
    serving = kf.serving
    return _object(kf, "autoscaling/v2", "HorizontalPodAutoscaler", "serving", spec={
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": _metadata(kf, "serving")["name"]},
        "minReplicas": serving.min_replicas,
        "maxReplicas": serving.max_replicas,
        "metrics": [{
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": serving.target_cpu_utilization}},
        }],
    })


def config_map(kf: KubeflowConfig) -> Dict[str, Any]:
    """ConfigMap holding the TF Serving config files."""
    return _object(kf, "v1", "ConfigMap", "tfserving-config", data=config_files(kf))


def kustomization(kf: KubeflowConfig) -> Dict[str, Any]:
    """Kustomization listing the other files (`kubectl apply -k kubeflow/manifests`)."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": kf.serving.namespace,
        "resources": [name for name in FILES if name != "kustomization.yaml"],
    }


def render(kf: KubeflowConfig) -> Dict[str, Dict[str, Any]]:
    """File name -> manifest, for every file in `FILES`."""
    manifests = (config_map(kf), deployment(kf), service(kf), autoscaler(kf), kustomization(kf))
    return dict(zip(FILES, manifests))


def dump(manifest: Dict[str, Any]) -> str:
    """YAML text of one manifest, as written to the files (multi-line strings as blocks)."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _text)
    header = "# Generated by `python -m kubeflow.manifests`; edit kubeflow/config.py or pass a config.\n"
    return header + yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def write(kf: KubeflowConfig, out_dir: str) -> List[str]:
    """Writes the manifests into `out_dir`; returns their paths."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, manifest in render(kf).items():
        (out / name).write_text(dump(manifest))
        paths.append(str(out / name))
    return paths


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point: render the serving manifests."""
    from kubeflow.config import load_kubeflow_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeflow-config", help="Kubeflow JSON config (keys of kubeflow.config.KubeflowConfig)")
    parser.add_argument("--out", default=str(MANIFEST_DIR), help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    for path in write(load_kubeflow_config(args.kubeflow_config), args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
