"""Typed, frozen configuration of a Kubeflow / Vertex deployment: images, paths, resources.

`KubeflowConfig` says where the pipeline runs (its image and output root), what each component
may use (`ResourceConfig`: CPU, memory, GPU type and count, node selector) and how the pushed
model is served on Kubernetes (`ServingDeployConfig`). `load_kubeflow_config` reads it from
JSON; resources per component are keyed by the component ids of `create_pipeline`.

`vertex_training` (`pipeline.vertex_training.VertexTrainingConfig`) switches the Trainer to a
Vertex AI CustomJob on chief / worker / parameter-server pools. The Trainer's pod then only
submits that job and waits for it, so it gets `vertex_launcher_resources` (no accelerator)
instead of its `component_resources` entry; the pools' machines and accelerators train.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple

from core.config_loader import ConfigError, build_config, load_json_config
from pipeline.vertex_training import VertexTrainingConfig

TRAINER_ID = "Trainer"  # the Trainer's component id in create_pipeline


class KubeflowConfigError(ConfigError):
    """A Kubeflow configuration value is invalid; the message names the key."""


@dataclasses.dataclass(frozen=True)
class ResourceConfig:
    """Requests and limits of one component's pod (memory in GB, as the KFP spec counts it)."""

    cpu_request: float = 1.0
    cpu_limit: float = 2.0
    memory_request_gb: float = 2.0
    memory_limit_gb: float = 4.0
    gpu_type: str = ""  # e.g. NVIDIA_TESLA_T4 (Vertex) or nvidia.com/gpu (Kubeflow)
    gpu_count: int = 0
    node_selector: Tuple[Tuple[str, str], ...] = ()  # Kubernetes node labels, e.g. GKE pools

    def __post_init__(self) -> None:
        if isinstance(self.node_selector, Mapping):
            object.__setattr__(self, "node_selector", tuple(sorted(self.node_selector.items())))
        for name in ("cpu_request", "cpu_limit", "memory_request_gb", "memory_limit_gb"):
            if getattr(self, name) <= 0:
                raise KubeflowConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.cpu_request > self.cpu_limit:
            raise KubeflowConfigError(f"cpu_request {self.cpu_request} exceeds cpu_limit {self.cpu_limit}")
        if self.memory_request_gb > self.memory_limit_gb:
            raise KubeflowConfigError(
                f"memory_request_gb {self.memory_request_gb} exceeds memory_limit_gb {self.memory_limit_gb}"
            )
        if self.gpu_count < 0:
            raise KubeflowConfigError(f"gpu_count must be >= 0, got {self.gpu_count}")
        if bool(self.gpu_type) != (self.gpu_count > 0):
            raise KubeflowConfigError("gpu_type and gpu_count > 0 go together (both set or neither)")

    @property
    def node_labels(self) -> Dict[str, str]:
        """The node selector as a dict."""
        return dict(self.node_selector)


GPU_TRAINER = ResourceConfig(
    cpu_request=4, cpu_limit=8, memory_request_gb=16, memory_limit_gb=32,
    gpu_type="NVIDIA_TESLA_T4", gpu_count=1,
    node_selector=(("cloud.google.com/gke-accelerator", "nvidia-tesla-t4"),),
)
BEAM_HEAVY = ResourceConfig(cpu_request=4, cpu_limit=8, memory_request_gb=8, memory_limit_gb=16)


