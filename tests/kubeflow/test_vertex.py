"""The Trainer on Vertex AI Training: the compiled spec with the switch on and off."""

from __future__ import annotations

import dataclasses
import json

import pytest

from kubeflow.config import GPU_TRAINER, KubeflowConfig, ResourceConfig
from pipeline.config import PipelineConfig
from pipeline.vertex_training import VertexTrainingConfig, WorkerPoolConfig

IMAGE = "europe-docker.pkg.dev/proj/ml/recsys-pipeline:7.3"
CHIEF = WorkerPoolConfig(machine_type="n1-standard-16", accelerator_type="NVIDIA_L4", accelerator_count=2)
WORKERS = WorkerPoolConfig(machine_type="g2-standard-24", replica_count=3, accelerator_type="NVIDIA_L4",
                           accelerator_count=2)
PARAMETER_SERVERS = WorkerPoolConfig(machine_type="n1-highmem-16", replica_count=2)
VERTEX = VertexTrainingConfig(enabled=True, project="proj", region="europe-west4", chief=CHIEF,
                              workers=WORKERS, parameter_servers=PARAMETER_SERVERS)
LAUNCHER = ResourceConfig(cpu_request=0.25, cpu_limit=0.5, memory_request_gb=0.5, memory_limit_gb=1)
KF_OFF = KubeflowConfig(image=IMAGE, output_root="gs://recsys-bucket/prod")  # the default T4 Trainer pod
KF_ON = dataclasses.replace(KF_OFF, vertex_training=VERTEX, vertex_launcher_resources=LAUNCHER)
VERTEX_EXECUTOR = "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor"
IN_POD_EXECUTOR = "tfx.components.trainer.executor.GenericExecutor"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from kubeflow.runner import compile_pipeline

    return {switch: compile_pipeline(PipelineConfig(), kf, str(tmp_path_factory.mktemp(switch)))
            for switch, kf in (("on", KF_ON), ("off", KF_OFF))}


def _container(compiled, task="Trainer"):
    return compiled.job["pipelineSpec"]["deploymentSpec"]["executors"][compiled.tasks[task]]["container"]


def _custom_config(compiled):
    parameters = compiled.job["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    return json.loads(parameters["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])


def _executor_class(container):
    args = container["args"]
    return args[args.index("--executor_class_path") + 1]


