"""Compiles the same `create_pipeline(cfg)` for Kubeflow Pipelines v2 and Vertex AI Pipelines.

    python -m kubeflow.runner [--config CONFIG.json] [--kubeflow-config KUBEFLOW.json]
                              [--output-dir build/kubeflow]

writes, with TFX's KubeflowV2DagRunner:

* `<output_filename>` (JSON): the PipelineJob that Vertex AI Pipelines runs, every container
  on the pipeline image with its CPU, memory and accelerator requests and limits;
* the same name with `.yaml`: the pipeline spec (with its default pipeline root) followed by
  the Kubernetes platform spec holding the node selectors, the package Kubeflow Pipelines
  uploads.

All paths lie under `KubeflowConfig.output_root` (a gs:// URI in production). Beam components
get the arguments of the configured runner (`pipeline.beam_args`); on Dataflow, Flink or Spark
the pipeline image is also the Beam SDK worker image unless another one is configured.

With `vertex_training.enabled` in the Kubeflow config, the Trainer compiles as TFX's Vertex
Training extension: its task submits a Vertex AI CustomJob whose chief, worker and
parameter-server pools all run the pipeline image (`pipeline.vertex_training`), and the task's
own pod gets the launcher's resources.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
from typing import Any, Dict, List, Optional

from kubeflow import resources
from kubeflow.config import TRAINER_ID, KubeflowConfig
from pipeline.config import PipelineConfig
from pipeline.vertex_training import VertexTrainerJob

DEFAULT_ROOT_KEY = "defaultPipelineRoot"


@dataclasses.dataclass(frozen=True)
class CompiledPipeline:
    """Where the compiled files are and what they hold."""

    job_path: str
    package_path: str
    job: Dict[str, Any]
    platform: Dict[str, Any]
    tasks: Dict[str, str]  # component id -> executor label


def project_root() -> pathlib.Path:
    """The folder holding the project's packages (the source tree or site-packages)."""
    import pipeline

    return pathlib.Path(pipeline.__file__).resolve().parent.parent


def kubeflow_pipeline_config(cfg: PipelineConfig, kf: KubeflowConfig) -> PipelineConfig:
    """`cfg` with its paths under `kf.output_root`, the Beam arguments of its runner and, when
    `kf.vertex_training` is on, the Trainer's Vertex job on the pipeline image.

    Raises:
      ValueError: the Beam runner lacks a setting it needs, or `trainer.strategy` disagrees
        with the cluster the Vertex pools form (ConfigError).
    """
    beam = cfg.beam
    if beam.runner != "DirectRunner" and not beam.sdk_container_image:
        beam = dataclasses.replace(beam, sdk_container_image=kf.image)
    beam.pipeline_args()  # a runner setting that is missing or invalid fails here, before compiling
    return dataclasses.replace(
        cfg,
        pipeline_root=kf.output_path("pipeline"),
        data_root=kf.output_path("data"),
        serving_model_dir=kf.output_path("serving_model"),
        beam=beam,
        vertex_trainer=VertexTrainerJob(kf.vertex_training, kf.image) if kf.vertex_training.enabled else None,
    )


def relocate_local_paths(pipeline: Any, local_root: pathlib.Path, image_root: str) -> List[str]:
    """Points execution properties that name files of this checkout at the image's copy.

    Returns:
      The component ids whose properties were changed.
    """
    prefix = str(local_root) + os.sep
    changed = []
    for component in pipeline.components:
        for key, value in getattr(component, "exec_properties", {}).items():
            if isinstance(value, str) and value.startswith(prefix):
                relative = pathlib.PurePosixPath(*pathlib.Path(value[len(prefix):]).parts)
                component.exec_properties[key] = f"{image_root.rstrip('/')}/{relative}"
                changed.append(component.id)
    return changed


def _package_documents(job: Dict[str, Any], platform: Dict[str, Any], pipeline_root: str) -> List[Dict[str, Any]]:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = dict(job["pipelineSpec"])
    spec[DEFAULT_ROOT_KEY] = pipeline_root
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())  # fails loudly if malformed
    return [spec, platform]


