"""Disk staging of cleaned interactions, so that imports of any size run in bounded memory.

Importers add cleaned rows one at a time. Rows are buffered up to ``chunk_rows``, then appended
to one of several bucket files chosen by user (every row of a user lands in the same bucket),
as compact fixed-size records (`cleaning.STAGED_DTYPE`, 28 bytes a row). Afterwards each
bucket is loaded alone to apply the duplicate rules, and the cleaned rows are read back in
chunks. Memory holds one chunk or one bucket, plus the id dictionaries (one entry per distinct
user and item).
"""

from __future__ import annotations

import logging
import pathlib
from typing import Dict, Iterator, List, Tuple

import numpy as np

from ingest import cleaning

logger = logging.getLogger(__name__)


class InteractionStage:
    """Cleaned interactions staged on disk in user buckets.

    Args:
      work_dir: an empty folder for the bucket files (the caller deletes it).
      num_buckets: how many bucket files to spread users over (>= 1).
      chunk_rows: rows buffered in memory before a flush, and rows per chunk read back.
    """

    def __init__(self, work_dir: pathlib.Path, num_buckets: int, chunk_rows: int) -> None:
        if num_buckets < 1 or chunk_rows < 1:
            raise ValueError(f"num_buckets and chunk_rows must be >= 1, got {num_buckets}, {chunk_rows}")
        self._paths = [work_dir / f"bucket-{b:04d}.bin" for b in range(num_buckets)]
        for path in self._paths:
            path.touch()
        self._chunk_rows = chunk_rows
        self._buffer: List[Tuple[int, int, float, int, int]] = []
        self._user_code: Dict[str, int] = {}
        self._item_code: Dict[str, int] = {}
        self.user_ids: List[str] = []
        self.item_ids: List[str] = []
        self.rows_added = 0
        self.rows_staged = 0
        self.max_rows_in_memory = 0

    def add(self, user: str, item: str, rating: float, timestamp: int, row: int) -> None:
        """Stages one cleaned interaction.

        Args:
          user: the user id.
          item: the item id.
          rating: the rating.
          timestamp: Unix seconds.
          row: the source line, unique per row; orders the rows as in the file.
        """
        self.rows_added += 1
        self._buffer.append((_code(user, self._user_code, self.user_ids),
                             _code(item, self._item_code, self.item_ids), rating, timestamp, row))
        if len(self._buffer) >= self._chunk_rows:
            self.flush()

    def flush(self) -> None:
        """Appends the buffered rows to their bucket files."""
        if not self._buffer:
            return
        rows = np.array(self._buffer, dtype=cleaning.STAGED_DTYPE)
        self.max_rows_in_memory = max(self.max_rows_in_memory, len(rows))
        self._buffer = []
        buckets = rows["user"] % len(self._paths)
        for bucket in np.unique(buckets):
            with open(self._paths[bucket], "ab") as handle:
                rows[buckets == bucket].tofile(handle)
        self.rows_staged += len(rows)
        logger.info("staged %d rows", self.rows_staged)

    def dedup(self, report: cleaning.CleaningReport, file: str) -> Tuple[int, int, int]:
        """Applies the duplicate rules bucket by bucket (see `cleaning.dedup_interactions`).

        Args:
          report: counts the dropped duplicates.
          file: the source file name the duplicates are counted under.

        Returns:
          (rows kept, smallest timestamp, largest timestamp); (0, 0, 0) when none is kept.
        """
        self.flush()
        kept_total, low, high = 0, None, None
        exact_total = pairs_total = 0
        for path in self._paths:
            rows = np.fromfile(path, dtype=cleaning.STAGED_DTYPE)
            self.max_rows_in_memory = max(self.max_rows_in_memory, len(rows))
            kept, exact, pairs = cleaning.dedup_interactions(rows)
            exact_total += exact
            pairs_total += pairs
            kept.tofile(path)
            if len(kept):
                kept_total += len(kept)
                low = int(kept["ts"].min()) if low is None else min(low, int(kept["ts"].min()))
                high = int(kept["ts"].max()) if high is None else max(high, int(kept["ts"].max()))
        report.drop_many(cleaning.EXACT_DUPLICATE, file, exact_total)
        report.drop_many(cleaning.DUPLICATE_PAIR, file, pairs_total)
        return kept_total, low or 0, high or 0

    def timestamps(self) -> Iterator[np.ndarray]:
        """Every staged timestamp, in chunks (one pass)."""
        for rows in self.chunks():
            yield rows["ts"]

    def chunks(self) -> Iterator[np.ndarray]:
        """Every staged row, bucket after bucket, in chunks of at most ``chunk_rows`` rows."""
        self.flush()
        size = cleaning.STAGED_DTYPE.itemsize
        for path in self._paths:
            total = path.stat().st_size // size
            for start in range(0, total, self._chunk_rows):
                count = min(self._chunk_rows, total - start)
                yield np.fromfile(path, dtype=cleaning.STAGED_DTYPE, count=count, offset=start * size)


def _code(key: str, codes: Dict[str, int], keys: List[str]) -> int:
    code = codes.get(key)
    if code is None:
        code = codes[key] = len(keys)
        keys.append(key)
    return code