def _node_selectors(compiled):
    return compiled.platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_the_switch_on_compiles_the_vertex_training_trainer(compiled):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx import v1 as tfx

    vertex = tfx.extensions.google_cloud_ai_platform
    on = compiled["on"]
    json_format.ParseDict(on.job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    container = _container(on)
    assert _executor_class(container) == VERTEX_EXECUTOR and container["image"] == IMAGE
    custom = _custom_config(on)
    assert custom[vertex.ENABLE_VERTEX_KEY] is True
    assert custom[vertex.VERTEX_REGION_KEY] == "europe-west4"
    assert custom[vertex.TRAINING_ARGS_KEY]["project"] == "proj"
    assert custom["trainer"]["strategy"] == "auto"  # the run_fn's hyperparameters travel beside them


def test_the_compiled_spec_holds_every_pool(compiled):
    from google.cloud import aiplatform_v1
    from tfx import v1 as tfx

    specs = _custom_config(compiled["on"])[tfx.extensions.google_cloud_ai_platform.TRAINING_ARGS_KEY][
        "job_spec"]["worker_pool_specs"]
    container = {"image_uri": IMAGE}
    assert specs == [  # Vertex's pool order: chief, workers, parameter servers
        {"machine_spec": {"machine_type": "n1-standard-16", "accelerator_type": "NVIDIA_L4", "accelerator_count": 2},
         "replica_count": 1, "container_spec": container},
        {"machine_spec": {"machine_type": "g2-standard-24", "accelerator_type": "NVIDIA_L4", "accelerator_count": 2},
         "replica_count": 3, "container_spec": container},
        {"machine_spec": {"machine_type": "n1-highmem-16"}, "replica_count": 2, "container_spec": container},
    ]
    for spec in specs:  # field names and enum values of the Vertex API itself
        aiplatform_v1.WorkerPoolSpec(spec)


def test_tfx_vertex_executor_turns_the_compiled_config_into_a_custom_job(compiled, monkeypatch):
    """TFX's own Vertex executor, run on the compiled custom_config; only the API call is replaced."""
    from google.cloud import aiplatform_v1
    from tfx.extensions.google_cloud_ai_platform import runner, training_clients
    from tfx.extensions.google_cloud_ai_platform.trainer import executor

    submitted = {}
    monkeypatch.setattr(training_clients.VertexJobClient, "create_client", lambda self: None)
    monkeypatch.setattr(runner, "_launch_cloud_training", lambda **kwargs: submitted.update(kwargs))
    custom = _custom_config(compiled["on"])
    executor.GenericExecutor().Do({}, {}, {"custom_config": json.dumps(custom), "run_fn": "trainer.entry.run_fn"})

    assert submitted["project"] == "proj" and submitted["enable_vertex"] is True
    assert submitted["vertex_region"] == "europe-west4"
    job = aiplatform_v1.CustomJob(submitted["training_job"])
    pools = list(job.job_spec.worker_pool_specs)
    assert [p.replica_count for p in pools] == [1, 3, 2]
    assert [p.machine_spec.accelerator_count for p in pools] == [2, 2, 0]
    for pool in pools:  # every replica runs the pipeline image with the in-pod Trainer executor
        command = list(pool.container_spec.command)
        assert pool.container_spec.image_uri == IMAGE
        assert command[:3] == ["python", "-m", "tfx.scripts.run_executor"]
        assert command[command.index("--executor_class_path") + 1] == IN_POD_EXECUTOR
        properties = json.loads(command[command.index("--exec-properties") + 1])
        assert properties["run_fn"] == "trainer.entry.run_fn"
        assert json.loads(properties["custom_config"])["trainer"] == custom["trainer"]


def test_the_switch_off_keeps_the_trainer_in_its_pod(compiled):
    off = compiled["off"]
    container = _container(off)
    assert _executor_class(container) == IN_POD_EXECUTOR and container["image"] == IMAGE
    assert set(_custom_config(off)) == {"trainer"}
    assert container["resources"]["accelerator"] == {"type": GPU_TRAINER.gpu_type, "count": "1"}
    assert _node_selectors(off)[off.tasks["Trainer"]] == {"nodeSelector": {"labels": GPU_TRAINER.node_labels}}


def test_kubernetes_resources_stay_coherent_under_vertex(compiled):
    on, off = compiled["on"], compiled["off"]
    # The Trainer's pod only launches the job: the launcher's CPU and memory, no GPU, no GPU node pool.
    assert _container(on)["resources"] == {"cpuRequest": 0.25, "cpuLimit": 0.5, "memoryRequest": 0.5,
                                           "memoryLimit": 1.0}
    assert on.tasks["Trainer"] not in _node_selectors(on)
    # Every other task, CompressModel's T4 included, is scheduled exactly as without the switch.
    assert set(on.tasks) == set(off.tasks)
    for task in set(on.tasks) - {"Trainer"}:
        assert _container(on, task)["resources"] == _container(off, task)["resources"], task
    assert _container(on, "CompressModel")["resources"]["accelerator"]["count"] == "1"
    others = {label: body for label, body in _node_selectors(off).items() if label != off.tasks["Trainer"]}
    assert _node_selectors(on) == others


def test_the_resource_table_shows_the_pools(compiled):
    from kubeflow.runner import resource_table

    table = resource_table(compiled["on"], KF_ON).splitlines()
    trainer = next(line for line in table if line.startswith("Trainer "))
    assert "0.25/0.5" in trainer and "NVIDIA" not in trainer
    assert "Trainer runs on Vertex AI Training in europe-west4" in "\n".join(table)
    assert any(" workers " in line and "3 x g2-standard-24" in line and "2 x NVIDIA_L4" in line for line in table)
    assert any("parameter_servers" in line and "2 x n1-highmem-16" in line for line in table)
    assert "Vertex" not in resource_table(compiled["off"], KF_OFF)
