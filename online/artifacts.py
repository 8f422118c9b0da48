"""Finds the learner's base in ML Metadata: the served networks and Transform graph of the last push.

Lineage walked: the newest ``PushedModel`` marked pushed -> the Pusher execution that wrote it
-> its input ``Model`` (the serving model that BuildServingModel built) -> the execution that
built it -> its ``TransformGraph`` input and the ``Model`` input it built the serving model from:
the one under the input key ``model`` (`SERVED_INPUT_KEY`). In the default pipeline that is
CompressModel's chosen variant (the artifact carries its ``compression_variant``); the Trainer's
own networks, the key ``trained_model``, are copied beside the serving model for warm starts
and are not what is served. Stores without input keys fall back to the producer: a lone
``Model`` input, or the one that CompressModel produced. So the learner starts from exactly the
networks behind the version being served. The serving model's own folder is reported too
(`pushed_model_dir`): `retrieval_note` reads from it whether the pushed model retrieves through a
ScaNN index, which online versions do not rebuild.
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Optional, Tuple

SCANN_NOTE = ("the pushed model retrieves through a ScaNN index; learned versions retrieve by brute force "
              "(the index is not rebuilt online)")

MODEL_TYPE = "Model"
PUSHED_MODEL_TYPE = "PushedModel"
TRANSFORM_GRAPH_TYPE = "TransformGraph"
SERVING_MODEL_DIR = "Format-Serving"  # tfx.utils.path_utils.serving_model_dir
SERVED_INPUT_KEY = "model"  # BuildServingModel's input of the networks it serves
TRAINER_INPUT_KEY = "trained_model"  # its optional input of the Trainer's networks
COMPRESSOR = "CompressModel"
RANKER_SUBDIR = "candidate_ranker"  # components.build_serving_model.RANKER_SUBDIR, beside the pushed model
VARIANT_PROPERTY = "compression_variant"


class BaseNotFoundError(LookupError):
    """The metadata store does not lead to a pushed model's networks and Transform graph."""


@dataclasses.dataclass(frozen=True)
class BaseArtifacts:
    """The inputs of the learner's base."""

    trained_dir: str  # the networks the pushed model serves (a compressed variant's, when compressed)
    transform_dir: str
    pushed_version: str
    variant: str = ""  # the compression variant of `trained_dir` ("" when CompressModel did not run)
    ranker_dir: str = ""  # the candidate ranker the pushed model serves ("" when it has none)
    pushed_model_dir: str = ""  # the SavedModel the Pusher copied ("" when its folder is gone)


def _store(metadata_path: str):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    if not os.path.exists(metadata_path):
        raise BaseNotFoundError(f"no metadata store at {metadata_path}: run the pipeline first, or pass "
                                "--trained-dir and --transform-dir")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _producer(store, artifact_id: int) -> int:
    from ml_metadata.proto import metadata_store_pb2

    outputs = [e for e in store.get_events_by_artifact_ids([artifact_id])
               if e.type == metadata_store_pb2.Event.OUTPUT]
    if not outputs:
        raise BaseNotFoundError(f"artifact {artifact_id} has no producing execution in the metadata store")
    return outputs[0].execution_id


def _keyed_inputs_of_type(store, execution_id: int, type_name: str) -> List[Tuple[Optional[str], object]]:
    """(input key or None when not recorded, artifact) of an execution's inputs of one type."""
    from ml_metadata.proto import metadata_store_pb2

    from ml_metadata import errors

    keys = {}
    for event in store.get_events_by_execution_ids([execution_id]):
        if event.type == metadata_store_pb2.Event.INPUT:
            steps = [step.key for step in event.path.steps if step.HasField("key")]
            key = steps[0] if steps else None
            if keys.get(event.artifact_id) != SERVED_INPUT_KEY:  # one artifact under two keys: the served one wins
                keys[event.artifact_id] = key
    try:
        wanted = store.get_artifact_type(type_name).id
    except errors.NotFoundError as err:
        raise BaseNotFoundError(f"the metadata store has no {type_name} artifacts") from err
    return [(keys[a.id], a) for a in store.get_artifacts_by_id(list(keys)) if a.type_id == wanted]


def _inputs_of_type(store, execution_id: int, type_name: str) -> List:
    return [artifact for _, artifact in _keyed_inputs_of_type(store, execution_id, type_name)]


def _producer_type(store, artifact_id: int) -> str:
    (execution,) = store.get_executions_by_id([_producer(store, artifact_id)])
    (execution_type,) = store.get_execution_types_by_id([execution.type_id])
    return execution_type.name


