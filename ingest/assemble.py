"""The back half of every import: deduplicate, split by time, write the span and the catalog.

Importers parse and clean their source into an `InteractionStage` and `SideTables`; then
`write_import` applies the duplicate rules, finds the temporal cutoff, joins the side
features onto each interaction, writes the span, the catalog and ``data_report.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pathlib
import tempfile
from typing import Dict, Tuple

from core import features
from ingest import cleaning, encoding, split, staging, writer
from ingest.errors import DataError
from ingest.report import REPORT_FILE, DataReport

logger = logging.getLogger(__name__)

UserFeatures = Tuple[int, str, str]  # age, gender, occupation
ItemFeatures = Tuple[str, str, int]  # title, genres, year
UNKNOWN_USER: UserFeatures = (features.UNKNOWN_INT, features.UNKNOWN_TOKEN, features.UNKNOWN_TOKEN)
UNKNOWN_ITEM: ItemFeatures = (features.UNKNOWN_TOKEN, features.NO_GENRES, features.UNKNOWN_INT)


@dataclasses.dataclass(frozen=True)
class ImportOptions:
    """How an import uses memory and files; the defaults suit anything up to MovieLens 32M.

    Attributes:
      chunk_rows: rows held in memory at a time while reading and writing.
      rows_per_file: rows per part file of a split.
      bucket_rows: rows aimed at per staging bucket (a bucket is loaded whole to deduplicate).
      span: the span number written.
    """

    chunk_rows: int = 100_000
    rows_per_file: int = writer.DEFAULT_ROWS_PER_FILE
    bucket_rows: int = 1_000_000
    span: int = 0


@dataclasses.dataclass
class SideTables:
    """Side features by id, as read from a source (first row of an id wins)."""

    users: Dict[str, UserFeatures] = dataclasses.field(default_factory=dict)
    items: Dict[str, ItemFeatures] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Source:
    """What is being imported, for the report."""

    path: str
    format: str
    interactions_file: str
    columns: str = ""  # which columns were read as what (generic CSV), for the report


class StagingArea:
    """A context manager giving an `InteractionStage` in a temporary folder inside `out_dir`.

    Args:
      out_dir: the output folder (created if needed); the staging folder is removed on exit.
      source_bytes: size of the interactions source, to size the buckets.
      options: the import options.
    """

    # A source line holds at least ~16 bytes ("1,1,4,964982703\n"), so this over-counts rows.
    _MIN_BYTES_PER_ROW = 16

    def __init__(self, out_dir: str, source_bytes: int, options: ImportOptions) -> None:
        self._out_dir = pathlib.Path(out_dir)
        estimated_rows = source_bytes // self._MIN_BYTES_PER_ROW + 1
        self._buckets = max(1, min(1024, math.ceil(estimated_rows / options.bucket_rows)))
        self._options = options
        self._tmp: tempfile.TemporaryDirectory

    def __enter__(self) -> staging.InteractionStage:
        self._out_dir.mkdir(parents=True, exist_ok=True)
        self._tmp = tempfile.TemporaryDirectory(prefix=".staging-", dir=self._out_dir)
        return staging.InteractionStage(pathlib.Path(self._tmp.name), self._buckets, self._options.chunk_rows)

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._tmp.cleanup()


def write_import(
    stage: staging.InteractionStage,
    tables: SideTables,
    cleaning_report: cleaning.CleaningReport,
    source: Source,
    out_dir: str,
    eval_fraction: float,
    rows_read: int,
    options: ImportOptions,
) -> DataReport:
    """Deduplicates the staged rows, splits them by time and writes the canonical data.

    Args:
      stage: the cleaned interactions.
      tables: side features of users and items (the catalog holds every item of `tables.items`
        plus every referenced item it lacks, with unknown features).
      cleaning_report: the counts so far; duplicates are added to it.
      source: what was imported.
      out_dir: the output folder.
      eval_fraction: fraction of the newest interactions put in eval, in (0, 1).
      rows_read: interaction rows read from the source.
      options: the import options.

    Returns:
      The report, also written to ``<out_dir>/data_report.json``.

    Raises:
      DataError: no interaction survived cleaning.
    """
    total, low, high = stage.dedup(cleaning_report, source.interactions_file)
    if total == 0:
        raise DataError(
            f"{source.path}: no valid interaction rows in {source.interactions_file} "
            f"({rows_read} read; dropped: {dict(cleaning_report.dropped) or 'none'})"
        )
    cutoff = split.temporal_cutoff(stage.timestamps, total, low, high, eval_fraction)
    users = [encoding.user_block(uid, *tables.users.get(uid, UNKNOWN_USER)) for uid in stage.user_ids]
    items = [encoding.item_block(iid, *tables.items.get(iid, UNKNOWN_ITEM)) for iid in stage.item_ids]
    encoder = encoding.InteractionEncoder()
    with writer.SpanWriter(out_dir, options.span, options.rows_per_file) as span_writer:
        for chunk in stage.chunks():
            for user, item, rating, timestamp in zip(
                chunk["user"].tolist(), chunk["item"].tolist(), chunk["rating"].tolist(), chunk["ts"].tolist()
            ):
                split_name = features.EVAL_SPLIT if timestamp > cutoff else features.TRAIN_SPLIT
                span_writer.write(split_name, encoder.encode(users[user], items[item], rating, timestamp))
            logger.info("written %d of %d interactions", sum(span_writer.rows_written.values()), total)
    catalog, added = _catalog(stage, tables)
    catalog_rows = writer.write_catalog(out_dir, catalog, keep_existing=options.span > 0)
    report = DataReport(
        source=source.path,
        format=source.format,
        columns=source.columns,
        span=options.span,
        rows_read=rows_read,
        rows_written=dict(span_writer.rows_written),
        users=len(stage.user_ids),
        items=len(stage.item_ids),
        catalog_rows=catalog_rows,
        catalog_rows_added=added,
        users_without_features=sum(1 for uid in stage.user_ids if uid not in tables.users),
        cutoff_timestamp=cutoff,
        eval_fraction=eval_fraction,
        dropped=dict(sorted(cleaning_report.dropped.items())),
        fixed=dict(sorted(cleaning_report.fixed.items())),
        samples=list(cleaning_report.samples),
    )
    report.to_json(os.path.join(out_dir, REPORT_FILE))
    return report


def _catalog(stage: staging.InteractionStage, tables: SideTables) -> Tuple[Dict[str, bytes], int]:
    """Catalog Examples: the item table in its order, then referenced items it lacks."""
    catalog = {iid: encoding.wrap_example(encoding.item_block(iid, *row)) for iid, row in tables.items.items()}
    missing = [iid for iid in stage.item_ids if iid not in tables.items]
    for iid in missing:
        catalog[iid] = encoding.wrap_example(encoding.item_block(iid, *UNKNOWN_ITEM))
    return catalog, len(missing)
