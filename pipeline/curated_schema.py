"""The curated schema of the canonical interactions, derived from `core.features`.

The pipeline imports it with ImportSchemaGen so that ExampleValidator checks every span against
fixed types, presence and ranges: a column of the wrong type or a rating out of range is an
anomaly that stops the push. `pipeline/schema/interactions.pbtxt` is this function's output,
committed so that the schema can be reviewed; a test keeps the two identical.
"""

from __future__ import annotations

import pathlib

from tensorflow_metadata.proto.v0 import schema_pb2

from core import features as F

SCHEMA_FILE = pathlib.Path(__file__).resolve().parent / "schema" / "interactions.pbtxt"

_TYPES = {
    "bytes": schema_pb2.BYTES,
    "int": schema_pb2.INT,
    "float": schema_pb2.FLOAT,
}


def build_schema() -> schema_pb2.Schema:
    """Every interaction feature: required, exactly one value, of its declared type."""
    schema = schema_pb2.Schema()
    kinds = F.feature_kinds()
    for name in F.INTERACTION_FEATURES:
        feature = schema.feature.add()
        feature.name = name
        feature.type = _TYPES[kinds[name]]
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        feature.shape.dim.add().size = 1
        if name == F.RATING:
            feature.float_domain.min = F.MIN_RATING
            feature.float_domain.max = F.MAX_RATING
        elif name == F.USER_AGE:
            feature.int_domain.min = F.UNKNOWN_INT
            feature.int_domain.max = F.MAX_AGE
        elif name in (F.TIMESTAMP, F.ITEM_YEAR):
            feature.int_domain.min = 0
    return schema


def schema_text() -> str:
    """The schema as a text proto, as committed in `SCHEMA_FILE`."""
    from google.protobuf import text_format

    return text_format.MessageToString(build_schema())