def _served_model(store, builder: int):
    """The Model input the serving model was built from (see the module docstring)."""
    keyed = _keyed_inputs_of_type(store, builder, MODEL_TYPE)
    served = [a for key, a in keyed if key == SERVED_INPUT_KEY]
    if not served and all(key is None for key, _ in keyed):  # a store without input keys
        served = [a for _, a in keyed] if len(keyed) == 1 else \
            [a for _, a in keyed if COMPRESSOR in _producer_type(store, a.id) or VARIANT_PROPERTY in a.custom_properties]
    if len(served) != 1:
        found = ", ".join(f"{key or '?'} (artifact {a.id})" for key, a in keyed) or "none"
        raise BaseNotFoundError(f"execution {builder} (which built the pushed model) has no single Model input it "
                                f"served: its Model inputs are {found}")
    return served[0]


def locate_base(metadata_path: str) -> BaseArtifacts:
    """The Trainer output and Transform graph behind the newest pushed model.

    Raises:
      BaseNotFoundError: no pushed model, or its lineage is incomplete.
    """
    store = _store(metadata_path)
    try:
        pushed = [a for a in store.get_artifacts_by_type(PUSHED_MODEL_TYPE)
                  if a.custom_properties["pushed"].int_value == 1]
    except KeyError as err:
        raise BaseNotFoundError(f"{metadata_path}: no pushed model recorded") from err
    if not pushed:
        raise BaseNotFoundError(f"{metadata_path}: no model was pushed yet (none passed the evaluation gate)")
    newest = max(pushed, key=lambda a: a.id)
    serving_models = _inputs_of_type(store, _producer(store, newest.id), MODEL_TYPE)
    if len(serving_models) != 1:
        raise BaseNotFoundError(f"the push of artifact {newest.id} has {len(serving_models)} model inputs, expected 1")
    builder = _producer(store, serving_models[0].id)
    served = _served_model(store, builder)
    graphs = _inputs_of_type(store, builder, TRANSFORM_GRAPH_TYPE)
    if len(graphs) != 1:
        raise BaseNotFoundError(f"execution {builder} (which built the pushed model) has {len(graphs)} "
                                "TransformGraph inputs, expected 1")
    version = newest.custom_properties["pushed_version"].string_value if "pushed_version" in newest.custom_properties else ""
    variant = served.custom_properties[VARIANT_PROPERTY].string_value if VARIANT_PROPERTY in served.custom_properties else ""
    ranker_dir = os.path.join(serving_models[0].uri, RANKER_SUBDIR)
    pushed_dir = os.path.join(serving_models[0].uri, SERVING_MODEL_DIR)
    return BaseArtifacts(os.path.join(served.uri, SERVING_MODEL_DIR), graphs[0].uri, version, variant,
                         ranker_dir if os.path.isdir(ranker_dir) else "", pushed_dir if os.path.isdir(pushed_dir) else "")


def retrieval_note(pushed_model_dir: str) -> Optional[str]:
    """`SCANN_NOTE` when the SavedModel in `pushed_model_dir` retrieves through a ScaNN index;
    None for a brute-force model, or when `pushed_model_dir` is "" (the pushed model is unknown)."""
    if not pushed_model_dir:
        return None
    from trainer.scann_serving_model import uses_scann_index

    return SCANN_NOTE if uses_scann_index(pushed_model_dir) else None


NETWORK_DIRS = ("query_tower", "candidate_tower", "ranking_model")  # trainer.export.NETWORKS
TRANSFORM_GRAPH_FILE = os.path.join("transform_fn", "saved_model.pb")
RANKER_SPEC = "ranker.json"  # trainer.candidate_ranker.SPEC_FILE


def check_base_dirs(trained_dir: str, transform_dir: str, ranker_dir: str = "") -> None:
    """Checks that the learner's base folders hold what it loads, before anything is loaded.

    Args:
      trained_dir: the networks (`trainer.export.save_trained` layout).
      transform_dir: the Transform graph.
      ranker_dir: the candidate ranker's folder, or "" when the base has none.

    Raises:
      BaseNotFoundError: a folder, or a part the learner loads from it, is missing; the message
        names the path.
    """
    needed = [(trained_dir, os.path.join(trained_dir, name), "networks") for name in NETWORK_DIRS]
    needed.append((transform_dir, os.path.join(transform_dir, TRANSFORM_GRAPH_FILE), "Transform graph"))
    if ranker_dir:
        needed.append((ranker_dir, os.path.join(ranker_dir, RANKER_SPEC), "candidate ranker"))
    for folder, part, what in needed:
        if not os.path.isdir(folder):
            raise BaseNotFoundError(f"{what} folder {folder} does not exist")
        if not os.path.exists(part):
            raise BaseNotFoundError(f"{what} folder {folder} lacks {os.path.relpath(part, folder)}")