def compile_pipeline(cfg: PipelineConfig, kf: KubeflowConfig, output_dir: str) -> CompiledPipeline:
    """Compiles `create_pipeline` for Kubeflow v2 / Vertex and writes the two files.

    Args:
      cfg: the pipeline config (its paths are replaced by ones under `kf.output_root`).
      kf: images, output root and resources.
      output_dir: local folder for the compiled files (created if missing).

    Returns:
      The compiled pipeline.
    """
    import yaml
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    cfg = kubeflow_pipeline_config(cfg, kf)
    pipeline = create_pipeline(cfg)
    relocate_local_paths(pipeline, project_root(), kf.image_project_root)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=kf.image, display_name=cfg.pipeline_name
        ),
        output_dir=output_dir,
        output_filename=kf.output_filename,
    )
    job = runner.run(pipeline, write_out=False)
    tasks = resources.set_resources(job["pipelineSpec"], kf)
    platform = resources.platform_spec(tasks, kf)
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    job_path = out / kf.output_filename
    job_path.write_text(json.dumps(job, indent=2, sort_keys=True))
    package_path = job_path.with_suffix(".yaml")
    package_path.write_text(yaml.safe_dump_all(_package_documents(job, platform, cfg.pipeline_root), sort_keys=True))
    return CompiledPipeline(str(job_path), str(package_path), job, platform, tasks)


def resource_table(compiled: CompiledPipeline, kf: KubeflowConfig) -> str:
    """One line per task: CPU, memory, accelerator and node selector; then the Vertex pools."""
    lines = [f"{'component':<32} {'cpu req/lim':>12} {'mem GB req/lim':>15} {'gpu':>22}  node selector"]
    for task in sorted(compiled.tasks):
        r = kf.resources_for(task)
        gpu = f"{r.gpu_count} x {r.gpu_type}" if r.gpu_count else "-"
        selector = ",".join(f"{k}={v}" for k, v in r.node_selector) or "-"
        lines.append(
            f"{task:<32} {r.cpu_request:>5g}/{r.cpu_limit:<6g} {r.memory_request_gb:>7g}/{r.memory_limit_gb:<7g} "
            f"{gpu:>22}  {selector}"
        )
    if kf.vertex_training.enabled and TRAINER_ID in compiled.tasks:
        lines.append(f"{TRAINER_ID} runs on Vertex AI Training in {kf.vertex_training.region} "
                     f"(the task above only launches it):")
        for name, pool in kf.vertex_training.pools:
            gpu = f"{pool.accelerator_count} x {pool.accelerator_type}" if pool.accelerator_count else "-"
            lines.append(f"  {name:<18} {pool.replica_count} x {pool.machine_type:<16} accelerators: {gpu}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point (also the runner file for `tfx pipeline compile --engine vertex`)."""
    from core.process import set_up_process

    set_up_process()
    from kubeflow.config import load_kubeflow_config
    from pipeline.config import load_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="pipeline JSON config (keys of pipeline.config.PipelineConfig)")
    parser.add_argument("--kubeflow-config", help="Kubeflow JSON config (keys of kubeflow.config.KubeflowConfig)")
    parser.add_argument("--output-dir", default="build/kubeflow", help="where to write (default: %(default)s)")
    args = parser.parse_args(argv)
    try:  # every value of both configs is checked before anything is compiled
        kf = load_kubeflow_config(args.kubeflow_config)
        cfg = load_config(args.config)
        kubeflow_pipeline_config(cfg, kf)  # the Beam runner's settings and the Vertex pools against cfg
    except ValueError as err:  # ConfigError, KubeflowConfigError: one line naming the key
        print(f"kubeflow.runner: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    compiled = compile_pipeline(cfg, kf, args.output_dir)
    print(f"Vertex AI PipelineJob:     {compiled.job_path}")
    print(f"Kubeflow Pipelines package: {compiled.package_path}")
    print(f"image: {kf.image}   output root: {kf.output_root}")
    print(resource_table(compiled, kf))
    return 0


if __name__ == "__main__":
    sys.exit(main())
