"""Per-component resources in a compiled KFP v2 pipeline: the pipeline side of scheduling.

`set_resources` writes each task's CPU and memory requests and limits and its accelerator
(type and count) into the container spec of its executor, as `ResourceSpec` messages of the
KFP pipeline spec; Vertex AI and Kubeflow Pipelines both schedule from these. It works on the
compiled spec rather than through `with_platform_config`, because TFX's KubeflowV2 compiler
drops the platform config of file-based ExampleGens.

Node selectors are not part of the pipeline spec: `platform_spec` returns the Kubernetes
`PlatformSpec` (the second document of a Kubeflow Pipelines package) that pins tasks to node
pools; Vertex AI picks machines from the accelerator type instead.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from kubeflow.config import KubeflowConfig, KubeflowConfigError, ResourceConfig

ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec


def resource_spec(resources: ResourceConfig) -> ResourceSpec:
    """The KFP `ResourceSpec` message of one component's resources."""
    spec = ResourceSpec(
        cpu_request=resources.cpu_request,
        cpu_limit=resources.cpu_limit,
        memory_request=resources.memory_request_gb,
        memory_limit=resources.memory_limit_gb,
    )
    if resources.gpu_count:
        spec.accelerator.type = resources.gpu_type
        spec.accelerator.count = resources.gpu_count
    return spec


def task_executors(pipeline_spec: Mapping[str, Any]) -> Dict[str, str]:
    """Task name (the TFX component id) -> executor label, for tasks that run a container."""
    components = pipeline_spec["components"]
    executors = pipeline_spec["deploymentSpec"]["executors"]
    result = {}
    for task, body in pipeline_spec["root"]["dag"]["tasks"].items():
        label = components[body["componentRef"]["name"]].get("executorLabel")
        if label and "container" in executors.get(label, {}):
            result[task] = label
    return result


def check_component_ids(kf: KubeflowConfig, component_ids: Iterable[str]) -> None:
    """Raises KubeflowConfigError when `kf.component_resources` names a component not in the DAG."""
    known = sorted(component_ids)
    unknown = sorted({name for name, _ in kf.component_resources} - set(known))
    if unknown:
        raise KubeflowConfigError(
            f"component_resources names unknown component(s) {unknown}; the pipeline has {known}"
        )


def set_resources(pipeline_spec: Dict[str, Any], kf: KubeflowConfig) -> Dict[str, str]:
    """Writes every container task's resources into `pipeline_spec` (a dict, changed in place).

    Args:
      pipeline_spec: the `pipelineSpec` of a compiled PipelineJob, as a dict.
      kf: the Kubeflow config with default and per-component resources.

    Returns:
      Task name -> executor label of the tasks given resources.

    Raises:
      KubeflowConfigError: the config names a component that has no container task.
    """
    tasks = task_executors(pipeline_spec)
    check_component_ids(kf, tasks)
    executors = pipeline_spec["deploymentSpec"]["executors"]
    for task, label in tasks.items():
        spec = json_format.MessageToDict(resource_spec(kf.resources_for(task)))
        executors[label]["container"]["resources"] = spec
    return tasks


def platform_spec(tasks: Mapping[str, str], kf: KubeflowConfig) -> Dict[str, Any]:
    """The Kubernetes `PlatformSpec` with the node selector of every task that has one."""
    executors: Dict[str, Any] = {}
    for task, label in sorted(tasks.items()):
        labels = kf.resources_for(task).node_labels
        if labels:
            executors[label] = {"nodeSelector": {"labels": labels}}
    spec = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}
    json_format.ParseDict(spec, pipeline_spec_pb2.PlatformSpec())  # fails loudly if malformed
    return spec


def container_images(pipeline_spec: Mapping[str, Any]) -> List[str]:
    """The image of every container executor, in executor-label order."""
    executors = pipeline_spec["deploymentSpec"]["executors"]
    return [body["container"]["image"] for _, body in sorted(executors.items()) if "container" in body]
