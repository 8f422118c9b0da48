"""Compiling create_pipeline(cfg) with KubeflowV2DagRunner: components, image, resources, Beam."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

from kubeflow.config import KubeflowConfig, KubeflowConfigError, ResourceConfig
from pipeline.config import BeamConfig, PipelineConfig

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGE = "europe-docker.pkg.dev/proj/ml/recsys-pipeline:7.3"
TRAINER = ResourceConfig(cpu_request=6, cpu_limit=12, memory_request_gb=24, memory_limit_gb=48,
                         gpu_type="NVIDIA_L4", gpu_count=2, node_selector=(("pool", "l4"),))
EXAMPLES = ResourceConfig(cpu_request=3, cpu_limit=3, memory_request_gb=5, memory_limit_gb=6)
KF = KubeflowConfig(
    image=IMAGE,
    output_root="gs://recsys-bucket/prod",
    default_resources=ResourceConfig(cpu_request=0.5, cpu_limit=1, memory_request_gb=1, memory_limit_gb=2),
    component_resources=(("Trainer", TRAINER), ("interaction_example_gen", EXAMPLES)),
)
BEAM = BeamConfig(runner="DataflowRunner", project="proj", region="europe-west4",
                  temp_location="gs://recsys-bucket/tmp", max_num_workers=16)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from kubeflow.runner import compile_pipeline

    out = tmp_path_factory.mktemp("kfp")
    return compile_pipeline(PipelineConfig(beam=BEAM), KF, str(out))


@pytest.fixture(scope="module")
def component_ids():
    from pipeline.pipeline import create_pipeline

    return {c.id for c in create_pipeline(PipelineConfig()).components}


def _executors(compiled):
    return compiled.job["pipelineSpec"]["deploymentSpec"]["executors"]


def _container(compiled, task):
    return _executors(compiled)[compiled.tasks[task]]["container"]


def test_every_component_is_a_task(compiled, component_ids):
    tasks = set(compiled.job["pipelineSpec"]["root"]["dag"]["tasks"])
    # The resolver compiles into resolver tasks named after it.
    assert all(c in tasks or any(t.startswith(f"{c}-") for t in tasks) for c in component_ids)
    # Every component but the resolver runs a container and so got resources.
    assert set(compiled.tasks) == {c for c in component_ids if c != "latest_blessed_model_resolver"}


def test_every_container_runs_the_pipeline_image(compiled):
    from kubeflow.resources import container_images

    images = container_images(compiled.job["pipelineSpec"])
    assert len(images) == len(compiled.tasks) and set(images) == {IMAGE}


def test_resources_come_from_config(compiled):
    trainer = _container(compiled, "Trainer")["resources"]
    assert trainer == {"cpuRequest": 6.0, "cpuLimit": 12.0, "memoryRequest": 24.0, "memoryLimit": 48.0,
                       "accelerator": {"type": "NVIDIA_L4", "count": "2"}}
    # File-based ExampleGens too, whose platform config TFX's compiler would drop.
    examples = _container(compiled, "interaction_example_gen")["resources"]
    assert examples == {"cpuRequest": 3.0, "cpuLimit": 3.0, "memoryRequest": 5.0, "memoryLimit": 6.0}
    assert _container(compiled, "Transform")["resources"]["cpuLimit"] == 1.0


def test_node_selectors_in_the_platform_spec(compiled):
    executors = compiled.platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors == {compiled.tasks["Trainer"]: {"nodeSelector": {"labels": {"pool": "l4"}}}}


def test_files_written_and_the_package_parses(compiled):
    import json

    import yaml
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    assert json.loads(pathlib.Path(compiled.job_path).read_text()) == compiled.job
    spec, platform = yaml.safe_load_all(pathlib.Path(compiled.package_path).read_text())
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
    assert spec["defaultPipelineRoot"] == "gs://recsys-bucket/prod/pipeline"
    assert compiled.job["runtimeConfig"]["gcsOutputDirectory"] == "gs://recsys-bucket/prod/pipeline"


def test_beam_components_get_the_dataflow_arguments(compiled):
    args = _container(compiled, "Transform")["args"]
    for flag in ("--runner=DataflowRunner", "--project=proj", "--region=europe-west4",
                 "--temp_location=gs://recsys-bucket/tmp", "--max_num_workers=16",
                 f"--sdk_container_image={IMAGE}"):  # the pipeline image runs the Beam workers
        assert flag in args


def test_the_schema_file_points_into_the_image(compiled):
    from pipeline import curated_schema

    task = compiled.job["pipelineSpec"]["root"]["dag"]["tasks"]["ImportSchemaGen"]
    path = task["inputs"]["parameters"]["schema_file"]["runtimeValue"]["constantValue"]["stringValue"]
    relative = pathlib.Path(curated_schema.SCHEMA_FILE).resolve().relative_to(ROOT)
    assert path == f"{KF.image_project_root}/{relative.as_posix()}"


def test_paths_lie_under_the_output_root():
    from kubeflow.runner import kubeflow_pipeline_config

    cfg = kubeflow_pipeline_config(PipelineConfig(), KF)
    assert cfg.pipeline_root == "gs://recsys-bucket/prod/pipeline"
    assert cfg.data_root == "gs://recsys-bucket/prod/data"
    assert cfg.serving_model_dir == "gs://recsys-bucket/prod/serving_model"


def test_unknown_component_in_resources_is_an_error(compiled):
    import copy

    from kubeflow.resources import set_resources

    bad = dataclasses.replace(KF, component_resources=(("Trainr", TRAINER),))
    with pytest.raises(KubeflowConfigError, match=r"unknown component\(s\) \['Trainr'\]"):
        set_resources(copy.deepcopy(compiled.job["pipelineSpec"]), bad)


@pytest.mark.parametrize("which, values, expected", [
    ("--config", {"trainer": {"epochs": "three"}}, "trainer.epochs: expected an integer, got 'three'"),
    ("--kubeflow-config", {"imagee": "x:1"}, "imagee: unknown key"),
    ("--config", {"beam": {"runner": "DataflowRunner"}}, "DataflowRunner needs beam.project, beam.region"),
])
def test_a_bad_config_is_one_line_and_exit_2(tmp_path, capsys, which, values, expected):
    import json

    from kubeflow.runner import main

    path = tmp_path / "c.json"
    path.write_text(json.dumps(values))
    assert main([which, str(path), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
