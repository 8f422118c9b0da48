"""Finds the learner's base in ML Metadata: the Trainer model and Transform graph of the last push.

Lineage walked: the newest ``PushedModel`` marked pushed -> the Pusher execution that wrote it
-> its input ``Model`` (the serving model that BuildServingModel built) -> the execution that
built it -> its inputs of type ``Model`` (the Trainer's networks) and ``TransformGraph``.
So the learner starts from exactly the networks behind the version being served.
"""

from __future__ import annotations

import dataclasses
import os
from typing import List

MODEL_TYPE = "Model"
PUSHED_MODEL_TYPE = "PushedModel"
TRANSFORM_GRAPH_TYPE = "TransformGraph"
SERVING_MODEL_DIR = "Format-Serving"  # tfx.utils.path_utils.serving_model_dir


class BaseNotFoundError(LookupError):
    """The metadata store does not lead to a pushed model's networks and Transform graph."""


@dataclasses.dataclass(frozen=True)
class BaseArtifacts:
    """The inputs of the learner's base."""

    trained_dir: str
    transform_dir: str
    pushed_version: str


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


def _inputs_of_type(store, execution_id: int, type_name: str) -> List:
    from ml_metadata import errors
    from ml_metadata.proto import metadata_store_pb2

    ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution_id])
           if e.type == metadata_store_pb2.Event.INPUT]
    try:
        wanted = store.get_artifact_type(type_name).id
    except errors.NotFoundError as err:
        raise BaseNotFoundError(f"the metadata store has no {type_name} artifacts") from err
    return [a for a in store.get_artifacts_by_id(ids) if a.type_id == wanted]


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
    trained = _inputs_of_type(store, builder, MODEL_TYPE)
    graphs = _inputs_of_type(store, builder, TRANSFORM_GRAPH_TYPE)
    if len(trained) != 1 or len(graphs) != 1:
        raise BaseNotFoundError(f"execution {builder} (which built the pushed model) lacks one Model and one "
                                f"TransformGraph input ({len(trained)}, {len(graphs)} found)")
    version = newest.custom_properties["pushed_version"].string_value if "pushed_version" in newest.custom_properties else ""
    return BaseArtifacts(os.path.join(trained[0].uri, SERVING_MODEL_DIR), graphs[0].uri, version)
