"""Locating the learner's base through ML Metadata lineage."""

from __future__ import annotations

import pytest

from online import artifacts


def _store(path):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(config)


def _run(store, types, name, inputs, outputs, keys=None):
    """Records an execution of `name` with input and output artifacts (type name, uri, props).

    `keys`, when given, are the input keys of `inputs` (recorded in each event's path, as TFX does).
    """
    from ml_metadata.proto import metadata_store_pb2

    execution = metadata_store_pb2.Execution(type_id=types[name])
    made = []
    pairs = []
    for kind, artifacts_ in ((metadata_store_pb2.Event.INPUT, inputs), (metadata_store_pb2.Event.OUTPUT, outputs)):
        for position, artifact in enumerate(artifacts_):
            if isinstance(artifact, int):
                (ref,) = store.get_artifacts_by_id([artifact])
            else:
                type_name, uri, props = artifact
                ref = metadata_store_pb2.Artifact(type_id=types[type_name], uri=uri)
                for key, value in props.items():
                    if isinstance(value, int):
                        ref.custom_properties[key].int_value = value
                    else:
                        ref.custom_properties[key].string_value = value
                [ref.id] = store.put_artifacts([ref])
                made.append(ref.id)
            event = metadata_store_pb2.Event(type=kind)
            if keys and kind == metadata_store_pb2.Event.INPUT:
                step = event.path.steps.add()
                step.key = keys[position]
            pairs.append((ref, event))
    store.put_execution(execution, pairs, [])
    return made


@pytest.fixture
def lineage(tmp_path):
    from ml_metadata.proto import metadata_store_pb2

    path = str(tmp_path / "metadata.sqlite")
    store = _store(path)
    types = {n: store.put_artifact_type(metadata_store_pb2.ArtifactType(name=n))
             for n in ("Model", "TransformGraph", "PushedModel", "Examples")}
    types.update({n: store.put_execution_type(metadata_store_pb2.ExecutionType(name=n))
                  for n in ("Transform", "Trainer", "components.compress_model.CompressModel",
                            "BuildServingModel", "Pusher")})
    return path, store, types


def _pipeline_run(store, types, tag, pushed):
    (graph,) = _run(store, types, "Transform", [], [("TransformGraph", f"/p/transform/{tag}", {})])
    (model,) = _run(store, types, "Trainer", [graph], [("Model", f"/p/trainer/{tag}", {})])
    (examples,) = _run(store, types, "Transform", [], [("Examples", f"/p/examples/{tag}", {})])
    (serving,) = _run(store, types, "BuildServingModel", [model, graph, examples], [("Model", f"/p/build/{tag}", {})])
    _run(store, types, "Pusher", [serving], [("PushedModel", f"/p/push/{tag}", {"pushed": int(pushed), "pushed_version": f"v{tag}"})])


def test_finds_the_networks_behind_the_newest_push(lineage):
    path, store, types = lineage
    _pipeline_run(store, types, "1", pushed=True)
    _pipeline_run(store, types, "2", pushed=True)
    _pipeline_run(store, types, "3", pushed=False)  # not blessed: not pushed
    base = artifacts.locate_base(path)
    assert base == artifacts.BaseArtifacts("/p/trainer/2/Format-Serving", "/p/transform/2", "v2")


def test_clear_errors_without_a_push(lineage, tmp_path):
    path, store, types = lineage
    with pytest.raises(artifacts.BaseNotFoundError, match="no model was pushed"):
        artifacts.locate_base(path)
    with pytest.raises(artifacts.BaseNotFoundError, match="run the pipeline first"):
        artifacts.locate_base(str(tmp_path / "missing.sqlite"))


@pytest.mark.parametrize("with_keys", [True, False])
def test_with_compression_the_served_variant_is_the_base_not_the_trainer_networks(lineage, with_keys):
    """The default pipeline: BuildServingModel takes the compressed variant and the Trainer's model."""
    path, store, types = lineage
    (graph,) = _run(store, types, "Transform", [], [("TransformGraph", "/p/transform/1", {})])
    (model,) = _run(store, types, "Trainer", [graph], [("Model", "/p/trainer/1", {})])
    (examples,) = _run(store, types, "Transform", [], [("Examples", "/p/examples/1", {})])
    (compressed,) = _run(store, types, "components.compress_model.CompressModel", [model, graph],
                         [("Model", "/p/compress/1", {"compression_variant": "distilled_int8"})])
    keys = ["trained_model", "transform_graph", "model", "transformed_examples"] if with_keys else None
    (serving,) = _run(store, types, "BuildServingModel", [model, graph, compressed, examples],
                      [("Model", "/p/build/1", {})], keys=keys)
    _run(store, types, "Pusher", [serving], [("PushedModel", "/p/push/1", {"pushed": 1, "pushed_version": "v1"})])
    base = artifacts.locate_base(path)
    assert base == artifacts.BaseArtifacts("/p/compress/1/Format-Serving", "/p/transform/1", "v1", "distilled_int8")


def test_the_pushed_serving_model_and_its_ranker_are_found_beside_each_other(lineage, tmp_path):
    path, store, types = lineage
    build = tmp_path / "build" / "7"
    (build / "Format-Serving").mkdir(parents=True)
    (build / "candidate_ranker").mkdir()
    (graph,) = _run(store, types, "Transform", [], [("TransformGraph", "/p/transform/7", {})])
    (model,) = _run(store, types, "Trainer", [graph], [("Model", "/p/trainer/7", {})])
    (serving,) = _run(store, types, "BuildServingModel", [model, graph], [("Model", str(build), {})])
    _run(store, types, "Pusher", [serving], [("PushedModel", "/p/push/7", {"pushed": 1, "pushed_version": "v7"})])
    base = artifacts.locate_base(path)
    assert (base.pushed_model_dir, base.ranker_dir) == (str(build / "Format-Serving"), str(build / "candidate_ranker"))
