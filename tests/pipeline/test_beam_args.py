"""The Beam arguments generated for each runner."""

from __future__ import annotations

import pytest

from pipeline import beam_args
from pipeline.config import BeamConfig


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
    ],
)
def test_missing_runner_settings_fail_early(beam, message):
    with pytest.raises(ValueError, match=message):
        beam_args.runner_args(beam)


def test_an_unknown_direct_running_mode_is_refused_when_the_config_is_built():
    from core.config_loader import ConfigError

    with pytest.raises(ConfigError, match="beam.direct_running_mode must be one of .*got 'multi_process'"):
        BeamConfig(direct_running_mode="multi_process")
