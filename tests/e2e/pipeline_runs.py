"""What the e2e modules share about a pipeline run: the lighter compression stage, MLMD states."""

from __future__ import annotations

import collections

# The default pipeline with a lighter compression stage (every variant is covered by
# tests/compression; here the stage's wiring: report, selection, the chosen model served).
E2E_COMPRESSION = {"variants": ["int8", "distilled_int8"], "tflite_modes": ["dynamic_range"],
                   "student_epochs": 2, "latency_repeats": 3}


def node_states(metadata_path: str, pipeline_name: str):
    """node id -> Counter of MLMD execution states."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(config)
    states = {}
    prefix = f"{pipeline_name}."
    for context in store.get_contexts_by_type("node"):
        if not context.name.startswith(prefix):
            continue
        node = context.name[len(prefix):]
        counter = collections.Counter(
            metadata_store_pb2.Execution.State.Name(e.last_known_state)
            for e in store.get_executions_by_context(context.id)
        )
        states[node] = counter
    return states
