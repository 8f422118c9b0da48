"""ValidationGate: stops the run when ExampleValidator reported anomalies in any split.

Transform, training and the push run after this gate, so a span with a wrong-typed column, a
missing feature or an out-of-range rating never produces a pushed model; the error names every
anomalous feature and split.
"""


import os
from typing import Dict, List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

ANOMALIES_FILE = "SchemaDiff.pb"


class DataValidationError(RuntimeError):
    """The interactions violate the curated schema."""


def read_anomalies(artifact) -> Dict[str, anomalies_pb2.Anomalies]:
    """The Anomalies proto of each split of an ExampleAnomalies artifact."""
    result = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact.uri, f"Split-{split}", ANOMALIES_FILE)
        anomalies = anomalies_pb2.Anomalies()
        with open(path, "rb") as handle:
            anomalies.ParseFromString(handle.read())
        result[split] = anomalies
    return result


def describe(anomalies_by_split: Dict[str, anomalies_pb2.Anomalies]) -> List[str]:
    """One line per anomalous feature: split, feature and the validator's description."""
    lines = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            lines.append(f"split {split!r}, feature {feature!r}: {info.description or info.short_description}")
        if anomalies.HasField("dataset_anomaly_info"):
            lines.append(f"split {split!r}: {anomalies.dataset_anomaly_info.description}")
    return lines


@component
def ValidationGate(  # noqa: N802 - TFX component names are CamelCase
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
) -> None:
    """Raises DataValidationError when any split has anomalies."""
    lines = describe(read_anomalies(anomalies))
    if lines:
        raise DataValidationError(
            "ExampleValidator found anomalies; the model will not be trained or pushed:\n  "
            + "\n  ".join(lines)
        )
