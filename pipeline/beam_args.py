"""Apache Beam pipeline arguments for every supported runner, from a `BeamConfig`.

* DirectRunner: local, with N workers in multi-processing (or threading / in-memory) mode;
* DataflowRunner: project, region, temp location, autoscaling ceiling, machine type and the
  pipeline image as the SDK worker container (the TFX executors need the project installed);
* FlinkRunner / SparkRunner (portable): the cluster address and the SDK harness environment
  (DOCKER with the pipeline image, EXTERNAL worker pools, or PROCESS).

Missing settings raise a clear error here rather than a late one inside a Beam job.
"""

from __future__ import annotations

from typing import Any, List, Tuple

RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner")
DIRECT_MODES = ("in_memory", "multi_threading", "multi_processing")
ENVIRONMENTS = ("DOCKER", "EXTERNAL", "PROCESS", "LOOPBACK")


def _require(beam: Any, runner: str, *names: str) -> None:
    missing = [name for name in names if not getattr(beam, name)]
    if missing:
        raise ValueError(f"{runner} needs " + ", ".join(f"beam.{name}" for name in missing))


def _direct(beam: Any) -> List[str]:
    if beam.direct_running_mode not in DIRECT_MODES:
        raise ValueError(
            f"unknown direct_running_mode {beam.direct_running_mode!r}; choose one of {', '.join(DIRECT_MODES)}"
        )
    if beam.direct_num_workers < 0:
        raise ValueError(f"direct_num_workers must be >= 0 (0: one per core), got {beam.direct_num_workers}")
    return [f"--direct_num_workers={beam.direct_num_workers}", f"--direct_running_mode={beam.direct_running_mode}"]


def _dataflow(beam: Any) -> List[str]:
    _require(beam, "DataflowRunner", "project", "region", "temp_location")
    if not beam.temp_location.startswith("gs://"):
        raise ValueError(f"DataflowRunner needs a gs:// temp_location, got {beam.temp_location!r}")
    args = [f"--project={beam.project}", f"--region={beam.region}", f"--temp_location={beam.temp_location}"]
    if beam.max_num_workers:
        args += [f"--max_num_workers={beam.max_num_workers}", "--autoscaling_algorithm=THROUGHPUT_BASED"]
    if beam.machine_type:
        args.append(f"--machine_type={beam.machine_type}")
    if beam.sdk_container_image:
        args.append(f"--sdk_container_image={beam.sdk_container_image}")
    return args


def _environment(beam: Any, runner: str) -> List[str]:
    kind = beam.environment_type or ("DOCKER" if beam.sdk_container_image else "")
    if not kind:
        raise ValueError(
            f"{runner} needs beam.sdk_container_image (the pipeline image) or beam.environment_type"
        )
    if kind not in ENVIRONMENTS:
        raise ValueError(f"unknown environment_type {kind!r}; choose one of {', '.join(ENVIRONMENTS)}")
    args = [f"--environment_type={kind}"]
    if kind == "DOCKER":
        _require(beam, f"{runner} with DOCKER", "sdk_container_image")
        args.append(f"--sdk_container_image={beam.sdk_container_image}")
    elif kind in ("EXTERNAL", "PROCESS"):
        _require(beam, f"{runner} with {kind}", "environment_config")
        args.append(f"--environment_config={beam.environment_config}")
    return args


def runner_args(beam: Any) -> Tuple[str, ...]:
    """The `beam_pipeline_args` for `beam.runner`, followed by `beam.extra_args`.

    Args:
      beam: a `pipeline.config.BeamConfig`.

    Returns:
      Command-line style Beam options.

    Raises:
      ValueError: unknown runner, or a setting the runner needs is missing or invalid.
    """
    if beam.runner not in RUNNERS:
        raise ValueError(f"unknown Beam runner {beam.runner!r}; choose one of {', '.join(RUNNERS)}")
    args = [f"--runner={beam.runner}"]
    if beam.runner == "DirectRunner":
        args += _direct(beam)
    elif beam.runner == "DataflowRunner":
        args += _dataflow(beam)
    elif beam.runner == "FlinkRunner":
        _require(beam, "FlinkRunner", "flink_master")
        args.append(f"--flink_master={beam.flink_master}")
        if beam.parallelism:
            args.append(f"--parallelism={beam.parallelism}")
        args += _environment(beam, "FlinkRunner")
    else:
        _require(beam, "SparkRunner", "spark_master_url")
        args.append(f"--spark_master_url={beam.spark_master_url}")
        args += _environment(beam, "SparkRunner")
    return tuple(args) + tuple(beam.extra_args)
