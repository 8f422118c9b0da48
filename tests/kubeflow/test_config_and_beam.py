"""Kubeflow config validation and the Beam arguments generated for each runner."""

from __future__ import annotations

import json

import pytest

from pipeline import beam_args
from kubeflow.config import (KubeflowConfig, KubeflowConfigError, ResourceConfig, kubeflow_config_from_dict,
                             load_kubeflow_config)
from pipeline.config import BeamConfig


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
        ({"component_resources": {"Trainer": {"gpus": 1}}}, r"component_resources.Trainer: unknown key"),
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


def _options(args):
    from apache_beam.options.pipeline_options import PipelineOptions

    # Only options Beam knows come back: a misspelt flag would be missing here.
    return PipelineOptions(list(args)).get_all_options(drop_default=True)


def test_direct_runner_runs_n_worker_processes():
    args = beam_args.runner_args(BeamConfig(direct_num_workers=4, direct_running_mode="multi_processing"))
    options = _options(args)
    assert options["runner"] == "DirectRunner"
    assert options["direct_num_workers"] == 4 and options["direct_running_mode"] == "multi_processing"
    assert BeamConfig(direct_num_workers=4, direct_running_mode="multi_processing").pipeline_args() == args


def test_dataflow_arguments():
    beam = BeamConfig(runner="DataflowRunner", project="proj", region="europe-west1",
                      temp_location="gs://b/tmp", max_num_workers=20, machine_type="n2-highmem-8",
                      sdk_container_image="gcr.io/proj/recsys:1", extra_args=("--job_name=recsys-nightly",))
    options = _options(beam_args.runner_args(beam))
    assert options["runner"] == "DataflowRunner"
    assert (options["project"], options["region"], options["temp_location"]) == ("proj", "europe-west1", "gs://b/tmp")
    assert options["max_num_workers"] == 20 and options["autoscaling_algorithm"] == "THROUGHPUT_BASED"
    assert options["machine_type"] == "n2-highmem-8"
    assert options["sdk_container_image"] == "gcr.io/proj/recsys:1"
    assert options["job_name"] == "recsys-nightly"
    # The pipeline hands the same arguments to every Beam-based component.
    from pipeline.config import PipelineConfig
    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(PipelineConfig(beam=beam))
    assert list(pipeline.beam_pipeline_args) == list(beam_args.runner_args(beam))


def test_flink_and_spark_arguments():
    flink = BeamConfig(runner="FlinkRunner", flink_master="flink-jobmanager:8081", parallelism=8,
                       sdk_container_image="gcr.io/proj/recsys:1")
    options = _options(beam_args.runner_args(flink))
    assert options["flink_master"] == "flink-jobmanager:8081" and options["parallelism"] == 8
    assert options["environment_type"] == "DOCKER" and options["sdk_container_image"] == "gcr.io/proj/recsys:1"
    spark = BeamConfig(runner="SparkRunner", spark_master_url="spark://spark-master:7077",
                       environment_type="EXTERNAL", environment_config="beam-worker-pool:50000")
    options = _options(beam_args.runner_args(spark))
    assert options["spark_master_url"] == "spark://spark-master:7077"
    assert options["environment_type"] == "EXTERNAL" and options["environment_config"] == "beam-worker-pool:50000"


def test_the_generated_runners_exist_in_beam():
    from apache_beam.runners.runner import create_runner

    for name in beam_args.RUNNERS:
        assert type(create_runner(name)).__name__.endswith(name)  # DirectRunner -> SwitchingDirectRunner


@pytest.mark.parametrize(
    "beam, message",
    [
        (BeamConfig(runner="DataflowRunner", project="p"), "DataflowRunner needs beam.region, beam.temp_location"),
        (BeamConfig(runner="DataflowRunner", project="p", region="r", temp_location="/tmp"), "gs:// temp_location"),
        (BeamConfig(runner="FlinkRunner", sdk_container_image="i:1"), "FlinkRunner needs beam.flink_master"),
        (BeamConfig(runner="SparkRunner", spark_master_url="spark://m:7077"), "sdk_container_image .* or beam.environment_type"),
        (BeamConfig(runner="SparkRunner", spark_master_url="spark://m:7077", environment_type="EXTERNAL"),
         "EXTERNAL needs beam.environment_config"),
        (BeamConfig(runner="SamzaRunner"), "unknown Beam runner 'SamzaRunner'"),
        (BeamConfig(direct_running_mode="multi_process"), "unknown direct_running_mode"),
    ],
)
def test_missing_runner_settings_fail_early(beam, message):
    with pytest.raises(ValueError, match=message):
        beam_args.runner_args(beam)
