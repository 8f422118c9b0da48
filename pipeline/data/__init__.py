"""The data layer: synthetic generation, importers and the canonical TFRecord files.

Public names are re-exported here and loaded on first use (PEP 562), so importing a light
module of the package (such as `pipeline.data.cli`) does not load TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DataError": "pipeline.data.errors",
    "DataReport": "pipeline.data.report",
    "CleaningReport": "pipeline.data.cleaning",
    "ImportOptions": "pipeline.data.assemble",
    "ColumnMapping": "pipeline.data.generic_csv",
    "import_interactions_csv": "pipeline.data.generic_csv",
    "import_movielens_100k": "pipeline.data.movielens",
    "import_movielens_csv": "pipeline.data.movielens",
    "detect_format": "pipeline.data.importers",
    "import_any": "pipeline.data.importers",
    "generate_synthetic": "pipeline.data.generator",
    "iter_chunks": "pipeline.data.generator",
    "planted_truth": "pipeline.data.generator",
    "SpanWriter": "pipeline.data.writer",
    "read_examples": "pipeline.data.writer",
    "write_catalog": "pipeline.data.writer",
    "span_dir": "pipeline.data.writer",
    "split_pattern": "pipeline.data.writer",
    "catalog_path": "pipeline.data.writer",
}

__all__ = [
    "CleaningReport",
    "ColumnMapping",
    "DataError",
    "DataReport",
    "ImportOptions",
    "SpanWriter",
    "catalog_path",
    "detect_format",
    "generate_synthetic",
    "import_any",
    "import_interactions_csv",
    "import_movielens_100k",
    "import_movielens_csv",
    "iter_chunks",
    "planted_truth",
    "read_examples",
    "span_dir",
    "split_pattern",
    "write_catalog",
]

if TYPE_CHECKING:
    from pipeline.data.assemble import ImportOptions
    from pipeline.data.cleaning import CleaningReport
    from pipeline.data.errors import DataError
    from pipeline.data.generator import generate_synthetic, iter_chunks, planted_truth
    from pipeline.data.generic_csv import ColumnMapping, import_interactions_csv
    from pipeline.data.importers import detect_format, import_any
    from pipeline.data.movielens import import_movielens_100k, import_movielens_csv
    from pipeline.data.report import DataReport
    from pipeline.data.writer import (
        SpanWriter,
        catalog_path,
        read_examples,
        span_dir,
        split_pattern,
        write_catalog,
    )


def __getattr__(name: str) -> Any:
    """Loads a re-exported name from its module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipeline.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