@dataclasses.dataclass(frozen=True)
class ServingDeployConfig:
    """Serving the pushed model with the stock TF Serving image behind a Kubernetes Service."""

    model_name: str = "recsys"
    image: str = "tensorflow/serving:2.16.1"
    namespace: str = "recsys"
    grpc_port: int = 8500
    rest_port: int = 8501
    min_replicas: int = 2
    max_replicas: int = 10
    target_cpu_utilization: int = 70
    poll_interval_s: int = 30
    enable_batching: bool = True
    service_account: str = ""  # Kubernetes service account with read access to the model bucket
    resources: ResourceConfig = ResourceConfig(
        cpu_request=2, cpu_limit=4, memory_request_gb=4, memory_limit_gb=8
    )

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise KubeflowConfigError(
                f"need 1 <= min_replicas <= max_replicas, got {self.min_replicas}, {self.max_replicas}"
            )
        if self.grpc_port == self.rest_port:
            raise KubeflowConfigError("grpc_port and rest_port must differ")
        if not 1 <= self.target_cpu_utilization <= 100:
            raise KubeflowConfigError("target_cpu_utilization is a percentage in [1, 100]")


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
    """Everything the Kubeflow runner and the serving manifests need beyond `PipelineConfig`."""

    image: str = "gcr.io/my-project/recsys-pipeline:0.1.0"
    output_root: str = "gs://my-bucket/recsys"  # pipeline root, data, pushed models live under it
    output_filename: str = "recsys_pipeline.json"
    image_project_root: str = "/opt/recsys"  # where the Dockerfile puts the project's sources
    default_resources: ResourceConfig = ResourceConfig()
    component_resources: Tuple[Tuple[str, ResourceConfig], ...] = (
        ("StatisticsGen", BEAM_HEAVY),
        ("Transform", BEAM_HEAVY),
        ("Trainer", GPU_TRAINER),
        ("CompressModel", GPU_TRAINER),  # fine-tuning and distillation train like the Trainer
        ("EvaluateModel", ResourceConfig(cpu_request=2, cpu_limit=4, memory_request_gb=8, memory_limit_gb=16)),
    )
    serving: ServingDeployConfig = ServingDeployConfig()
    vertex_training: VertexTrainingConfig = VertexTrainingConfig()
    # The Trainer's pod under vertex_training: it submits the CustomJob and polls it.
    vertex_launcher_resources: ResourceConfig = ResourceConfig(
        cpu_request=0.5, cpu_limit=1, memory_request_gb=1, memory_limit_gb=2
    )

    def __post_init__(self) -> None:
        if isinstance(self.component_resources, Mapping):
            object.__setattr__(self, "component_resources", tuple(self.component_resources.items()))
        ids = [name for name, _ in self.component_resources]
        if len(set(ids)) != len(ids):
            raise KubeflowConfigError(f"component_resources names a component twice: {ids}")
        if not self.image or ":" not in self.image.rsplit("/", 1)[-1]:
            raise KubeflowConfigError(f"image needs an explicit tag (name:tag), got {self.image!r}")
        if self.vertex_launcher_resources.gpu_count:
            raise KubeflowConfigError(
                "vertex_launcher_resources: the pod that submits the Vertex job needs no accelerator; "
                "set the pools' accelerators in vertex_training.chief / workers"
            )

    def resources_for(self, component_id: str) -> ResourceConfig:
        """The resources of one component's pod (the defaults unless configured).

        Under `vertex_training` the Trainer's pod is the job's launcher: `vertex_launcher_resources`.
        """
        if component_id == TRAINER_ID and self.vertex_training.enabled:
            return self.vertex_launcher_resources
        return dict(self.component_resources).get(component_id, self.default_resources)

    def output_path(self, *parts: str) -> str:
        """A path under `output_root`, joined with '/' so that gs:// URIs stay intact."""
        return "/".join([self.output_root.rstrip("/"), *parts])


def _labels_as_pairs(resources: Any) -> Any:
    """JSON resources with the `node_selector` object as the (label, value) pairs of the field."""
    if isinstance(resources, Mapping) and isinstance(resources.get("node_selector"), Mapping):
        return {**resources, "node_selector": sorted(resources["node_selector"].items())}
    return resources


def kubeflow_config_from_dict(values: Mapping[str, Any], where: str = "kubeflow config") -> KubeflowConfig:
    """Builds a `KubeflowConfig` from plain JSON values (`pipeline.config.from_dict`).

    `component_resources` is an object keyed by component id; `node_selector` an object of
    node labels; unset keys keep their defaults.

    Raises:
      KubeflowConfigError: an unknown key or an invalid value.
    """
    values = dict(values)
    if "component_resources" in values:
        given = values["component_resources"]
        if not isinstance(given, Mapping):
            raise KubeflowConfigError(f"{where}.component_resources: expected an object keyed by component id")
        built = []
        for name, resources in given.items():
            if not isinstance(resources, Mapping):
                raise KubeflowConfigError(f"{where}.component_resources.{name}: expected an object")
            built.append((name, build_config(ResourceConfig, _labels_as_pairs(resources),
                                             f"{where}.component_resources.{name}", KubeflowConfigError)))
        values["component_resources"] = built
    for key in ("default_resources", "vertex_launcher_resources"):
        if key in values:
            values[key] = _labels_as_pairs(values[key])
    serving = values.get("serving")
    if isinstance(serving, Mapping) and "resources" in serving:
        values["serving"] = {**serving, "resources": _labels_as_pairs(serving["resources"])}
    return build_config(KubeflowConfig, values, where, KubeflowConfigError)


def load_kubeflow_config(path: Optional[str]) -> KubeflowConfig:
    """`kubeflow_config_from_dict` of the JSON file `path`, or the defaults when None.

    Raises:
      KubeflowConfigError: the file is missing, not JSON, or invalid.
    """
    return load_json_config(path, KubeflowConfig, "kubeflow config", KubeflowConfigError, kubeflow_config_from_dict)
