"""The data layer: synthetic generation, importers and the canonical TFRecord files.

Public names are re-exported here and loaded on first use (PEP 562), so importing a light
module of the package (such as `ingest.cli`) does not load TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DataError": "ingest.errors",
    "DataReport": "ingest.report",
    "CleaningReport": "ingest.cleaning",
    "ImportOptions": "ingest.assemble",
    "ColumnMapping": "ingest.generic_csv",
    "import_interactions_csv": "ingest.generic_csv",
    "import_movielens_100k": "ingest.movielens",
    "import_movielens_csv": "ingest.movielens",
    "import_movielens_dat": "ingest.movielens",
    "detect_format": "ingest.importers",
    "import_any": "ingest.importers",
    "generate_synthetic": "ingest.generator",
    "iter_chunks": "ingest.generator",
    "planted_truth": "ingest.generator",
    "SpanWriter": "ingest.writer",
    "read_examples": "ingest.writer",
    "write_catalog": "ingest.writer",
    "span_dir": "ingest.writer",
    "split_pattern": "ingest.writer",
    "catalog_path": "ingest.writer",
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
    "import_movielens_dat",
    "iter_chunks",
    "planted_truth",
    "read_examples",
    "span_dir",
    "split_pattern",
    "write_catalog",
]

if TYPE_CHECKING:
    from ingest.assemble import ImportOptions
    from ingest.cleaning import CleaningReport
    from ingest.errors import DataError
    from ingest.generator import generate_synthetic, iter_chunks, planted_truth
    from ingest.generic_csv import ColumnMapping, import_interactions_csv
    from ingest.importers import detect_format, import_any
    from ingest.movielens import import_movielens_100k, import_movielens_csv, import_movielens_dat
    from ingest.report import DataReport
    from ingest.writer import (
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
        raise AttributeError(f"module 'ingest' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
