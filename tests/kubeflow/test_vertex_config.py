"""Vertex worker pools in the Kubeflow config: validation, the pool specs, and the Trainer strategy."""

from __future__ import annotations

import json

import pytest

from core.config_loader import ConfigError
from kubeflow.config import kubeflow_config_from_dict
from pipeline.config import PipelineConfig, TrainerConfig, load_config
from pipeline.vertex_training import VertexTrainerJob, VertexTrainingConfig, WorkerPoolConfig

ON = {"enabled": True, "project": "proj", "region": "europe-west4"}
WORKERS = {"replica_count": 2}


def test_pools_from_json():
    kf = kubeflow_config_from_dict({"vertex_training": {
        **ON,
        "chief": {"machine_type": "a2-highgpu-1g", "accelerator_type": "NVIDIA_TESLA_A100", "accelerator_count": 1},
        "workers": {"machine_type": "a2-highgpu-1g", "replica_count": 4, "accelerator_type": "NVIDIA_TESLA_A100",
                    "accelerator_count": 1},
        "parameter_servers": {"replica_count": 2},
    }})
    vertex = kf.vertex_training
    assert [(name, pool.replica_count) for name, pool in vertex.pools] == [
        ("chief", 1), ("workers", 4), ("parameter_servers", 2)]
    assert vertex.parameter_servers == WorkerPoolConfig(replica_count=2)  # unset keys: the pool defaults
    assert vertex.cluster_strategy == "parameter_server"


def test_unused_pools_are_left_out_of_the_job():
    job = VertexTrainerJob(VertexTrainingConfig(**ON), "gcr.io/p/recsys:1")
    assert job.worker_pool_specs() == [{
        "machine_spec": {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1},
        "replica_count": 1, "container_spec": {"image_uri": "gcr.io/p/recsys:1"}}]
    with_workers = VertexTrainerJob(VertexTrainingConfig(**ON, workers=WorkerPoolConfig(replica_count=2)), "i:1")
    assert [spec["replica_count"] for spec in with_workers.worker_pool_specs()] == [1, 2]


@pytest.mark.parametrize("vertex, message", [
    ({"enabled": True, "region": "r"}, "vertex_training.project must be set when enabled"),
    ({"enabled": True, "project": "p"}, "vertex_training.region must be set when enabled"),
    ({**ON, "chief": {"replica_count": 2}}, "vertex_training.chief.replica_count must be 1"),
    ({**ON, "parameter_servers": {"replica_count": 2}}, "parameter_servers need workers.replica_count >= 1"),
    ({**ON, "workers": {"replica_count": -1}}, "vertex_training.workers: replica_count must be >= 0"),
    ({**ON, "workers": {"machine_type": " "}}, "vertex_training.workers: machine_type must not be empty"),
    ({**ON, "workers": {**WORKERS, "accelerator_type": "NVIDIA_L4"}},
     "vertex_training.workers: accelerator_type and accelerator_count > 0 go together"),
    ({**ON, "workers": {**WORKERS, "accelerator_type": "NVIDIA_T4", "accelerator_count": 1}},
     "vertex_training.workers.accelerator_type 'NVIDIA_T4' is not a Vertex AcceleratorType"),
    ({**ON, "workers": WORKERS, "parameter_servers": {"replica_count": 1, "accelerator_type": "NVIDIA_L4",
                                                      "accelerator_count": 1}},
     "parameter_servers.accelerator_count must be 0"),
    ({**ON, "workers": {"gpus": 2}}, "vertex_training.workers.gpus: unknown key"),
    ({**ON, "replicas": 2}, "vertex_training.replicas: unknown key"),
])
def test_bad_pools_are_one_line_errors_through_the_runner(tmp_path, capsys, vertex, message):
    from kubeflow.runner import main

    path = tmp_path / "kf.json"
    path.write_text(json.dumps({"vertex_training": vertex}))
    assert main(["--kubeflow-config", str(path), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_launcher_pod_takes_no_gpu():
    launcher = {"cpu_request": 0.25, "cpu_limit": 0.5, "node_selector": {"pool": "cpu"}}
    kf = kubeflow_config_from_dict({"vertex_training": ON, "vertex_launcher_resources": launcher})
    assert kf.resources_for("Trainer").node_labels == {"pool": "cpu"}
    assert kf.resources_for("CompressModel").gpu_count == 1  # only the Trainer moves to Vertex
    with pytest.raises(ConfigError, match="vertex_launcher_resources: the pod that submits the Vertex job needs no"):
        kubeflow_config_from_dict({"vertex_launcher_resources": {"gpu_type": "nvidia.com/gpu", "gpu_count": 1}})


@pytest.mark.parametrize("pools, strategy, ok", [
    ({"workers": WorkerPoolConfig(replica_count=2)}, "auto", True),
    ({"workers": WorkerPoolConfig(replica_count=2)}, "multi_worker", True),
    ({"workers": WorkerPoolConfig(replica_count=2)}, "mirrored", False),  # each replica would train alone
    ({"workers": WorkerPoolConfig(replica_count=1), "parameter_servers": WorkerPoolConfig(replica_count=1)},
     "multi_worker", False),
    ({}, "mirrored", True),  # the chief alone: any strategy on its own GPUs
])
def test_trainer_strategy_must_agree_with_the_pools(pools, strategy, ok):
    job = VertexTrainerJob(VertexTrainingConfig(**ON, **pools), "gcr.io/p/recsys:1")
    build = lambda: PipelineConfig(trainer=TrainerConfig(strategy=strategy), vertex_trainer=job)  # noqa: E731
    if ok:
        assert build().vertex_trainer == job
    else:
        with pytest.raises(ConfigError, match=f"trainer.strategy is '{strategy}' but vertex_training's pools form"):
            build()


def test_a_strategy_conflict_is_one_line_through_the_runner(tmp_path, capsys):
    from kubeflow.runner import main

    (tmp_path / "kf.json").write_text(json.dumps({"vertex_training": {**ON, "workers": WORKERS}}))
    (tmp_path / "p.json").write_text(json.dumps({"trainer": {"strategy": "mirrored"}}))
    code = main(["--config", str(tmp_path / "p.json"), "--kubeflow-config", str(tmp_path / "kf.json"),
                 "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "trainer.strategy is 'mirrored' but vertex_training's pools form a multi_worker cluster" in err


def test_the_pipeline_file_cannot_set_the_vertex_job(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"vertex_trainer": {"image": "i:1"}}))
    with pytest.raises(ConfigError, match="vertex_trainer: not a pipeline setting; switch the Trainer to Vertex"):
        load_config(str(path))


def test_a_job_needs_the_switch_and_an_image():
    with pytest.raises(ConfigError, match="training.enabled must be true"):
        VertexTrainerJob(VertexTrainingConfig(), "i:1")
    with pytest.raises(ConfigError, match="image must be set"):
        VertexTrainerJob(VertexTrainingConfig(**ON), "")
